import Foundation

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
/// Per group: `s = maxq / (max − min)` (the inverse scale; 1 when the range is at most 1e-4),
/// clamped to 2e4, `z = −min · s`, `code = clamp(round(x · s + z), 0, maxq)`; stored `scale =
/// 1 / s`, `zero = z`; dequantized `(code − zero) · scale`. Every step rounds to f32 as torch
/// does (no fused multiply-add).
///
/// `optimize` runs HQQ's proximal zero-point search (`optimize_weights_proximal_legacy`, the
/// `hqq` package's default, which transformers' HQQ KV cache gets by not passing `optimize`): up
/// to 20 rounds of `z ← mean_group(code − (x − shrink(x − x̂)) · s)` with the l0.7 shrinkage at
/// β = 10, stopping after the first round whose mean error over the whole tensor does not improve
/// (its update kept, as the package does).
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
    codes: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>, zeros: UnsafeMutablePointer<Float>,
    optimize: Bool = false
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
      let range = maximum[g] - minimum[g]
      let inverse = Swift.min(Swift.abs(range) <= 1e-4 ? 1 : maxq / range, 2e4)
      scales[g] = inverse  // inverted below, after the codes are made
      zeros[g] = -minimum[g] * inverse
    }
    if optimize { optimizeZeros(input, count: count, maxq: maxq, groupSize: groupSize, axis: axis, inverseScales: scales, zeros: zeros) }
    for f in 0..<count {
      let g = group(of: f, count: count, groupSize: groupSize, axis: axis)
      let scaled = input[f] * scales[g]
      let shifted = scaled + zeros[g]
      codes[f] = UInt8(Swift.min(Swift.max(shifted.rounded(.toNearestOrEven), 0), maxq))
    }
    for g in 0..<groups { scales[g] = 1 / scales[g] }
  }

  /// The proximal zero-point search of `quantize(optimize: true)`, in f32 as on a CPU.
  static func optimizeZeros(
    _ input: UnsafePointer<Float>, count: Int, maxq: Float, groupSize: Int, axis: Int,
    inverseScales: UnsafeMutablePointer<Float>, zeros: UnsafeMutablePointer<Float>
  ) {
    let groups = count / groupSize
    let beta: Float = 10, norm: Float = 0.7
    var best = Float.infinity
    var sums = [Double](repeating: 0, count: groups)
    for _ in 0..<20 {
      for g in 0..<groups { sums[g] = 0 }
      var error = 0.0
      for f in 0..<count {
        let g = group(of: f, count: count, groupSize: groupSize, axis: axis)
        let x = input[f], s = inverseScales[g], z = zeros[g]
        let scaled = x * s
        let code = Swift.min(Swift.max((scaled + z).rounded(.toNearestOrEven), 0), maxq)
        let restored = (code - z) / s
        let residual = x - restored
        let magnitude = Swift.abs(residual)
        let threshold = (1 / beta) * Foundation.pow(magnitude, norm - 1)
        let shrunk = Swift.max(magnitude - threshold, 0) * (residual > 0 ? 1 : residual < 0 ? -1 : 0)
        sums[g] += Double(code - (x - shrunk) * s)
        error += Double(magnitude)
      }
      for g in 0..<groups { zeros[g] = Float(sums[g] / Double(groupSize)) }
      let current = Float(error / Double(count))
      if current < best { best = current } else { break }
    }
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
