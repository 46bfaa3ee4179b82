/// A `[rows, columns]` weight matrix quantized to 4, 5, 6 or 8 bits in groups along the input
/// dimension (GPTQ / round-to-nearest, GGUF block types): `W[r, c] = scale[r, g] · (code[r, c] −
/// zero[r, g])` or `scale · code + minimum`, with `g = c / groupSize`. It does not own its memory
/// (`QuantizedMatrixStorage` does).
///
/// This is BitBudget's runtime layout, made for the kernels rather than for files (GPTQ
/// checkpoints and GGUF blocks are repacked at load, see `GPTQTensors`, `GGUFWeights`):
/// - **codes**: row-major, `columns · bits / 8` bytes per row, in chunks of 64 columns. At 8 bits
///   column `c` of a chunk is its byte `c`; at 4 bits (32 bytes per chunk) it is the low nibble of
///   byte `c` for `c < 32` and the high nibble of byte `c − 32` otherwise. At 5 and 6 bits the
///   chunk is those 32 bytes of low nibbles followed by one 8-byte bit plane per further bit
///   (bit 4, then bit 5): column `32h + 4j + k` is bit `8k + j` of the plane's 32-bit half
///   `h`, so one variable shift per 32-bit lane and a mask put four columns' bits in place.
///   So one 64-byte vector (8 bits) or one 32-byte load split into nibbles (4 bits, plus planes)
///   holds the chunk in column order, as the int8 dot-product instruction wants it, and its
///   first and last 32 columns are the chunk's two halves. Read as sixteen 32-bit words, lane
///   `l` of a word vector holds columns `4l ..< 4l + 4`, which the f32 kernels unpack with a
///   mask per column.
/// - **group parameters**: `[rows][…]` in one of the forms of `GroupParameters`: pairs of f16
///   (scale, zero), zeros being integers `0 ... 2^bits` (exact in f16; 2^bits only from GPTQ v1
///   files, which store `zero − 1`) — 0.25 bits per weight at G = 128, 1 bit at G = 32; f16
///   scales alone with one zero for the matrix (GGUF Q8_0, Q4_0, Q5_0); pairs of f16 (scale,
///   minimum) for `W = scale · code + minimum` (GGUF Q4_1, Q5_1); or the super-blocks of GGUF's
///   k-quants (Q4_K, Q5_K, Q6_K), whose 256 columns share f16 factors and hold small integer
///   scales per group.
/// - **input order** (act-order checkpoints only): stored column `j` multiplies input element
///   `inputOrder[j]`, so that each group's columns are contiguous; nil means the identity.
///
/// - **row blocks** (`rowBlocked`; in builds with the AVX2 int8 kernels, for 4-, 5- and 8-bit
///   codes with one zero for the matrix, 4- and 5-bit codes with a scale and a minimum per group
///   of 32 or more, and the k-quants): rows `0 ..< blockedRows` are stored 16 at a time,
///   interleaved so that one 64-byte vector holds the same columns of 16 rows — at 8 bits per 4
///   columns (quad `q`: row `j`'s codes of columns `4q ..< 4q + 4` in bytes `4j ..< 4j + 4`), at
///   4–6 bits per 8 columns (octet `o`: byte `4j + k` of row `j` holds column `8o + k` in its
///   low nibble and `8o + 4 + k` in its high one). At 5 and 6 bits each 32 columns are their
///   four octets of nibbles (256 bytes) and then the codes' high bits (`w = bits − 4` each) in
///   `2w` plane halves of 32 bytes: octet `o`'s in half `o·w / 2`, where bits
///   `w·n ..< w·n + w` of byte `4(j mod 8) + k` belong to the nibble in byte `4j + k` of its
///   nibble load `n = 4(o mod (2 / w)) + 2h + l` (`h = j / 8`, level `l`: 0 low, 1 high) —
///   byte `i` of a plane half sits under byte `i` of each 32-byte nibble load it completes,
///   one shift away. Parameters: per group the 16 rows' f16 scales side by side (then their
///   minima); the k-quants per super-block (`superBlockParameters`). A matrix–vector product
///   then reads one sequential stream and puts the 16 rows in the lanes of accumulators: no
///   horizontal sums, one weight scale load per 16 rows and group, and the input's four codes
///   broadcast to every row. The bytes are the same as the row-major layout's; rows from
///   `blockedRows` on stay row-major (at their row-major offsets).
///
/// `columns` must be a multiple of 64 (`QuantizedMatrix.chunk`; 256 for super-blocks) and
/// `groupSize` 32 or a multiple of 64 (16 for Q6_K); the last group may be shorter than
/// `groupSize` (e.g. 576 columns in groups of 128).
public struct QuantizedMatrix: @unchecked Sendable {
  /// Columns per packed chunk.
  public static let chunk = 64

