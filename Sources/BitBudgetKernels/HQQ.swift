/// HQQ's min–max group quantization as transformers' HQQ KV cache calls it (`Quantizer.quantize`
/// with `optimize=False, round_zero=False, channel_wise=True`): asymmetric, round-half-to-even, a
/// float zero point, one (scale, zero) pair per group of `groupSize` elements.
///
/// A tensor of `count` elements (flat, row-major) is grouped as HQQ groups it:
/// - axis 1: groups of `groupSize` consecutive elements (for a `[kvHeads, tokens, headDim]` KV
///   tensor: per token and head, `headDim / groupSize` groups);
/// - axis 0: the tensor viewed as `[groupSize, count / groupSize]`, one group per column, i.e.
///   element `f` belongs to group `f % (count / groupSize)`.
/// Codes stay in the tensor's own element order, one per byte here (packing is the caller's).
///
/// Per group: `s = min(maxq / (max − min), 2e4)` (the inverse scale), `z = −min · s`,
/// `code = clamp(round(x · s + z), 0, maxq)`; stored `scale = 1 / s`, `zero = z`; dequantized
/// `(code − zero) · scale`. Every step rounds to f32 as torch does (no fused multiply-add).
public enum HQQ {
  /// The group of element `index` of a `count`-element tensor.
  @inlinable
  public static func group(of index: Int, count: Int, groupSize: Int, axis: Int) -> Int {
    axis == 1 ? index / groupSize : index % (count / groupSize)
  }

  /// Quantizes `count` floats (a multiple of `groupSize`) into `codes` (`count` bytes) and
  /// `scales`, `zeros` (`count / groupSize` each). Cost: two passes over the input.
  public static func quantize(
    _ input: UnsafePointer<Float>, count: Int, bits: Int, groupSize: Int, axis: Int,
    codes: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>, zeros: UnsafeMutablePointer<Float>
  ) {
    precondition(count % groupSize == 0 && (axis == 0 || axis == 1) && (1...8).contains(bits))
    let groups = count / groupSize
    let maxq = Float((1 << bits) - 1)
    let minimum = UnsafeMutablePointer<Float>.allocate(capacity: groups)
    let maximum = UnsafeMutablePointer<Float>.allocate(capacity: groups)
    defer {
      minimum.deallocate()
      maximum.deallocate()
    }
    minimum.initialize(repeating: .infinity, count: groups)
    maximum.initialize(repeating: -.infinity, count: groups)
    for f in 0..<count {
      let g = group(of: f, count: count, groupSize: groupSize, axis: axis)
      minimum[g] = Swift.min(minimum[g], input[f])
      maximum[g] = Swift.max(maximum[g], input[f])
    }
    for g in 0..<groups {
      // A constant group divides by zero: inf, clamped like torch's clamp(max=2e4).
      let inverse = Swift.min(maxq / (maximum[g] - minimum[g]), 2e4)
      scales[g] = inverse  // inverted below, after the codes are made
      zeros[g] = -minimum[g] * inverse
    }
    for f in 0..<count {
      let g = group(of: f, count: count, groupSize: groupSize, axis: axis)
      let scaled = input[f] * scales[g]
      let shifted = scaled + zeros[g]
      codes[f] = UInt8(Swift.min(Swift.max(shifted.rounded(.toNearestOrEven), 0), maxq))
    }
    for g in 0..<groups { scales[g] = 1 / scales[g] }
  }

  /// `(code − zero) · scale` for every element.
  public static func dequantize(
    codes: UnsafePointer<UInt8>, count: Int, groupSize: Int, axis: Int,
    scales: UnsafePointer<Float>, zeros: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>
  ) {
    for f in 0..<count {
      let g = group(of: f, count: count, groupSize: groupSize, axis: axis)
      output[f] = (Float(codes[f]) - zeros[g]) * scales[g]
    }
  }
}
