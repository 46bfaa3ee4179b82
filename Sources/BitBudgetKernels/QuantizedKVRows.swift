/// Token rows of a KV cache stored HQQ-quantized, per token and KV head, with groups along the
/// head dimension (HQQ axis 1): layout `[kvHeads][capacity][…]` for codes (`headDim · bits / 8`
/// bytes per row: 8-bit one code per byte, 4-bit two — element `2i` in the low nibble, 2-bit four
/// — element `4i + k` in bits `2k…2k+1`) and for scales and zeros (`headDim / groupSize` per row,
/// stored as `metaType`). A value is `(code − zero) · scale`.
///
/// The attention kernel dequantizes 32 tokens at a time into per-thread scratch, so reading a
/// quantized cache never needs a dequantized copy of it.
public struct QuantizedKVRows: @unchecked Sendable {
  public let keyCodes: UnsafeRawPointer
  public let valueCodes: UnsafeRawPointer
  public let keyScales: UnsafeRawPointer
  public let keyZeros: UnsafeRawPointer
  public let valueScales: UnsafeRawPointer
  public let valueZeros: UnsafeRawPointer
  public let bits: Int
  public let groupSize: Int
  public let metaType: ElementType

  public init(
    keyCodes: UnsafeRawPointer, valueCodes: UnsafeRawPointer, keyScales: UnsafeRawPointer,
    keyZeros: UnsafeRawPointer, valueScales: UnsafeRawPointer, valueZeros: UnsafeRawPointer,
    bits: Int, groupSize: Int, metaType: ElementType
  ) {
    precondition(bits == 2 || bits == 4 || bits == 8)
    self.keyCodes = keyCodes
    self.valueCodes = valueCodes
    self.keyScales = keyScales
    self.keyZeros = keyZeros
    self.valueScales = valueScales
    self.valueZeros = valueZeros
    self.bits = bits
    self.groupSize = groupSize
    self.metaType = metaType
  }

  /// Bytes of codes per token row of one head.
  @inlinable
  public static func codeBytes(headDim: Int, bits: Int) -> Int { headDim * bits / 8 }

  /// Code `index` of a packed row.
  @inlinable
  public static func code(_ row: UnsafeRawPointer, _ index: Int, bits: Int) -> UInt8 {
    switch bits {
    case 8: return row.load(fromByteOffset: index, as: UInt8.self)
    case 4: return (row.load(fromByteOffset: index >> 1, as: UInt8.self) >> UInt8((index & 1) << 2)) & 0xF
    default: return (row.load(fromByteOffset: index >> 2, as: UInt8.self) >> UInt8((index & 3) << 1)) & 0x3
    }
  }

  /// Dequantizes one row (`headDim` values) of `codes`/`scales`/`zeros` at `row` of the layout.
  @inlinable
  func dequantizeRow(
    codes: UnsafeRawPointer, scales: UnsafeRawPointer, zeros: UnsafeRawPointer, row: Int, headDim: Int,
    into out: UnsafeMutablePointer<Float>, stride: Int
  ) {
    let codeRow = codes + row * Self.codeBytes(headDim: headDim, bits: bits)
    let groups = headDim / groupSize
    for g in 0..<groups {
      let scale = load1(scales, row * groups + g, metaType)
      let zero = load1(zeros, row * groups + g, metaType)
      for j in (g * groupSize)..<((g + 1) * groupSize) {
        out[j * stride] = (Float(Self.code(codeRow, j, bits: bits)) - zero) * scale
      }
    }
  }

  /// Codes `first..<first+16` of a packed row as floats, natural order (`first` a multiple of
  /// 16). One or two words are broadcast across lanes and shifted by per-lane amounts; the int to
  /// float conversion adds the code to 2²³'s mantissa.
  @inline(__always) @usableFromInline
  static func codes16(_ row: UnsafeRawPointer, _ first: Int, bits: Int) -> SIMD16<Float> {
    let words: SIMD16<UInt32>
    switch bits {
    case 8:
      let quad = row.loadUnaligned(fromByteOffset: first, as: SIMD4<UInt32>.self)
      words = SIMD16(quad[0], quad[0], quad[0], quad[0], quad[1], quad[1], quad[1], quad[1],
                     quad[2], quad[2], quad[2], quad[2], quad[3], quad[3], quad[3], quad[3])
        &>> SIMD16(0, 8, 16, 24, 0, 8, 16, 24, 0, 8, 16, 24, 0, 8, 16, 24) & 0xFF
    case 4:
      let pair = row.loadUnaligned(fromByteOffset: first >> 1, as: SIMD2<UInt32>.self)
      words = SIMD16(lowHalf: SIMD8(repeating: pair[0]), highHalf: SIMD8(repeating: pair[1]))
        &>> SIMD16(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28) & 0xF
    default:
      let word = row.loadUnaligned(fromByteOffset: first >> 2, as: UInt32.self)
      words = SIMD16(repeating: word) &>> SIMD16(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) & 0x3
    }
    return unsafeBitCast(words | 0x4B00_0000, to: SIMD16<Float>.self) - 8_388_608
  }