  /// How a group's weights follow from its codes.
  public enum GroupParameters: Sendable, Equatable {
    /// f16 (scale, zero) per group: `scale · (code − zero)` (asymmetric GPTQ and round-to-nearest).
    case scaleAndZero
    /// An f16 scale per group and one zero for all: `scale · (code − zero)` (symmetric GPTQ and
    /// round-to-nearest, zero `2^(bits−1)`; GGUF Q8_0 with its signed codes offset by 128, Q4_0,
    /// Q5_0).
    case scale(zero: Int)
    /// f16 (scale, minimum) per group: `scale · code + minimum` (GGUF Q4_1, Q5_1).
    case scaleAndMinimum
    /// GGUF Q4_K and Q5_K: per super-block of 256 columns, f16 `d` and `dmin`, then the 6-bit
    /// scale and minimum of each of its eight groups of 32 — scales at bits `6j` of bytes 4–9,
    /// minima at bits `6j` of bytes 10–15 (the file's 12 bytes, reordered so that a chunk's two
    /// groups are one shift away): `d·scale · code − dmin·minimum`. 16 bytes per 256 weights.
    case superBlockScaleAndMinimum
    /// GGUF Q6_K: per super-block of 256 columns, f16 `d` then the int8 scales of its 16 groups
    /// of 16: `d·scale · (code − 32)`. 18 bytes per 256 weights.
    case superBlockScale

    /// Columns per super-block, for the k-quant forms.
    public static let superBlock = 256

    /// Bytes per group and row, for the forms with parameters per group.
    public var byteCount: Int {
      switch self {
      case .scale: 2
      case .scaleAndZero, .scaleAndMinimum: 4
      case .superBlockScaleAndMinimum: 16
      case .superBlockScale: 18
      }
    }

    /// Whether the parameters belong to super-blocks of 256 columns rather than to groups.
    public var isSuperBlock: Bool { self == .superBlockScaleAndMinimum || self == .superBlockScale }

    /// Whether a weight is `scale · code + minimum` (else `scale · (code − zero)`).
    public var addsMinimum: Bool { self == .scaleAndMinimum || self == .superBlockScaleAndMinimum }

    /// The group size the form dictates, if it does.
    public var requiredGroupSize: Int? {
      switch self {
      case .superBlockScaleAndMinimum: 32
      case .superBlockScale: 16
      default: nil
      }
    }

    /// Bytes of parameters per row of `columns` in groups of `groupSize`.
    public func rowBytes(columns: Int, groupSize: Int) -> Int {
      isSuperBlock ? columns / Self.superBlock * byteCount : (columns + groupSize - 1) / groupSize * byteCount
    }
  }

  public let rows: Int
  public let columns: Int
  /// 4, 5, 6 or 8.
  public let bits: Int
  public let groupSize: Int
  public let form: GroupParameters
  public let codes: UnsafeRawPointer
  public let groupParameters: UnsafeRawPointer
  public let inputOrder: UnsafePointer<Int32>?
  /// Whether rows `0 ..< blockedRows` are stored in row blocks (see the type's documentation).
  public let rowBlocked: Bool

  /// Rows per row block.
  public static let rowBlock = 16

  /// `rowBlocked`: whether the data is in the row-block layout, which needs
  /// `canUseRowBlocks(...)`.
  public init(
    rows: Int, columns: Int, bits: Int, groupSize: Int, form: GroupParameters = .scaleAndZero, codes: UnsafeRawPointer,
    groupParameters: UnsafeRawPointer, inputOrder: UnsafePointer<Int32>?, rowBlocked: Bool = false
  ) {
    precondition(Self.layoutError(columns: columns, bits: bits, groupSize: groupSize, form: form) == nil)
    precondition(!rowBlocked || Self.canUseRowBlocks(rows: rows, bits: bits, groupSize: groupSize, form: form))
    self.rowBlocked = rowBlocked
    self.rows = rows
    self.columns = columns
    self.bits = bits
    self.groupSize = groupSize
    self.form = form
    self.codes = codes
    self.groupParameters = groupParameters
    self.inputOrder = inputOrder
  }

