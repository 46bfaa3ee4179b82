/// A `[rows, columns]` weight matrix quantized to 4 or 8 bits in groups along the input dimension
/// (GPTQ / round-to-nearest): `W[r, c] = scale[r, g] · (code[r, c] − zero[r, g])` with
/// `g = c / groupSize`. It does not own its memory (`QuantizedMatrixStorage` does).
///
/// This is BitBudget's runtime layout, made for the kernels rather than for files (GPTQ
/// checkpoints are repacked at load, see `GPTQTensors`):
/// - **codes**: row-major, `columns · bits / 8` bytes per row, in chunks of 64 columns. At 8 bits
///   column `c` of a chunk is its byte `c`; at 4 bits (32 bytes per chunk) it is the low nibble of
///   byte `c` for `c < 32` and the high nibble of byte `c − 32` otherwise. So one 64-byte vector
///   (8 bits) or one 32-byte load split into nibbles (4 bits) holds the chunk in column order, as
///   the int8 dot-product instruction wants it, and its first and last 32 bytes are the chunk's
///   two 32-column halves. Read as sixteen 32-bit words, lane `l` of a word vector holds columns
///   `4l ..< 4l + 4` (the 4-bit high nibbles shifted down by 4), which the f32 kernels unpack
///   with a mask per column.
/// - **group parameters**: `[rows][groups]` in one of three forms (`GroupParameters`): pairs of
///   f16 (scale, zero), zeros being integers `0 ... 2^bits` (exact in f16; 2^bits only from GPTQ
///   v1 files, which store `zero − 1`) — 0.25 bits per weight at G = 128, 1 bit at G = 32; f16
///   scales alone with one zero for the matrix (GGUF Q8_0, Q4_0); or pairs of f16 (scale,
///   minimum) for `W = scale · code + minimum` (GGUF Q4_1).
/// - **input order** (act-order checkpoints only): stored column `j` multiplies input element
///   `inputOrder[j]`, so that each group's columns are contiguous; nil means the identity.
///
/// `columns` must be a multiple of 64 (`QuantizedMatrix.chunk`) and `groupSize` 32 or a multiple
/// of 64; the last group may be shorter than `groupSize` (e.g. 576 columns in groups of 128).
public struct QuantizedMatrix: @unchecked Sendable {
  /// Columns per packed chunk.
  public static let chunk = 64

  /// How a group's weights follow from its codes.
  public enum GroupParameters: Sendable, Equatable {
    /// f16 (scale, zero) per group: `scale · (code − zero)` (GPTQ, round-to-nearest).
    case scaleAndZero
    /// An f16 scale per group and one zero for all: `scale · (code − zero)` (GGUF Q8_0 with
    /// its signed codes offset by 128, Q4_0).
    case scale(zero: Int)
    /// f16 (scale, minimum) per group: `scale · code + minimum` (GGUF Q4_1).
    case scaleAndMinimum

    /// Bytes per group and row.
    public var byteCount: Int {
      if case .scale = self { return 2 }
      return 4
    }
  }

  public let rows: Int
  public let columns: Int
  /// 4 or 8.
  public let bits: Int
  public let groupSize: Int
  public let form: GroupParameters
  public let codes: UnsafeRawPointer
  public let groupParameters: UnsafeRawPointer
  public let inputOrder: UnsafePointer<Int32>?

  public init(
    rows: Int, columns: Int, bits: Int, groupSize: Int, form: GroupParameters = .scaleAndZero, codes: UnsafeRawPointer,
    groupParameters: UnsafeRawPointer, inputOrder: UnsafePointer<Int32>?
  ) {
    precondition(Self.layoutError(columns: columns, bits: bits, groupSize: groupSize) == nil)
    self.rows = rows
    self.columns = columns
    self.bits = bits
    self.groupSize = groupSize
    self.form = form
    self.codes = codes
    self.groupParameters = groupParameters
    self.inputOrder = inputOrder
  }

