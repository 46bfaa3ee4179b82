/// Element-wise kernels of a decoder layer: RMSNorm, SwiGLU's gate, residual adds, and a SIMD
/// `exp` for them and for softmax. All f32; 16 lanes at a time.
public enum Elementwise {
  /// RMSNorm as transformers' `Qwen3RMSNorm`/`LlamaRMSNorm` computes it in f32:
  /// `y = (x · 1/√(mean(x²) + eps)) · weight`. `x` and `y` may be the same buffer.
  /// Cost: two passes over `count` values.
  @inlinable
  public static func rmsNorm(
    _ x: UnsafePointer<Float>, count: Int, weight: WeightVector, epsilon: Float,
    into y: UnsafeMutablePointer<Float>
  ) {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= count {
      let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
      acc.addProduct(v, v)
      i += 16
    }
    var sum = horizontalSum(acc)
    while i < count {
      sum += x[i] * x[i]
      i += 1
    }
    let scale = 1 / (sum / Float(count) + epsilon).squareRoot()
    switch weight.elementType {
    case .bf16: scaleRows(BF16Widening.self, x, scale, weight.base, y, count)
    case .f16: scaleRows(F16Widening.self, x, scale, weight.base, y, count)
    case .f32: scaleRows(F32Widening.self, x, scale, weight.base, y, count)
    }
  }

  @inline(__always) @usableFromInline
  static func scaleRows<W: Widening>(
    _: W.Type, _ x: UnsafePointer<Float>, _ scale: Float, _ weight: UnsafeRawPointer,
    _ y: UnsafeMutablePointer<Float>, _ count: Int
  ) {
    for i in 0..<count { y[i] = (x[i] * scale) * W.load1(weight, i) }
  }

  /// SwiGLU's gate in place: `gate[i] = silu(gate[i]) · up[i]`, `silu(z) = z / (1 + e^(−z))`.
  @inlinable
  public static func siluMultiply(
    _ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int
  ) {
    var i = 0
    while i + 16 <= count {
      let g = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD16<Float>.self)
      let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD16<Float>.self)
      let silu = g / (1 + exp(-g))
      UnsafeMutableRawPointer(gate + i).storeBytes(of: silu * u, as: SIMD16<Float>.self)
      i += 16
    }
    if i < count {
      var g = SIMD16<Float>(), u = SIMD16<Float>()
      for lane in 0..<(count - i) {
        g[lane] = gate[i + lane]
        u[lane] = up[i + lane]
      }
      let result = g / (1 + exp(-g)) * u
      for lane in 0..<(count - i) { gate[i + lane] = result[lane] }
    }
  }

  /// Replaces `s[j]` by `e^(s[j] − max s)` and returns their sum (softmax before normalization).
  /// Vectorized throughout: the last partial group of 16 is padded with −∞ (whose exponential is
  /// 0). One call per row keeps `exp` inlined in the loop (called per vector, it costs a function
  /// call that passes 16 lanes in four registers).
  public static func softmaxNumerators(_ s: UnsafeMutablePointer<Float>, count: Int) -> Float {
    let full = count / 16 * 16
    let rest = count - full
    var tail = SIMD16<Float>(repeating: -.infinity)
    for lane in 0..<rest { tail[lane] = s[full + lane] }
    var maxima = tail
    var j = 0
    while j < full {
      let v = UnsafeRawPointer(s + j).loadUnaligned(as: SIMD16<Float>.self)
      maxima.replace(with: v, where: v .> maxima)
      j += 16
    }
    let m = SIMD16<Float>(repeating: maxima.max())
    var acc = SIMD16<Float>()
    j = 0
    while j < full {
      let e = exp(UnsafeRawPointer(s + j).loadUnaligned(as: SIMD16<Float>.self) - m)
      UnsafeMutableRawPointer(s + j).storeBytes(of: e, as: SIMD16<Float>.self)
      acc += e
      j += 16
    }
    if rest > 0 {
      let e = exp(tail - m)
      for lane in 0..<rest { s[full + lane] = e[lane] }
      acc += e
    }
    return horizontalSum(acc)
  }

  /// `y[i] += x[i]` for `count` values.
  @inlinable
  public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
      let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
      let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
      UnsafeMutableRawPointer(y + i).storeBytes(of: a + b, as: SIMD16<Float>.self)
      i += 16
    }
    while i < count {
      y[i] += x[i]
      i += 1
    }
  }

  /// `y[i] += scale · x[i]` for `count` values.
  @inlinable
  public static func add(_ x: UnsafePointer<Float>, scaledBy scale: Float, into y: UnsafeMutablePointer<Float>, count: Int) {
    let factor = SIMD16<Float>(repeating: scale)
    var i = 0
    while i + 16 <= count {
      let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
      let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
      UnsafeMutableRawPointer(y + i).storeBytes(of: b + factor * a, as: SIMD16<Float>.self)
      i += 16
    }
    while i < count {
      y[i] += scale * x[i]
      i += 1
    }
  }

  /// `e^x` per lane, within 2 ulp of the correctly rounded result for x in [−87, 88]; 0 below
  /// −87.3 (where the result would be subnormal), +∞ above 88.72, NaN for NaN.
  ///
  /// Cody–Waite reduction `x = n·ln2 + r`, |r| ≤ ln2/2, then the degree-6 minimax polynomial of
  /// Cephes' `expf` for `e^r`, scaled by `2^n` through the exponent bits.
  @inlinable @inline(__always)
  public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let upper = SIMD16<Float>(repeating: 88.72283)
    let lower = SIMD16<Float>(repeating: -87.33654)
    // `clamped` and `pointwiseMin/Max` are generic calls in Swift; masked replacement is inlined.
    var clamped = x
    clamped.replace(with: lower, where: x .< lower)
    clamped.replace(with: upper, where: x .> upper)
    // Round to the nearest integer by adding 1.5·2²³ (exact for |x·log2 e| < 2²²), which also
    // leaves the integer in the low mantissa bits: no float→int conversion (a generic call in Swift).
    let magic = SIMD16<Float>(repeating: 12_582_912)
    let shifted = clamped * 1.442695041 + magic
    let n = shifted - magic
    var r = clamped - n * 0.693359375
    r = r + n * 2.12194440e-4
    var p = SIMD16<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r * r + r + 1
    // 2^n for n in [-126, 128]; n = 128 only when x is at the upper clamp: split the scaling so the
    // exponent field never overflows, and overflow to +inf through the multiply.
    let ni = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let half = ni &>> 1
    let scaleA = unsafeBitCast((half &+ 127) &<< 23, to: SIMD16<Float>.self)
    let scaleB = unsafeBitCast(((ni &- half) &+ 127) &<< 23, to: SIMD16<Float>.self)
    var result = p * scaleA * scaleB
    result.replace(with: 0, where: x .< lower)
    result.replace(with: .infinity, where: x .> upper)
    result.replace(with: x, where: x .!= x)
    return result
  }
}
