/// Static dispatch on the element type of stored weights/KV: kernels are generic over a `Widening`
/// type and specialized for each, so no switch or existential sits in an inner loop.
///
/// Hot loops widen 32 elements at a time with `load32`. For the 16-bit types this loads 64 bytes as
/// sixteen 32-bit words and returns the even-indexed elements in one vector and the odd-indexed
/// ones in the other ("pair order"), which costs one shift or mask per vector — Swift's generic
/// `SIMD16<UInt32>(truncatingIfNeeded:)` and `SIMD16<Float>(SIMD16<Float16>)` are not inlined and
/// cost a function call per 16 values. The f32 operand of a dot product must be in the same order
/// (`PairOrder.permute`).
@usableFromInline
protocol Widening {
  /// Whether `load32` returns (evens, odds) rather than (first 16, last 16).
  static var usesPairOrder: Bool { get }
  /// Bytes per stored element.
  static var byteCount: Int { get }
  /// Elements `index..<index+32` (relative to `base`) widened to f32.
  static func load32(_ base: UnsafeRawPointer, _ index: Int) -> (SIMD16<Float>, SIMD16<Float>)
  /// Element `index` widened to f32.
  static func load1(_ base: UnsafeRawPointer, _ index: Int) -> Float
}

@usableFromInline
enum BF16Widening: Widening {
  @usableFromInline static var usesPairOrder: Bool { true }
  @usableFromInline static var byteCount: Int { 2 }

  @inline(__always) @usableFromInline
  static func load32(_ base: UnsafeRawPointer, _ index: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    let words = base.loadUnaligned(fromByteOffset: index &* 2, as: SIMD16<UInt32>.self)
    return (
      unsafeBitCast(words &<< 16, to: SIMD16<Float>.self),
      unsafeBitCast(words & 0xFFFF_0000, to: SIMD16<Float>.self)
    )
  }

  @inline(__always) @usableFromInline
  static func load1(_ base: UnsafeRawPointer, _ index: Int) -> Float {
    bf16ToFloat(base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
  }
}

@usableFromInline
enum F16Widening: Widening {
  @usableFromInline static var usesPairOrder: Bool { true }
  @usableFromInline static var byteCount: Int { 2 }

  /// IEEE half bits (in the low 16 bits of each lane) to f32: the exponent and mantissa shifted
  /// into place and rescaled by 2¹¹² through a float multiply (which also normalizes subnormals);
  /// infinities/NaNs get the all-ones exponent; then the sign.
  @inline(__always) @usableFromInline
  static func widen(_ half: SIMD16<UInt32>) -> SIMD16<Float> {
    let magnitude = unsafeBitCast((half & 0x7FFF) &<< 13, to: SIMD16<Float>.self) * 0x1p112
    var bits = unsafeBitCast(magnitude, to: SIMD16<UInt32>.self)
    bits.replace(with: bits | 0x7F80_0000, where: (half & 0x7C00) .== 0x7C00)
    return unsafeBitCast(bits | ((half & 0x8000) &<< 16), to: SIMD16<Float>.self)
  }

  @inline(__always) @usableFromInline
  static func load32(_ base: UnsafeRawPointer, _ index: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    let words = base.loadUnaligned(fromByteOffset: index &* 2, as: SIMD16<UInt32>.self)
    return (widen(words & 0xFFFF), widen(words &>> 16))
  }

  @inline(__always) @usableFromInline
  static func load1(_ base: UnsafeRawPointer, _ index: Int) -> Float {
    f16ToFloat(base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
  }
}

@usableFromInline
enum F32Widening: Widening {
  @usableFromInline static var usesPairOrder: Bool { false }
  @usableFromInline static var byteCount: Int { 4 }

  @inline(__always) @usableFromInline
  static func load32(_ base: UnsafeRawPointer, _ index: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    (
      base.loadUnaligned(fromByteOffset: index &* 4, as: SIMD16<Float>.self),
      base.loadUnaligned(fromByteOffset: index &* 4 &+ 64, as: SIMD16<Float>.self)
    )
  }

  @inline(__always) @usableFromInline
  static func load1(_ base: UnsafeRawPointer, _ index: Int) -> Float {
    base.loadUnaligned(fromByteOffset: index &* 4, as: Float.self)
  }
}

/// The f32 side of a dot product against 16-bit values loaded in pair order.
public enum PairOrder {
  /// Copies `count` values from `source` to `destination` with each full block of 32 rearranged
  /// as `[x0, x2, …, x30, x1, x3, …, x31]`; values after the last full block are copied unchanged.
  @inlinable
  public static func permute(
    _ source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutablePointer<Float>
  ) {
    var start = 0
    while start + 32 <= count {
      let s = source + start
      let d = destination + start
      for j in 0..<16 {
        d[j] = s[2 * j]
        d[16 + j] = s[2 * j + 1]
      }
      start += 32
    }
    for i in start..<count { destination[i] = source[i] }
  }

  /// The inverse of `permute`.
  @inlinable
  public static func restore(
    _ source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutablePointer<Float>
  ) {
    let blocks = count / 32
    for b in 0..<blocks {
      let s = source + b * 32
      let d = destination + b * 32
      for j in 0..<16 {
        d[2 * j] = s[j]
        d[2 * j + 1] = s[16 + j]
      }
    }
    let tail = blocks * 32
    for i in tail..<count { destination[i] = source[i] }
  }
}