  /// Why a matrix of this shape cannot use the layout, or nil if it can.
  public static func layoutError(columns: Int, bits: Int, groupSize: Int) -> String? {
    if bits != 4 && bits != 8 { return "only 4- and 8-bit weights are supported (got \(bits) bits)" }
    if columns <= 0 || columns % chunk != 0 {
      return "the input width \(columns) is not a multiple of \(chunk), which the quantized kernels need"
    }
    if groupSize != 32 && (groupSize <= 0 || groupSize % chunk != 0) {
      return "group size \(groupSize) is neither 32 nor a positive multiple of \(chunk), which the quantized kernels need"
    }
    return nil
  }

  public var groups: Int { (columns + groupSize - 1) / groupSize }
  /// Bytes of codes per row.
  public var rowBytes: Int { columns * bits / 8 }
  /// Bytes of group parameters per row.
  public var parameterRowBytes: Int { groups * form.byteCount }
  /// Bytes the matrix holds (codes, group parameters, input order); what a matrix–vector
  /// product reads.
  public var byteCount: Int {
    Self.byteCount(rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, reordersInput: inputOrder != nil)
  }

  /// Bytes of a matrix of this shape in the runtime layout.
  public static func byteCount(
    rows: Int, columns: Int, bits: Int, groupSize: Int, form: GroupParameters = .scaleAndZero, reordersInput: Bool
  ) -> Int {
    let groups = (columns + groupSize - 1) / groupSize
    return rows * columns * bits / 8 + rows * groups * form.byteCount + (reordersInput ? columns * 4 : 0)
  }

  /// Byte offset of stored column `column`'s code within a row, and its bit shift.
  @inline(__always)
  static func codePosition(column: Int, bits: Int) -> (byte: Int, shift: Int) {
    if bits == 8 { return (column, 0) }
    let e = column % chunk
    return (column / chunk * (chunk / 2) + e % 32, e / 32 * 4)
  }

  /// Columns from one group's scale and zero to the next's in the kernels' loops: a group, or
  /// a whole chunk holding two groups of 32 (their parameters then differ between the lower and
  /// upper 8 lanes of every unpacked vector).
  public var span: Int { max(groupSize, Self.chunk) }
  public var spans: Int { (columns + span - 1) / span }

  /// The code of stored column `column` of `row` (slow; tests and export).
  public func code(row: Int, column: Int) -> Int {
    let (byte, shift) = Self.codePosition(column: column, bits: bits)
    return Int(codes.load(fromByteOffset: row * rowBytes + byte, as: UInt8.self) >> shift) & ((1 << bits) - 1)
  }

  /// Writes `code` for stored column `column` of a row whose codes start at `rowCodes`.
  public static func setCode(
    _ code: Int, column: Int, bits: Int, in rowCodes: UnsafeMutableRawPointer
  ) {
    let (byte, shift) = codePosition(column: column, bits: bits)
    let mask = UInt8(truncatingIfNeeded: ((1 << bits) - 1) << shift)
    let old = rowCodes.load(fromByteOffset: byte, as: UInt8.self)
    rowCodes.storeBytes(of: (old & ~mask) | (UInt8(truncatingIfNeeded: code << shift) & mask), toByteOffset: byte, as: UInt8.self)
  }

  /// Scale and zero of `group` in `row` (for `.scaleAndMinimum`, the minimum in place of the
  /// zero).
  @inline(__always)
  public func parameters(row: Int, group: Int) -> (scale: Float, zero: Float) {
    let offset = row * parameterRowBytes + group * form.byteCount
    if case .scale(let zero) = form {
      return (f16ToFloat(groupParameters.loadUnaligned(fromByteOffset: offset, as: UInt16.self)), Float(zero))
    }
    let pair = groupParameters.loadUnaligned(fromByteOffset: offset, as: SIMD2<UInt16>.self)
    return (f16ToFloat(pair[0]), f16ToFloat(pair[1]))
  }

  /// The input element that stored column `column` multiplies.
  @inline(__always)
  public func inputIndex(ofStoredColumn column: Int) -> Int {
    inputOrder.map { Int($0[column]) } ?? column
  }

