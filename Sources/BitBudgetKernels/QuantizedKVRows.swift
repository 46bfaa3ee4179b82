/// Tokens of a KV cache stored HQQ-quantized per token and KV head, with groups of `groupSize`
/// along the head dimension (HQQ axis 1): each value is `(code − zero) · scale`, with one scale
/// and zero per token, head and group (stored as `metaType`).
///
/// Layout, in one allocation of `byteCount(…)` bytes, `capacity` token slots (a multiple of 32):
/// - key codes `[kvHeads][headDim][capacity]`, packed along tokens (token `t` of a dimension row
///   in bits `(t mod k)·bits…` of byte `t / k`, k = 8 / bits), and key scales and zeros
///   `[kvHeads][groups][capacity]`: 16 consecutive tokens of one dimension unpack into one vector,
///   so the kernel computes 16 tokens' logits per pass, as for dense keys;
/// - value codes `[kvHeads][capacity][headDim]`, packed along dimensions, and value scales and
///   zeros `[kvHeads][capacity][groups]`: one token's value vector unpacks 16 dimensions at a time.
///
/// The attention kernel never holds more than one token's (or 16 tokens') dequantized values, so
/// reading a quantized cache needs no dequantized copy of it.
public struct QuantizedKVRows: @unchecked Sendable {
  public let base: UnsafeRawPointer
  public let kvHeads: Int
  public let headDim: Int
  public let capacity: Int
  public let bits: Int
  public let groupSize: Int
  public let metaType: ElementType

  public init(
    base: UnsafeRawPointer, kvHeads: Int, headDim: Int, capacity: Int, bits: Int, groupSize: Int, metaType: ElementType
  ) {
    precondition((bits == 2 || bits == 4 || bits == 8) && capacity % 32 == 0 && headDim % groupSize == 0 && groupSize % 8 == 0)
    self.base = base
    self.kvHeads = kvHeads
    self.headDim = headDim
    self.capacity = capacity
    self.bits = bits
    self.groupSize = groupSize
    self.metaType = metaType
  }

  @inlinable public var groups: Int { headDim / groupSize }
  /// Bytes of codes of all keys (and again of all values).
  @inlinable public var codeBytes: Int { kvHeads * headDim * capacity * bits / 8 }
  /// Bytes of one kind of metadata (key scales, key zeros, value scales or value zeros).
  @inlinable public var metaBytes: Int { kvHeads * groups * capacity * metaType.byteCount }

  /// Bytes of the layout.
  public static func byteCount(kvHeads: Int, headDim: Int, capacity: Int, bits: Int, groupSize: Int, metaType: ElementType) -> Int {
    let rows = kvHeads * capacity
    return 2 * rows * headDim * bits / 8 + 4 * rows * (headDim / groupSize) * metaType.byteCount
  }

  @inlinable public var keyCodes: UnsafeRawPointer { base }
  @inlinable public var valueCodes: UnsafeRawPointer { base + codeBytes }
  @inlinable public var keyScales: UnsafeRawPointer { base + 2 * codeBytes }
  @inlinable public var keyZeros: UnsafeRawPointer { base + 2 * codeBytes + metaBytes }
  @inlinable public var valueScales: UnsafeRawPointer { base + 2 * codeBytes + 2 * metaBytes }
  @inlinable public var valueZeros: UnsafeRawPointer { base + 2 * codeBytes + 3 * metaBytes }

  // MARK: Element access (building, copying, reference code)

  /// Code `index` of a packed run.
  @inlinable
  public static func code(_ run: UnsafeRawPointer, _ index: Int, bits: Int) -> UInt8 {
    switch bits {
    case 8: return run.load(fromByteOffset: index, as: UInt8.self)
    case 4: return (run.load(fromByteOffset: index >> 1, as: UInt8.self) >> UInt8((index & 1) << 2)) & 0xF
    default: return (run.load(fromByteOffset: index >> 2, as: UInt8.self) >> UInt8((index & 3) << 1)) & 0x3
    }
  }

  /// Sets code `index` of a packed run (the other codes of its byte are kept).
  @inlinable
  public static func setCode(_ run: UnsafeMutableRawPointer, _ index: Int, _ code: UInt8, bits: Int) {
    let perByte = 8 / bits
    let shift = UInt8((index % perByte) * bits)
    let mask = UInt8((1 << bits) - 1) << shift
    let byte = run.load(fromByteOffset: index / perByte, as: UInt8.self)
    run.storeBytes(of: (byte & ~mask) | ((code << shift) & mask), toByteOffset: index / perByte, as: UInt8.self)
  }

  /// Where key code (`kvHead`, `token`, `dimension`) is: its run and index in it.
  @inlinable
  public func keyCodeLocation(kvHead: Int, token: Int, dimension: Int) -> (UnsafeRawPointer, Int) {
    (keyCodes + (kvHead * headDim + dimension) * capacity * bits / 8, token)
  }

  @inlinable
  public func valueCodeLocation(kvHead: Int, token: Int, dimension: Int) -> (UnsafeRawPointer, Int) {
    (valueCodes + (kvHead * capacity + token) * headDim * bits / 8, dimension)
  }

  /// Index of the (scale, zero) of a key or value, in the respective arrays.
  @inlinable
  public func keyMetaIndex(kvHead: Int, token: Int, group: Int) -> Int { (kvHead * groups + group) * capacity + token }
  @inlinable
  public func valueMetaIndex(kvHead: Int, token: Int, group: Int) -> Int { (kvHead * capacity + token) * groups + group }