  /// Why a matrix of this shape cannot use the layout, or nil if it can. 5 and 6 bits come
  /// only from GGUF files (forms other than `.scaleAndZero`).
  public static func layoutError(columns: Int, bits: Int, groupSize: Int, form: GroupParameters = .scaleAndZero) -> String? {
    if form == .scaleAndZero, bits != 4 && bits != 8 { return "only 4- and 8-bit weights are supported (got \(bits) bits)" }
    if ![4, 5, 6, 8].contains(bits) { return "only 4-, 5-, 6- and 8-bit codes are supported (got \(bits) bits)" }
    if columns <= 0 || columns % chunk != 0 {
      return "the input width \(columns) is not a multiple of \(chunk), which the quantized kernels need"
    }
    if let required = form.requiredGroupSize {
      if groupSize != required { return "\(form) needs groups of \(required) (got \(groupSize))" }
      if columns % GroupParameters.superBlock != 0 {
        return "the input width \(columns) is not a multiple of \(GroupParameters.superBlock), which super-blocks need"
      }
    } else if groupSize != 32 && (groupSize <= 0 || groupSize % chunk != 0) {
      return "group size \(groupSize) is neither 32 nor a positive multiple of \(chunk), which the quantized kernels need"
    }
    return nil
  }

  /// Whether the row-block layout applies to a matrix of this shape: 4-, 5- or 8-bit codes with
  /// the zero 2^(bits−1) for the whole matrix (symmetric GPTQ and round-to-nearest, GGUF Q4_0,
  /// Q5_0 and Q8_0) or 4- and 5-bit codes with a scale and a minimum per group (GGUF Q4_1,
  /// Q5_1), groups of a multiple of 32 columns; or the k-quants (Q4_K, Q5_K, Q6_K); at least one
  /// whole block. Only the AVX2 int8
  /// kernels read it (`LinearActivations.int8RowBlocksAvailable`), so it is used only
  /// where they are built.
  public static func canUseRowBlocks(rows: Int, bits: Int, groupSize: Int, form: GroupParameters) -> Bool {
    guard groupSize % 32 == 0 || form == .superBlockScale, rows >= rowBlock else { return false }
    switch form {
    case .scale(let zero) where bits == 4 || bits == 5 || bits == 8: guard zero == 1 << (bits - 1) else { return false }
    case .scaleAndMinimum, .superBlockScaleAndMinimum: guard bits == 4 || bits == 5 else { return false }
    case .superBlockScale: guard bits == 6 else { return false }
    default: return false
    }
    return LinearActivations.int8RowBlocksAvailable
  }

  /// Byte offset (from `groupParameters`) of f16 parameter `value` (0: the scale, 1: the
  /// minimum) of `group` in a blocked row: per block and group, each value of the 16 rows side
  /// by side.
  @inline(__always)
  func blockedParameterOffset(row: Int, group: Int, value: Int) -> Int {
    let perGroup = form.byteCount / 2
    return row / Self.rowBlock * Self.rowBlock * parameterRowBytes + ((group * perGroup + value) * Self.rowBlock + row % Self.rowBlock) * 2
  }

  /// For a row-blocked matrix the zero subtracted from every code (0 where the form adds a
  /// minimum instead); nil without row blocks.
  var rowBlockZero: Int? {
    guard rowBlocked else { return nil }
    switch form {
    case .scale(let zero): return zero
    case .superBlockScale: return 32
    default: return 0
    }
  }

  /// Parameter `value` (0: scales, 1: minima) of `group` for the 16 rows of the row block whose
  /// parameters start at `block`, as f32.
  @inline(__always)
  func blockParameters(_ block: UnsafeRawPointer, group: Int, value: Int) -> SIMD16<Float> {
    // Lane by lane: the generic integer widening of a vector is a call and a scalar loop.
    @inline(__always) func f16(_ base: UnsafeRawPointer) -> SIMD16<Float> {
      var values = SIMD16<Float>()
      for lane in 0..<16 { values[lane] = f16ToFloat(base.loadUnaligned(fromByteOffset: 2 * lane, as: UInt16.self)) }
      return values
    }
    switch form {
    case .superBlockScale:
      let base = block + group / 16 * 16 * form.byteCount
      var scales = SIMD16<Float>()
      for lane in 0..<16 { scales[lane] = Float(base.load(fromByteOffset: 32 + 16 * (group % 16) + lane, as: Int8.self)) }
      return value == 0 ? f16(base) * scales : SIMD16(repeating: 32)
    case .superBlockScaleAndMinimum:
      // `superBlockParameters` for the 16 rows at once.
      let base = block + group / 8 * 16 * form.byteCount, k = UInt32(group % 8)
      let a = base.loadUnaligned(fromByteOffset: 64 + 64 * value, as: SIMD16<UInt32>.self)  // A or B
      let field =
        k < 4
        ? (a &>> (8 * k)) & 63
        : (base.loadUnaligned(fromByteOffset: 192, as: SIMD16<UInt32>.self) &>> (8 * (k - 4) + 4 * UInt32(value))) & 15
          | ((a &>> (8 * (k - 4) + 6)) & 3) &<< 4
      // Exact: fields below 2^23 OR-ed into the mantissa of 2^23.
      let factor = unsafeBitCast(field | 0x4B00_0000, to: SIMD16<Float>.self) - 8_388_608
      return value == 0 ? f16(base) * factor : -(f16(base + 32) * factor)
    default:
      return f16(block + (group * (form.byteCount / 2) + value) * 32)
    }
  }

