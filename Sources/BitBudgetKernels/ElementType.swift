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

// MARK: - Bulk conversions

/// Loads one element of `type` and widens it to f32.
@inlinable @inline(__always)
func load1(_ base: UnsafeRawPointer, _ index: Int, _ type: ElementType) -> Float {
  switch type {
  case .f32: return base.loadUnaligned(fromByteOffset: index &* 4, as: Float.self)
  case .bf16: return bf16ToFloat(base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
  case .f16: return f16ToFloat(base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
  }
}

/// Converts `count` f32 values to `type` (round half to even) and stores them at element `index`
/// of `base`. One pass; the per-type loops are plain integer/float code that LLVM vectorizes.
@inlinable
public func storeConverted(
  _ source: UnsafePointer<Float>, count: Int, to base: UnsafeMutableRawPointer, at index: Int,
  as type: ElementType
) {
  switch type {
  case .f32:
    (base + index &* 4).copyMemory(from: source, byteCount: count &* 4)
  case .bf16:
    let destination = base + index &* 2
    for i in 0..<count {
      destination.storeBytes(of: floatToBF16(source[i]), toByteOffset: i &* 2, as: UInt16.self)
    }
  case .f16:
    let destination = base + index &* 2
    for i in 0..<count {
      destination.storeBytes(of: floatToF16(source[i]), toByteOffset: i &* 2, as: UInt16.self)
    }
  }
}

/// Like `storeConverted`, but element `i` goes to element `index + i · stride` (a column of a
/// row-major array, e.g. one token's key in a dimension-major KV block).
@inlinable
public func storeConverted(
  _ source: UnsafePointer<Float>, count: Int, to base: UnsafeMutableRawPointer, at index: Int,
  stride: Int, as type: ElementType
) {
  switch type {
  case .f32:
    for i in 0..<count { base.storeBytes(of: source[i], toByteOffset: (index &+ i &* stride) &* 4, as: Float.self) }
  case .bf16:
    for i in 0..<count {
      base.storeBytes(of: floatToBF16(source[i]), toByteOffset: (index &+ i &* stride) &* 2, as: UInt16.self)
    }
  case .f16:
    for i in 0..<count {
      base.storeBytes(of: floatToF16(source[i]), toByteOffset: (index &+ i &* stride) &* 2, as: UInt16.self)
    }
  }
}

/// Widens `count` elements of `type` starting at element `index` of `base` into f32
/// `destination`, in natural order. One pass, vectorized by LLVM.
@inlinable
public func loadConverted(
  from base: UnsafeRawPointer, at index: Int, count: Int, as type: ElementType,
  into destination: UnsafeMutablePointer<Float>
) {
  switch type {
  case .f32:
    UnsafeMutableRawPointer(destination).copyMemory(from: base + index &* 4, byteCount: count &* 4)
  case .bf16:
    let source = base + index &* 2
    for i in 0..<count {
      destination[i] = bf16ToFloat(source.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
    }
  case .f16:
    let source = base + index &* 2
    for i in 0..<count {
      destination[i] = f16ToFloat(source.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
    }
  }
}
