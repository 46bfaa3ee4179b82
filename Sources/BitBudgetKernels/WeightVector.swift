/// A vector of f32, f16 or bf16 values read in place (a norm weight or a bias of a model file).
/// It does not own its memory.
public struct WeightVector: @unchecked Sendable {
  public let base: UnsafeRawPointer
  public let count: Int
  public let elementType: ElementType

  public init(base: UnsafeRawPointer, count: Int, elementType: ElementType) {
    self.base = base
    self.count = count
    self.elementType = elementType
  }

  /// Bytes the vector occupies.
  public var byteCount: Int { count * elementType.byteCount }

  /// Element `index` widened to f32.
  @inlinable @inline(__always)
  public subscript(index: Int) -> Float { load1(base, index, elementType) }
}