  /// The k-quant parameters of `group` for row `row` (0–15) of the row block whose parameters
  /// start at `block`, as `parameters(row:group:)` gives them. A row block's super-block holds
  /// (at 16 · `form.byteCount` bytes from the block per super-block):
  /// - Q4_K, Q5_K: the 16 rows' f16 `d`, then their `dmin`, then three 32-bit words per row, each
  ///   the 16 rows side by side: `A` (byte `k`: scale `k` in bits 0–5, bits 4–5 of scale `4 + k`
  ///   in bits 6–7), `B` (the same for the minima) and `C` (byte `k`: bits 0–3 of scale `4 + k`,
  ///   then of minimum `4 + k`) — so a group's 6-bit values of 8 rows are one 32-byte load and a
  ///   shift and mask (groups 4–7: two).
  /// - Q6_K: the 16 rows' f16 `d`, then per group of 16 columns the 16 rows' int8 scales.
  @inline(__always)
  static func superBlockParameters(_ block: UnsafeRawPointer, form: GroupParameters, row j: Int, group: Int) -> (scale: Float, zero: Float) {
    if form == .superBlockScale {
      let base = block + group / 16 * 16 * form.byteCount
      let d = f16ToFloat(base.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self))
      return (d * Float(base.load(fromByteOffset: 32 + 16 * (group % 16) + j, as: Int8.self)), 32)
    }
    let base = block + group / 8 * 16 * form.byteCount, k = group % 8
    let d = f16ToFloat(base.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self))
    let dmin = f16ToFloat(base.loadUnaligned(fromByteOffset: 32 + 2 * j, as: UInt16.self))
    let a = base.loadUnaligned(fromByteOffset: 64 + 4 * j, as: UInt32.self)
    let b = base.loadUnaligned(fromByteOffset: 128 + 4 * j, as: UInt32.self)
    let c = base.loadUnaligned(fromByteOffset: 192 + 4 * j, as: UInt32.self)
    let (scale, minimum) =
      k < 4
      ? (a >> (8 * k) & 63, b >> (8 * k) & 63)
      : (c >> (8 * (k - 4)) & 15 | (a >> (8 * (k - 4) + 6) & 3) << 4, c >> (8 * (k - 4) + 4) & 15 | (b >> (8 * (k - 4) + 6) & 3) << 4)
    return (d * Float(scale), -(dmin * Float(minimum)))
  }

  /// Rows stored in row blocks (a multiple of `rowBlock`; 0 without them).
  public var blockedRows: Int { rowBlocked ? rows / Self.rowBlock * Self.rowBlock : 0 }

  /// Byte offset (from `codes`) of stored column `column`'s code in a blocked row, and its shift
  /// (at 5 bits: of its low nibble).
  @inline(__always)
  func blockedCodePosition(row: Int, column: Int) -> (byte: Int, shift: Int) {
    Self.blockedCodePosition(row: row, column: column, bits: bits, rowBytes: rowBytes)
  }

  @inline(__always)
  static func blockedCodePosition(row: Int, column: Int, bits: Int, rowBytes: Int) -> (byte: Int, shift: Int) {
    let block = row / rowBlock * rowBlock * rowBytes, j = row % rowBlock
    if bits == 8 { return (block + column / 4 * 64 + 4 * j + column % 4, 0) }
    return (block + column / 32 * 64 * bits + column % 32 / 8 * 64 + 4 * j + column % 4, column % 8 / 4 * 4)
  }

  /// Byte offset (from `codes`) and bit of stored column `column`'s bit `4 + plane` in a
  /// blocked row (5 and 6 bits), per the type's documentation.
  @inline(__always)
  static func blockedPlanePosition(row: Int, column: Int, plane: Int, bits: Int, rowBytes: Int) -> (byte: Int, bit: Int) {
    let block = row / rowBlock * rowBlock * rowBytes, j = row % rowBlock
    let octet = column % 32 / 8, level = column % 8 / 4, width = bits - 4
    let byte = block + column / 32 * 64 * bits + 256 + octet * width / 2 * 32 + 4 * (j % 8) + column % 4
    return (byte, width * (4 * (octet % (2 / width)) + 2 * (j / 8) + level) + plane)
  }

  public var groups: Int { (columns + groupSize - 1) / groupSize }
  /// Bytes of codes per row.
  public var rowBytes: Int { columns * bits / 8 }
  /// Bytes of group parameters per row.
  public var parameterRowBytes: Int { form.rowBytes(columns: columns, groupSize: groupSize) }
  /// Bytes the matrix holds (codes, group parameters, input order); what a matrix–vector
  /// product reads.
  public var byteCount: Int {
    Self.byteCount(rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, reordersInput: inputOrder != nil)
  }

  /// Bytes of a matrix of this shape in the runtime layout.
  public static func byteCount(
    rows: Int, columns: Int, bits: Int, groupSize: Int, form: GroupParameters = .scaleAndZero, reordersInput: Bool
  ) -> Int {
    rows * columns * bits / 8 + rows * form.rowBytes(columns: columns, groupSize: groupSize) + (reordersInput ? columns * 4 : 0)
  }

  /// Byte offset of stored column `column`'s code within a row, and its bit shift (at 5 and 6
  /// bits: of its low nibble).
  @inline(__always)
  static func codePosition(column: Int, bits: Int) -> (byte: Int, shift: Int) {
    if bits == 8 { return (column, 0) }
    let e = column % chunk
    return (column / chunk * (chunk * bits / 8) + e % 32, e / 32 * 4)
  }

  /// Byte offset within a row of the bit plane `plane` (0: bit 4, 1: bit 5) of stored column
  /// `column` at 5 or 6 bits, and the bit: column `32h + 4j + k` of a chunk is bit `8k + j` of
  /// the plane's 32-bit half `h`.
  @inline(__always)
  static func planePosition(column: Int, bits: Int, plane: Int) -> (byte: Int, bit: Int) {
    let e = column % chunk
    let (h, j, k) = (e / 32, e % 32 / 4, e % 4)
    return (column / chunk * (chunk * bits / 8) + 32 + 8 * plane + 4 * h + k, j)
  }

  /// Columns from one group's scale and zero to the next's in the kernels' loops: a group, or
  /// a whole chunk holding two groups of 32 (their parameters then differ between the lower and
  /// upper 8 lanes of every unpacked vector).
  public var span: Int { max(groupSize, Self.chunk) }
  public var spans: Int { (columns + span - 1) / span }

  /// The code of stored column `column` of `row` (slow; tests and export).
  public func code(row: Int, column: Int) -> Int {
    if row < blockedRows {
      let (byte, shift) = blockedCodePosition(row: row, column: column)
      var code = Int(codes.load(fromByteOffset: byte, as: UInt8.self) >> shift) & (bits == 8 ? 255 : 15)
      for plane in 0..<(bits == 8 ? 0 : bits - 4) {
        let (byte, bit) = Self.blockedPlanePosition(row: row, column: column, plane: plane, bits: bits, rowBytes: rowBytes)
        code |= Int(codes.load(fromByteOffset: byte, as: UInt8.self) >> bit & 1) << (4 + plane)
      }
      return code
    }
    let rowCodes = codes + row * rowBytes
    let (byte, shift) = Self.codePosition(column: column, bits: bits)
    var code = Int(rowCodes.load(fromByteOffset: byte, as: UInt8.self) >> shift) & (bits == 8 ? 255 : 15)
    for plane in 0..<(bits == 8 ? 0 : bits - 4) {
      let (byte, bit) = Self.planePosition(column: column, bits: bits, plane: plane)
      code |= Int(rowCodes.load(fromByteOffset: byte, as: UInt8.self) >> bit & 1) << (4 + plane)
    }
    return code
  }

  /// Writes `code` for stored column `column` of a row whose codes start at `rowCodes`.
  public static func setCode(
    _ code: Int, column: Int, bits: Int, in rowCodes: UnsafeMutableRawPointer
  ) {
    func put(_ value: Int, width: Int, byte: Int, shift: Int) {
      let mask = UInt8(truncatingIfNeeded: ((1 << width) - 1) << shift)
      let old = rowCodes.load(fromByteOffset: byte, as: UInt8.self)
      rowCodes.storeBytes(of: (old & ~mask) | (UInt8(truncatingIfNeeded: value << shift) & mask), toByteOffset: byte, as: UInt8.self)
    }
    let (byte, shift) = codePosition(column: column, bits: bits)
    if bits == 8 { return put(code, width: 8, byte: byte, shift: shift) }
    put(code & 15, width: 4, byte: byte, shift: shift)
    for plane in 0..<(bits - 4) {
      let (byte, bit) = planePosition(column: column, bits: bits, plane: plane)
      put(code >> (4 + plane) & 1, width: 1, byte: byte, shift: bit)
    }
  }

  /// Writes a whole row of codes (`columns` bytes, one code each, in stored column order) into
  /// the layout at `rowCodes`: what `setCode` does per column, a chunk at a time. Cost: one
  /// pass over the codes.
  public static func packRow(_ codes: UnsafePointer<UInt8>, columns: Int, bits: Int, into rowCodes: UnsafeMutableRawPointer) {
    if bits == 8 { return rowCodes.copyMemory(from: codes, byteCount: columns) }
    let chunkBytes = chunk * bits / 8
    for start in stride(from: 0, to: columns, by: chunk) {
      let out = rowCodes + start / chunk * chunkBytes, source = codes + start
      for i in 0..<32 {
        out.storeBytes(of: source[i] & 15 | (source[32 + i] & 15) << 4, toByteOffset: i, as: UInt8.self)
      }
      for plane in 0..<(bits - 4) {
        for h in 0..<2 {
          var half: UInt32 = 0
          for j in 0..<8 {
            for k in 0..<4 { half |= UInt32(source[32 * h + 4 * j + k] >> (4 + plane) & 1) << (8 * k + j) }
          }
          out.storeBytes(of: half, toByteOffset: 32 + 8 * plane + 4 * h, as: UInt32.self)
        }
      }
    }
  }

  /// Reads a whole row-major row of codes back into `codes` (`columns` bytes, one code each):
  /// the inverse of `packRow`. Cost: one pass over the row.
  static func unpackRow(_ rowCodes: UnsafeRawPointer, columns: Int, bits: Int, into codes: UnsafeMutablePointer<UInt8>) {
    if bits == 8 { return UnsafeMutableRawPointer(codes).copyMemory(from: rowCodes, byteCount: columns) }
    let chunkBytes = chunk * bits / 8
    for start in stride(from: 0, to: columns, by: chunk) {
      let source = rowCodes + start / chunk * chunkBytes, out = codes + start
      for i in 0..<32 {
        let byte = source.load(fromByteOffset: i, as: UInt8.self)
        (out[i], out[32 + i]) = (byte & 15, byte >> 4)
      }
      for plane in 0..<(bits - 4) {
        for h in 0..<2 {
          let half = source.loadUnaligned(fromByteOffset: 32 + 8 * plane + 4 * h, as: UInt32.self)
          for j in 0..<8 {
            for k in 0..<4 { out[32 * h + 4 * j + k] |= UInt8(truncatingIfNeeded: half >> (8 * k + j) & 1) << (4 + plane) }
          }
        }
      }
    }
  }

  /// Scale and zero of `group` in `row` (for the forms that add a minimum, the minimum in
  /// place of the zero), as f32 — for the super-block forms the products `d·scale` (exact in
  /// f32) and `−dmin·minimum`.
  @inline(__always)
  public func parameters(row: Int, group: Int) -> (scale: Float, zero: Float) {
    let rowParameters = groupParameters + row * parameterRowBytes
    switch form {
    case .scale(let zero):
      if row < blockedRows {
        let offset = blockedParameterOffset(row: row, group: group, value: 0)
        return (f16ToFloat(groupParameters.loadUnaligned(fromByteOffset: offset, as: UInt16.self)), Float(zero))
      }
      return (f16ToFloat(rowParameters.loadUnaligned(fromByteOffset: group * 2, as: UInt16.self)), Float(zero))
    case .scaleAndMinimum where row < blockedRows:
      let scale = groupParameters.loadUnaligned(fromByteOffset: blockedParameterOffset(row: row, group: group, value: 0), as: UInt16.self)
      let minimum = groupParameters.loadUnaligned(fromByteOffset: blockedParameterOffset(row: row, group: group, value: 1), as: UInt16.self)
      return (f16ToFloat(scale), f16ToFloat(minimum))
    case .scaleAndZero, .scaleAndMinimum:
      let pair = rowParameters.loadUnaligned(fromByteOffset: group * 4, as: SIMD2<UInt16>.self)
      return (f16ToFloat(pair[0]), f16ToFloat(pair[1]))
    case .superBlockScaleAndMinimum where row < blockedRows, .superBlockScale where row < blockedRows:
      return Self.superBlockParameters(
        groupParameters + row / Self.rowBlock * Self.rowBlock * parameterRowBytes, form: form, row: row % Self.rowBlock, group: group)
    case .superBlockScaleAndMinimum:
      let header = rowParameters + group / 8 * form.byteCount, j = group % 8
      let (d, dmin) = (f16ToFloat(header.loadUnaligned(as: UInt16.self)), f16ToFloat(header.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
      let scale = header.loadUnaligned(fromByteOffset: 4, as: UInt64.self) >> (6 * j) & 63
      let minimum = header.loadUnaligned(fromByteOffset: 8, as: UInt64.self) >> (16 + 6 * j) & 63
      return (d * Float(scale), -(dmin * Float(minimum)))
    case .superBlockScale:
      let header = rowParameters + group / 16 * form.byteCount
      let d = f16ToFloat(header.loadUnaligned(as: UInt16.self))
      return (d * Float(header.load(fromByteOffset: 2 + group % 16, as: Int8.self)), 32)
    }
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
    return form.addsMinimum ? code * scale + second : (code - second) * scale
  }
}

/// Memory for one `QuantizedMatrix`, allocated 64-byte aligned and freed with the object.
public final class QuantizedMatrixStorage: @unchecked Sendable {
  public let matrix: QuantizedMatrix
  private let codes: UnsafeMutableRawPointer
  private let parameters: UnsafeMutableRawPointer
  private let order: UnsafeMutablePointer<Int32>?

  /// Allocates zeroed storage; `fill` writes codes (`rows · rowBytes` bytes), group parameters
  /// (`rows · parameterRowBytes` bytes per the form: f16 (scale, zero) pairs by default) and, if
  /// `reordersInput`, the input order.
  /// `pool`, if given, spreads the rearrangement into row blocks over its threads.
  public init(
    rows: Int, columns: Int, bits: Int, groupSize: Int, form: QuantizedMatrix.GroupParameters = .scaleAndZero, reordersInput: Bool,
    pool: ThreadPool? = nil,
    fill: (_ codes: UnsafeMutableRawPointer, _ parameters: UnsafeMutablePointer<UInt16>, _ inputOrder: UnsafeMutablePointer<Int32>?) throws -> Void
  ) rethrows {
    precondition(QuantizedMatrix.layoutError(columns: columns, bits: bits, groupSize: groupSize, form: form) == nil)
    let parameterBytes = rows * form.rowBytes(columns: columns, groupSize: groupSize)
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
    let blocked = QuantizedMatrix.canUseRowBlocks(rows: rows, bits: bits, groupSize: groupSize, form: form)
    if blocked {
      Self.interleaveRowBlocks(
        rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, codes: codes, parameters: parameters, pool: pool)
    }
    self.codes = codes
    self.parameters = parameters
    self.order = order
    matrix = QuantizedMatrix(
      rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, codes: codes,
      groupParameters: parameters, inputOrder: order.map { UnsafePointer($0) }, rowBlocked: blocked)
  }

  /// Rewrites row-major codes and f16 parameters into the row-block layout, in place, one block
  /// of 16 rows at a time (in parallel over `pool`'s threads, if given). Cost: one pass over the
  /// matrix and one block of temporary memory per task.
  static func interleaveRowBlocks(
    rows: Int, columns: Int, bits: Int, groupSize: Int, form: QuantizedMatrix.GroupParameters, codes: UnsafeMutableRawPointer,
    parameters: UnsafeMutableRawPointer, pool: ThreadPool?
  ) {
    let block = QuantizedMatrix.rowBlock, blocksPerTask = 16, blocks = rows / block
    let tasks = (blocks + blocksPerTask - 1) / blocksPerTask
    let run = { (task: Int) in
      interleaveRowBlocks(
        (task * blocksPerTask)..<min(blocks, (task + 1) * blocksPerTask), columns: columns, bits: bits, groupSize: groupSize, form: form,
        codes: codes, parameters: parameters)
    }
    if let pool { pool.parallelFor(tasks, run) } else { (0..<tasks).forEach(run) }
  }

  /// `interleaveRowBlocks` for the row blocks `blocks`.
  private static func interleaveRowBlocks(
    _ blocks: Range<Int>, columns: Int, bits: Int, groupSize: Int, form: QuantizedMatrix.GroupParameters, codes: UnsafeMutableRawPointer,
    parameters: UnsafeMutableRawPointer
  ) {
    let block = QuantizedMatrix.rowBlock, rowBytes = columns * bits / 8
    let parameterRowBytes = form.rowBytes(columns: columns, groupSize: groupSize)
    let rowMajor = UnsafeMutableRawPointer.allocate(byteCount: block * max(rowBytes, parameterRowBytes), alignment: 64)
    let rowCodes = UnsafeMutablePointer<UInt8>.allocate(capacity: columns)
    defer {
      rowMajor.deallocate()
      rowCodes.deallocate()
    }
    for first in blocks.map({ $0 * block }) {
      let out = codes + first * rowBytes
      rowMajor.copyMemory(from: out, byteCount: block * rowBytes)
      out.initializeMemory(as: UInt8.self, repeating: 0, count: block * rowBytes)
      for j in 0..<block {
        QuantizedMatrix.unpackRow(rowMajor + j * rowBytes, columns: columns, bits: bits, into: rowCodes)
        let source = UnsafeRawPointer(rowCodes)
        if bits == 8 {
          for quad in 0..<(columns / 4) {
            out.storeBytes(of: source.loadUnaligned(fromByteOffset: 4 * quad, as: UInt32.self), toByteOffset: quad * 64 + 4 * j, as: UInt32.self)
          }
          continue
        }
        // Per 32 columns: four octets of nibbles, then (5, 6 bits) the planes: the word of row
        // j in its plane half gathers the high bits of its 16 codes there (`blockedPlanePosition`).
        let width = bits - 4
        for start in stride(from: 0, to: columns, by: 32) {
          let blockStart = start / 32 * 64 * bits
          for octet in 0..<4 {
            let low = source.loadUnaligned(fromByteOffset: start + 8 * octet, as: UInt32.self)
            let high = source.loadUnaligned(fromByteOffset: start + 8 * octet + 4, as: UInt32.self)
            out.storeBytes(of: low & 0x0F0F_0F0F | (high & 0x0F0F_0F0F) << 4, toByteOffset: blockStart + 64 * octet + 4 * j, as: UInt32.self)
            guard width > 0 else { continue }
            let planeWord = blockStart + 256 + octet * width / 2 * 32 + 4 * (j % 8)
            let position = UInt32(width * (4 * (octet % (2 / width)) + 2 * (j / 8)))
            var bitsHere: UInt32 = 0
            for plane in 0..<UInt32(width) {
              bitsHere |= (low >> (4 + plane) & 0x0101_0101) << (position + plane)
              bitsHere |= (high >> (4 + plane) & 0x0101_0101) << (position + UInt32(width) + plane)
            }
            out.storeBytes(of: out.load(fromByteOffset: planeWord, as: UInt32.self) | bitsHere, toByteOffset: planeWord, as: UInt32.self)
          }
        }
      }
      let blockParameters = parameters + first * parameterRowBytes
      rowMajor.copyMemory(from: blockParameters, byteCount: block * parameterRowBytes)
      interleaveParameters(rowMajor, rowBytes: parameterRowBytes, form: form, into: blockParameters)
    }
  }

  /// Rewrites one row block's row-major parameters (`rowMajor`, `rowBytes` per row) into its
  /// row-block layout at `out`: f16 values per group side by side, or the k-quants' super-blocks
  /// (`QuantizedMatrix.superBlockParameters`).
  static func interleaveParameters(
    _ rowMajor: UnsafeRawPointer, rowBytes: Int, form: QuantizedMatrix.GroupParameters, into out: UnsafeMutableRawPointer
  ) {
    let block = QuantizedMatrix.rowBlock
    switch form {
    case .superBlockScaleAndMinimum, .superBlockScale:
      for superBlock in 0..<(rowBytes / form.byteCount) {
        let base = out + superBlock * block * form.byteCount
        for j in 0..<block {
          let header = rowMajor + j * rowBytes + superBlock * form.byteCount
          base.storeBytes(of: header.loadUnaligned(as: UInt16.self), toByteOffset: 2 * j, as: UInt16.self)
          if form == .superBlockScale {
            for group in 0..<16 { base.storeBytes(of: header.load(fromByteOffset: 2 + group, as: UInt8.self), toByteOffset: 32 + 16 * group + j, as: UInt8.self) }
            continue
          }
          base.storeBytes(of: header.loadUnaligned(fromByteOffset: 2, as: UInt16.self), toByteOffset: 32 + 2 * j, as: UInt16.self)
          // The runtime header's 6-bit fields: scale k at bit 6k of bytes 4–9, minimum k at bit 6k of bytes 10–15.
          let scales = header.loadUnaligned(fromByteOffset: 4, as: UInt64.self), minima = header.loadUnaligned(fromByteOffset: 8, as: UInt64.self) >> 16
          var (a, b, c): (UInt32, UInt32, UInt32) = (0, 0, 0)
          for k in 0..<4 {
            let (scale, minimum) = (UInt32(scales >> (6 * k) & 63), UInt32(minima >> (6 * k) & 63))
            let (scaleHigh, minimumHigh) = (UInt32(scales >> (6 * (k + 4)) & 63), UInt32(minima >> (6 * (k + 4)) & 63))
            a |= (scale | (scaleHigh >> 4) << 6) << (8 * k)
            b |= (minimum | (minimumHigh >> 4) << 6) << (8 * k)
            c |= (scaleHigh & 15 | (minimumHigh & 15) << 4) << (8 * k)
          }
          base.storeBytes(of: a, toByteOffset: 64 + 4 * j, as: UInt32.self)
          base.storeBytes(of: b, toByteOffset: 128 + 4 * j, as: UInt32.self)
          base.storeBytes(of: c, toByteOffset: 192 + 4 * j, as: UInt32.self)
        }
      }
    default:
      let values = rowBytes / 2
      for j in 0..<block {
        for v in 0..<values {
          out.storeBytes(of: rowMajor.load(fromByteOffset: (j * values + v) * 2, as: UInt16.self), toByteOffset: (v * block + j) * 2, as: UInt16.self)
        }
      }
    }
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
