/// A row-major `[rows, columns]` matrix of f32, f16 or bf16 values that the kernels read in place
/// (typically a memory-mapped tensor of a model file). It does not own its memory.
///
/// A linear layer `y = x · Wᵀ` stores `W` as `[out, in]`, so `rows` is the output width.
public struct DenseMatrix: @unchecked Sendable {
  public let base: UnsafeRawPointer
  public let rows: Int
  public let columns: Int
  public let elementType: ElementType

  public init(base: UnsafeRawPointer, rows: Int, columns: Int, elementType: ElementType) {
    self.base = base
    self.rows = rows
    self.columns = columns
    self.elementType = elementType
  }

  /// Bytes the matrix occupies (and that a matrix–vector product reads).
  public var byteCount: Int { rows * columns * elementType.byteCount }

  /// Widens row `row` to f32 into `destination` (`columns` values).
  public func copyRow(_ row: Int, into destination: UnsafeMutablePointer<Float>) {
    loadConverted(from: base, at: row * columns, count: columns, as: elementType, into: destination)
  }
}