  /// Key `dimension` of `token` of `kvHead`.
  @inlinable
  public func key(kvHead: Int, token: Int, dimension: Int) -> Float {
    let (run, index) = keyCodeLocation(kvHead: kvHead, token: token, dimension: dimension)
    let meta = keyMetaIndex(kvHead: kvHead, token: token, group: dimension / groupSize)
    return (Float(Self.code(run, index, bits: bits)) - load1(keyZeros, meta, metaType)) * load1(keyScales, meta, metaType)
  }

  /// Value `dimension` of `token` of `kvHead`.
  @inlinable
  public func value(kvHead: Int, token: Int, dimension: Int) -> Float {
    let (run, index) = valueCodeLocation(kvHead: kvHead, token: token, dimension: dimension)
    let meta = valueMetaIndex(kvHead: kvHead, token: token, group: dimension / groupSize)
    return (Float(Self.code(run, index, bits: bits)) - load1(valueZeros, meta, metaType)) * load1(valueScales, meta, metaType)
  }

  // MARK: Vectors (the attention kernel)

  /// Codes `first..<first+16` of a packed run as floats (`first` a multiple of 16). One to four
  /// words are broadcast across lanes and shifted by per-lane amounts; the int-to-float conversion
  /// adds the code to 2²³'s mantissa.
  @inline(__always) @usableFromInline
  static func codes16(_ run: UnsafeRawPointer, _ first: Int, bits: Int) -> SIMD16<Float> {
    let words: SIMD16<UInt32>
    switch bits {
    case 8:
      let quad = run.loadUnaligned(fromByteOffset: first, as: SIMD4<UInt32>.self)
      words = SIMD16(quad[0], quad[0], quad[0], quad[0], quad[1], quad[1], quad[1], quad[1],
                     quad[2], quad[2], quad[2], quad[2], quad[3], quad[3], quad[3], quad[3])
        &>> SIMD16(0, 8, 16, 24, 0, 8, 16, 24, 0, 8, 16, 24, 0, 8, 16, 24) & 0xFF
    case 4:
      let pair = run.loadUnaligned(fromByteOffset: first >> 1, as: SIMD2<UInt32>.self)
      words = SIMD16(lowHalf: SIMD8(repeating: pair[0]), highHalf: SIMD8(repeating: pair[1]))
        &>> SIMD16(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28) & 0xF
    default:
      let word = run.loadUnaligned(fromByteOffset: first >> 2, as: UInt32.self)
      words = SIMD16(repeating: word) &>> SIMD16(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) & 0x3
    }
    return unsafeBitCast(words | 0x4B00_0000, to: SIMD16<Float>.self) - 8_388_608
  }

  /// 16 values of `metaType` from element `index`, widened.
  @inline(__always) @usableFromInline
  func meta16(_ array: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> {
    switch metaType {
    case .f32: return array.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
    case .f16:
      let halves = array.loadUnaligned(fromByteOffset: index * 2, as: SIMD16<UInt16>.self)
      var result = SIMD16<Float>()
      for i in 0..<16 { result[i] = f16ToFloat(halves[i]) }
      return result
    case .bf16:
      let halves = array.loadUnaligned(fromByteOffset: index * 2, as: SIMD16<UInt16>.self)
      var result = SIMD16<Float>()
      for i in 0..<16 { result[i] = bf16ToFloat(halves[i]) }
      return result
    }
  }

  /// Codes of tokens `first..<first+16` of one key dimension.
  @inline(__always) @usableFromInline
  func keyCodes16(kvHead: Int, dimension: Int, first: Int) -> SIMD16<Float> {
    Self.codes16(keyCodes + (kvHead * headDim + dimension) * capacity * bits / 8, first, bits: bits)
  }

  /// Key scales and zeros of tokens `first..<first+16` for one group.
  @inline(__always) @usableFromInline
  func keyMeta16(kvHead: Int, group: Int, first: Int) -> (scale: SIMD16<Float>, zero: SIMD16<Float>) {
    let index = keyMetaIndex(kvHead: kvHead, token: first, group: group)
    return (meta16(keyScales, index), meta16(keyZeros, index))
  }

  /// Whether values can be unpacked 16 at a time (whole vectors per group).
  @inlinable
  public var vectorizesValues: Bool { headDim % 16 == 0 && groupSize % 16 == 0 }

  /// Value `token` of `kvHead` as f32 in natural order.
  @inline(__always) @usableFromInline
  func dequantizeValue(kvHead: Int, token: Int, into out: UnsafeMutablePointer<Float>) {
    if !vectorizesValues {
      for x in 0..<headDim { out[x] = value(kvHead: kvHead, token: token, dimension: x) }
      return
    }
    let run = valueCodes + (kvHead * capacity + token) * headDim * bits / 8
    for g in 0..<groups {
      let meta = valueMetaIndex(kvHead: kvHead, token: token, group: g)
      let scale = SIMD16<Float>(repeating: load1(valueScales, meta, metaType))
      let zero = SIMD16<Float>(repeating: load1(valueZeros, meta, metaType))
      var j = g * groupSize
      while j < (g + 1) * groupSize {
        UnsafeMutableRawPointer(out + j).storeBytes(of: (Self.codes16(run, j, bits: bits) - zero) * scale, as: SIMD16<Float>.self)
        j += 16
      }
    }
  }
}