  /// The weight of stored column `column`: `scale · (code − zero)` or `scale · code +
  /// minimum`, as the file format defines it (slow; tests and the reference product).
  public func dequantized(row: Int, column: Int) -> Float {
    let (scale, second) = parameters(row: row, group: column / groupSize)
    let code = Float(code(row: row, column: column))
    return form == .scaleAndMinimum ? code * scale + second : (code - second) * scale
  }
}

/// Memory for one `QuantizedMatrix`, allocated 64-byte aligned and freed with the object.
public final class QuantizedMatrixStorage: @unchecked Sendable {
  public let matrix: QuantizedMatrix
  private let codes: UnsafeMutableRawPointer
  private let parameters: UnsafeMutableRawPointer
  private let order: UnsafeMutablePointer<Int32>?

  /// Allocates zeroed storage; `fill` writes codes (`rows · rowBytes` bytes), group parameters
  /// (`rows · groups` f16 values per the form: (scale, zero) pairs by default) and, if
  /// `reordersInput`, the input order.
  public init(
    rows: Int, columns: Int, bits: Int, groupSize: Int, form: QuantizedMatrix.GroupParameters = .scaleAndZero, reordersInput: Bool,
    fill: (_ codes: UnsafeMutableRawPointer, _ parameters: UnsafeMutablePointer<UInt16>, _ inputOrder: UnsafeMutablePointer<Int32>?) throws -> Void
  ) rethrows {
    let groups = (columns + groupSize - 1) / groupSize
    let parameterBytes = rows * groups * form.byteCount
    let codeBytes = rows * columns * bits / 8
    // Filled before any stored property is set: a throwing `fill` frees them here, and `deinit`
    // (which runs only for a fully initialized object) never sees them.
    let codes = UnsafeMutableRawPointer.allocate(byteCount: max(codeBytes, 1), alignment: 64)
    codes.initializeMemory(as: UInt8.self, repeating: 0, count: codeBytes)
    let parameters = UnsafeMutableRawPointer.allocate(byteCount: max(parameterBytes, 1), alignment: 64)
    parameters.initializeMemory(as: UInt16.self, repeating: 0, count: parameterBytes / 2)
    let order: UnsafeMutablePointer<Int32>? = reordersInput ? .allocate(capacity: columns) : nil
    order?.initialize(repeating: 0, count: columns)
    do {
      try fill(codes, parameters.assumingMemoryBound(to: UInt16.self), order)
    } catch {
      codes.deallocate()
      parameters.deallocate()
      order?.deallocate()
      throw error
    }
    self.codes = codes
    self.parameters = parameters
    self.order = order
    matrix = QuantizedMatrix(
      rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, codes: codes,
      groupParameters: parameters, inputOrder: order.map { UnsafePointer($0) })
  }

  deinit {
    codes.deallocate()
    parameters.deallocate()
    order?.deallocate()
  }
}

/// The weight of a linear layer as the kernels read it: 16/32-bit values in place, or
/// group-quantized codes.
public enum LinearWeight: Sendable {
  case dense(DenseMatrix)
  case quantized(QuantizedMatrix)

  /// Output width.
  public var rows: Int {
    switch self {
    case .dense(let m): return m.rows
    case .quantized(let m): return m.rows
    }
  }

  /// Input width.
  public var columns: Int {
    switch self {
    case .dense(let m): return m.columns
    case .quantized(let m): return m.columns
    }
  }

  /// Bytes held (and read by one matrix–vector product).
  public var byteCount: Int {
    switch self {
    case .dense(let m): return m.byteCount
    case .quantized(let m): return m.byteCount
    }
  }

  /// Row `row` as f32 values (an embedding lookup): `columns` floats into `destination`, in
  /// input order. Cost: one row's bytes; a quantized row is dequantized exactly.
  public func copyRow(_ row: Int, into destination: UnsafeMutablePointer<Float>) {
    switch self {
    case .dense(let m): m.copyRow(row, into: destination)
    case .quantized(let m):
      for column in 0..<m.columns { destination[m.inputIndex(ofStoredColumn: column)] = m.dequantized(row: row, column: column) }
    }
  }
}
