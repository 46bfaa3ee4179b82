/// The floating-point storage formats of weights and KV caches. All arithmetic is done in `Float`
/// (f32); these types only say how values are stored and how they are widened on load.
public enum ElementType: String, Sendable, CaseIterable, CustomStringConvertible {
  case f32
  case f16
  case bf16

  /// Bytes per stored element.
  @inlinable public var byteCount: Int {
    switch self {
    case .f32: 4
    case .f16, .bf16: 2
    }
  }

  public var description: String { rawValue }
}

// MARK: - Scalar conversions

/// Widens a bfloat16 bit pattern to `Float` (exact).
@inlinable @inline(__always)
public func bf16ToFloat(_ bits: UInt16) -> Float {
  Float(bitPattern: UInt32(bits) &<< 16)
}

/// Rounds a `Float` to bfloat16, half to even (what `torch.Tensor.to(torch.bfloat16)` does).
/// NaN stays NaN (quiet), infinities stay infinite.
@inlinable @inline(__always)
public func floatToBF16(_ value: Float) -> UInt16 {
  let bits = value.bitPattern
  if value.isNaN { return UInt16(truncatingIfNeeded: (bits &>> 16) | 0x0040) }
  let roundingBias: UInt32 = 0x7FFF &+ ((bits &>> 16) & 1)
  return UInt16(truncatingIfNeeded: (bits &+ roundingBias) &>> 16)
}

/// Widens an IEEE half bit pattern to `Float` (exact).
@inlinable @inline(__always)
public func f16ToFloat(_ bits: UInt16) -> Float {
  Float(Float16(bitPattern: bits))
}

/// Rounds a `Float` to IEEE half, half to even; values beyond ±65504 become ±infinity.
@inlinable @inline(__always)
public func floatToF16(_ value: Float) -> UInt16 {
  Float16(value).bitPattern
}

// MARK: - Vector loads and stores (16 lanes)

/// Loads 16 consecutive elements of `type` starting at element `index` of `base` and widens them to
/// f32. `base` need not be aligned.
@inlinable @inline(__always)
func load16(_ base: UnsafeRawPointer, _ index: Int, _ type: ElementType) -> SIMD16<Float> {
  switch type {
  case .f32: return loadF32x16(base, index)
  case .bf16: return loadBF16x16(base, index)
  case .f16: return loadF16x16(base, index)
  }
}

@inlinable @inline(__always)
func loadF32x16(_ base: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> {
  base.loadUnaligned(fromByteOffset: index &* 4, as: SIMD16<Float>.self)
}

@inlinable @inline(__always)
func loadBF16x16(_ base: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> {
  let halfWords = base.loadUnaligned(fromByteOffset: index &* 2, as: SIMD16<UInt16>.self)
  let widened = SIMD16<UInt32>(truncatingIfNeeded: halfWords) &<< 16
  return unsafeBitCast(widened, to: SIMD16<Float>.self)
}

@inlinable @inline(__always)
func loadF16x16(_ base: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> {
  let halves = base.loadUnaligned(fromByteOffset: index &* 2, as: SIMD16<Float16>.self)
  return SIMD16<Float>(halves)
}

/// Loads one element of `type` and widens it to f32.
@inlinable @inline(__always)
func load1(_ base: UnsafeRawPointer, _ index: Int, _ type: ElementType) -> Float {
  switch type {
  case .f32: return base.loadUnaligned(fromByteOffset: index &* 4, as: Float.self)
  case .bf16: return bf16ToFloat(base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
  case .f16: return f16ToFloat(base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
  }
}

/// Converts `count` f32 values to `type` (round half to even) and stores them at element `index`.
/// Cost: one pass over the values; 16 lanes at a time.
@inlinable
public func storeConverted(
  _ source: UnsafePointer<Float>, count: Int, to base: UnsafeMutableRawPointer, at index: Int,
  as type: ElementType
) {
  switch type {
  case .f32:
    (base + index &* 4).copyMemory(from: source, byteCount: count &* 4)
  case .bf16:
    var i = 0
    while i &+ 16 <= count {
      let v = UnsafeRawPointer(source).loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
      let bits = unsafeBitCast(v, to: SIMD16<UInt32>.self)
      let bias = SIMD16<UInt32>(repeating: 0x7FFF) &+ ((bits &>> 16) & 1)
      let rounded = SIMD16<UInt16>(truncatingIfNeeded: (bits &+ bias) &>> 16)
      (base + (index &+ i) &* 2).storeBytes(of: rounded, as: SIMD16<UInt16>.self)
      // Rounding can carry a NaN payload into infinity; redo such lanes with the scalar rule.
      if any(v .!= v) {
        for lane in 0..<16 {
          (base + (index &+ i &+ lane) &* 2).storeBytes(
            of: floatToBF16(source[i &+ lane]), as: UInt16.self)
        }
      }
      i &+= 16
    }
    while i < count {
      (base + (index &+ i) &* 2).storeBytes(of: floatToBF16(source[i]), as: UInt16.self)
      i &+= 1
    }
  case .f16:
    var i = 0
    while i &+ 16 <= count {
      let v = UnsafeRawPointer(source).loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
      (base + (index &+ i) &* 2).storeBytes(of: SIMD16<Float16>(v), as: SIMD16<Float16>.self)
      i &+= 16
    }
    while i < count {
      (base + (index &+ i) &* 2).storeBytes(of: floatToF16(source[i]), as: UInt16.self)
      i &+= 1
    }
  }
}

/// Widens `count` elements of `type` starting at element `index` of `base` into f32 `destination`.
@inlinable
public func loadConverted(
  from base: UnsafeRawPointer, at index: Int, count: Int, as type: ElementType,
  into destination: UnsafeMutablePointer<Float>
) {
  var i = 0
  while i &+ 16 <= count {
    UnsafeMutableRawPointer(destination).storeBytes(
      of: load16(base, index &+ i, type), toByteOffset: i &* 4, as: SIMD16<Float>.self)
    i &+= 16
  }
  while i < count {
    destination[i] = load1(base, index &+ i, type)
    i &+= 1
  }
}