  /// Whether rows can take the SIMD path (whole vectors per group).
  @inlinable
  public func isVectorizable(headDim: Int) -> Bool { headDim % 16 == 0 && groupSize % 16 == 0 }

  /// Row `row` of keys or values dequantized into `out` (natural order) with SIMD; needs
  /// `isVectorizable`.
  @inline(__always) @usableFromInline
  func dequantizeRowVector(
    codes: UnsafeRawPointer, scales: UnsafeRawPointer, zeros: UnsafeRawPointer, row: Int, headDim: Int,
    into out: UnsafeMutablePointer<Float>
  ) {
    let codeRow = codes + row * Self.codeBytes(headDim: headDim, bits: bits)
    let groups = headDim / groupSize
    for g in 0..<groups {
      let scale = SIMD16<Float>(repeating: load1(scales, row * groups + g, metaType))
      let zero = SIMD16<Float>(repeating: load1(zeros, row * groups + g, metaType))
      var j = g * groupSize
      while j < (g + 1) * groupSize {
        UnsafeMutableRawPointer(out + j).storeBytes(of: (Self.codes16(codeRow, j, bits: bits) - zero) * scale, as: SIMD16<Float>.self)
        j += 16
      }
    }
  }

  /// Key `token` of `kvHead` as f32, natural order, SIMD (needs `isVectorizable`).
  @inline(__always) @usableFromInline
  func dequantizeKeyVector(kvHead: Int, token: Int, capacity: Int, headDim: Int, into out: UnsafeMutablePointer<Float>) {
    dequantizeRowVector(codes: keyCodes, scales: keyScales, zeros: keyZeros, row: kvHead * capacity + token, headDim: headDim, into: out)
  }

  /// Value `token` of `kvHead` as f32, natural order, SIMD (needs `isVectorizable`).
  @inline(__always) @usableFromInline
  func dequantizeValueVector(kvHead: Int, token: Int, capacity: Int, headDim: Int, into out: UnsafeMutablePointer<Float>) {
    dequantizeRowVector(codes: valueCodes, scales: valueScales, zeros: valueZeros, row: kvHead * capacity + token, headDim: headDim, into: out)
  }

  /// Keys of tokens `first..<first+count` of `kvHead` as f32 `[headDim][32]` (dimension-major,
  /// as `KVSegment` keys with capacity 32); columns from `count` on are zero.
  @inlinable
  public func dequantizeKeys(
    kvHead: Int, first: Int, count: Int, capacity: Int, headDim: Int, into out: UnsafeMutablePointer<Float>
  ) {
    if count < 32 { out.update(repeating: 0, count: 32 * headDim) }
    for t in 0..<count {
      dequantizeRow(
        codes: keyCodes, scales: keyScales, zeros: keyZeros, row: kvHead * capacity + first + t, headDim: headDim,
        into: out + t, stride: 32)
    }
  }

  /// Value `token` of `kvHead` as f32 (natural order).
  @inlinable
  public func dequantizeValue(
    kvHead: Int, token: Int, capacity: Int, headDim: Int, into out: UnsafeMutablePointer<Float>
  ) {
    dequantizeRow(
      codes: valueCodes, scales: valueScales, zeros: valueZeros, row: kvHead * capacity + token, headDim: headDim,
      into: out, stride: 1)
  }

  /// Key `token` of `kvHead` as f32 (natural order).
  @inlinable
  public func dequantizeKey(
    kvHead: Int, token: Int, capacity: Int, headDim: Int, into out: UnsafeMutablePointer<Float>
  ) {
    dequantizeRow(
      codes: keyCodes, scales: keyScales, zeros: keyZeros, row: kvHead * capacity + token, headDim: headDim,
      into: out, stride: 1)
  }
}
