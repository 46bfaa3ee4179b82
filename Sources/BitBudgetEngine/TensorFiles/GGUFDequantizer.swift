import BitBudgetKernels

/// Widens rows of ggml block-quantized tensors to f32, following the block layouts of llama.cpp's
/// `ggml-common.h`:
/// - Q8_0: f16 scale `d`, 32 × int8 — `x = d·q`.
/// - Q4_0: `d`, 16 bytes of nibbles (low nibbles are elements 0–15, high 16–31) — `x = d·(q − 8)`.
/// - Q4_1: `d`, `m`, nibbles — `x = d·q + m`.
/// - Q5_0: `d`, 32 high bits, nibbles — `x = d·(q − 16)` with `q = nibble | high bit << 4`.
/// - Q5_1: `d`, `m`, high bits, nibbles — `x = d·q + m`.
/// - Q4_K: super-blocks of 256: f16 `d`, `dmin`, 12 bytes of 6-bit scales and mins for 8
///   sub-blocks of 32, 128 bytes of nibbles — `x = d·scale·q − dmin·min`.
/// - Q5_K: as Q4_K with 32 bytes of high bits before the nibbles: bit `g` of byte `l` is the
///   fifth bit of element `32g + l`.
/// - Q6_K: super-blocks of 256: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales,
///   f16 `d` — `x = d·scale·(q − 32)` over 16 sub-blocks of 16.
/// Plus the float types F32, F16 and BF16.
public enum GGUFDequantizer {
  /// The types this engine reads.
  public static let supportedTypes: Set<String> = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]

  @inline(__always)
  static func half(_ base: UnsafeRawPointer, _ offset: Int) -> Float {
    f16ToFloat(base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
  }

  /// Widens `count` elements (a whole number of blocks) of `type` at `source` into `destination`.
  public static func dequantize(
    _ type: GGMLType, _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
  ) throws {
    let blocks = count / type.blockSize
    switch type.name {
    case "F32":
      UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
    case "F16":
      loadConverted(from: source, at: 0, count: count, as: .f16, into: destination)
    case "BF16":
      loadConverted(from: source, at: 0, count: count, as: .bf16, into: destination)
    case "Q8_0":
      for b in 0..<blocks {
        let block = source + b * 34
        let d = half(block, 0)
        let y = destination + b * 32
        for j in 0..<32 { y[j] = d * Float(block.load(fromByteOffset: 2 + j, as: Int8.self)) }
      }
    case "Q4_0", "Q4_1":
      let hasMin = type.name == "Q4_1"
      let size = hasMin ? 20 : 18
      for b in 0..<blocks {
        let block = source + b * size
        let d = half(block, 0)
        let m = hasMin ? half(block, 2) : 0
        let qs = block + (hasMin ? 4 : 2)
        let y = destination + b * 32
        for j in 0..<16 {
          let byte = qs.load(fromByteOffset: j, as: UInt8.self)
          if hasMin {
            y[j] = Float(byte & 0x0F) * d + m
            y[j + 16] = Float(byte >> 4) * d + m
          } else {
            y[j] = Float(Int(byte & 0x0F) - 8) * d
            y[j + 16] = Float(Int(byte >> 4) - 8) * d
          }
        }
      }
    case "Q5_0", "Q5_1":
      let hasMin = type.name == "Q5_1"
      let size = hasMin ? 24 : 22
      for b in 0..<blocks {
        let block = source + b * size
        let d = half(block, 0)
        let m = hasMin ? half(block, 2) : 0
        let highBits = block.loadUnaligned(fromByteOffset: hasMin ? 4 : 2, as: UInt32.self).littleEndian
        let qs = block + (hasMin ? 8 : 6)
        let y = destination + b * 32
        for j in 0..<16 {
          let byte = qs.load(fromByteOffset: j, as: UInt8.self)
          let low = Int(byte & 0x0F) | Int((highBits >> UInt32(j)) & 1) << 4
          let high = Int(byte >> 4) | Int((highBits >> UInt32(j + 16)) & 1) << 4
          if hasMin {
            y[j] = Float(low) * d + m
            y[j + 16] = Float(high) * d + m
          } else {
            y[j] = Float(low - 16) * d
            y[j + 16] = Float(high - 16) * d
          }
        }
      }
    case "Q4_K", "Q5_K":
      // Q5_K: 32 bytes of fifth bits between the scales and the nibbles.
      let fiveBit = type.name == "Q5_K"
      for b in 0..<blocks {
        let block = source + b * type.blockBytes
        let d = half(block, 0)
        let dmin = half(block, 2)
        let scales = block + 4
        let qh = block + 16
        let qs = block + (fiveBit ? 48 : 16)
        let y = destination + b * 256
        for group in 0..<8 {
          let (scale, minimum) = scaleAndMin(scales, group)
          let dg = d * Float(scale), mg = dmin * Float(minimum)
          for l in 0..<32 {
            var q = qs.load(fromByteOffset: 32 * (group / 2) + l, as: UInt8.self) >> (4 * UInt8(group % 2)) & 0x0F
            if fiveBit { q |= (qh.load(fromByteOffset: l, as: UInt8.self) >> UInt8(group) & 1) << 4 }
            y[32 * group + l] = dg * Float(q) - mg
          }
        }
      }
    case "Q6_K":
      for b in 0..<blocks {
        let block = source + b * 210
        let ql = block
        let qh = block + 128
        let scales = block + 192
        let d = half(block, 208)
        let y = destination + b * 256
        for half in 0..<2 {
          let low = ql + 64 * half
          let high = qh + 32 * half
          let scale = scales + 8 * half
          let out = y + 128 * half
          for l in 0..<32 {
            let s = l / 16
            let h = Int(high.load(fromByteOffset: l, as: UInt8.self))
            let a = Int(low.load(fromByteOffset: l, as: UInt8.self))
            let c = Int(low.load(fromByteOffset: l + 32, as: UInt8.self))
            let q1 = ((a & 0x0F) | ((h >> 0) & 3) << 4) - 32
            let q2 = ((c & 0x0F) | ((h >> 2) & 3) << 4) - 32
            let q3 = ((a >> 4) | ((h >> 4) & 3) << 4) - 32
            let q4 = ((c >> 4) | ((h >> 6) & 3) << 4) - 32
            out[l] = d * Float(scale.load(fromByteOffset: s, as: Int8.self)) * Float(q1)
            out[l + 32] = d * Float(scale.load(fromByteOffset: s + 2, as: Int8.self)) * Float(q2)
            out[l + 64] = d * Float(scale.load(fromByteOffset: s + 4, as: Int8.self)) * Float(q3)
            out[l + 96] = d * Float(scale.load(fromByteOffset: s + 6, as: Int8.self)) * Float(q4)
          }
        }
      }
    default:
      throw EngineError.unsupported(
        "ggml type \(type.name) (supported: \(supportedTypes.sorted().joined(separator: ", ")))")
    }
  }

  /// The 6-bit scale and min of sub-block `j` (0..<8) of a Q4_K super-block.
  @inline(__always)
  static func scaleAndMin(_ q: UnsafeRawPointer, _ j: Int) -> (UInt8, UInt8) {
    @inline(__always) func byte(_ i: Int) -> UInt8 { q.load(fromByteOffset: i, as: UInt8.self) }
    if j < 4 { return (byte(j) & 63, byte(j + 4) & 63) }
    return ((byte(j + 4) & 0x0F) | ((byte(j - 4) >> 6) << 4), (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4))
  }
}
