import Foundation

/// How RoPE's frequencies are stretched for contexts beyond the pretraining window, as
/// transformers' `rope_type` does it (`modeling_rope_utils.py`): each is a different set of
/// inverse frequencies, and YaRN also scales the cosines and sines.
public enum RopeScaling: Sendable, Equatable, CustomStringConvertible {
  /// Plain RoPE (`default`).
  case none
  /// Every frequency divided by `factor` (position interpolation).
  case linear(factor: Double)
  /// Llama 3.1's: low frequencies divided by `factor`, high ones kept, a smooth blend between.
  case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalContext: Int)
  /// YaRN (Qwen3's long-context recipe): frequencies blended between interpolated (÷ factor)
  /// and original by a linear ramp over the dimensions between the correction range of
  /// `betaFast`/`betaSlow` rotations in `originalContext` positions; cos/sin × `attentionFactor`.
  case yarn(factor: Double, originalContext: Int, attentionFactor: Double, betaFast: Double, betaSlow: Double, truncate: Bool)

  /// The `rope_scaling` object of a config.json that reads back as this scaling (nil for none).
  public var configObject: [String: Any]? {
    switch self {
    case .none:
      nil
    case .linear(let factor):
      ["rope_type": "linear", "factor": factor]
    case .llama3(let factor, let low, let high, let original):
      [
        "rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
        "original_max_position_embeddings": original,
      ]
    case .yarn(let factor, let original, let attentionFactor, let betaFast, let betaSlow, let truncate):
      [
        "rope_type": "yarn", "factor": factor, "original_max_position_embeddings": original, "attention_factor": attentionFactor,
        "beta_fast": betaFast, "beta_slow": betaSlow, "truncate": truncate,
      ]
    }
  }

  public var description: String {
    switch self {
    case .none: "none"
    case .linear(let factor): "linear ×\(factor)"
    case .llama3(let factor, _, _, let original): "llama3 ×\(factor) of \(original)"
    case .yarn(let factor, let original, _, _, _, _): "yarn ×\(factor) of \(original)"
    }
  }

  /// YaRN's attention factor when the config gives none: `0.1 ln(factor) + 1`, or the ratio of
  /// two such terms with `mscale`/`mscale_all_dim` (DeepSeek's spelling).
  public static func yarnAttentionFactor(factor: Double, mscale: Double?, mscaleAllDim: Double?) -> Double {
    func scale(_ m: Double) -> Double { factor <= 1 ? 1 : 0.1 * m * Foundation.log(factor) + 1 }
    if let mscale, let mscaleAllDim, mscale != 0, mscaleAllDim != 0 { return scale(mscale) / scale(mscaleAllDim) }
    return scale(1)
  }

  /// The `dim / 2` inverse frequencies for rotary dimension `dim` and base `theta`, in f32 as
  /// transformers computes them, and the factor on cos/sin.
  public func inverseFrequencies(dim: Int, theta: Double) -> (frequencies: [Float], attentionScaling: Float) {
    let base = Double(Float(theta))
    // `base ** (arange(0, dim, 2) / dim)` in f32.
    let powers = (0..<(dim / 2)).map { j in Float(Foundation.pow(base, Double(Float(2 * j) / Float(dim)))) }
    let plain = powers.map { 1 / $0 }
    switch self {
    case .none:
      return (plain, 1)
    case .linear(let factor):
      return (plain.map { $0 / Float(factor) }, 1)
    case .llama3(let factor, let low, let high, let original):
      // In f32 throughout, as transformers' tensors are.
      // A scalar over a tensor is torch's `reciprocal() * scalar`: two roundings.
      let lowWavelength = Float(Double(original) / low)
      let highWavelength = Float(Double(original) / high)
      let frequencies = plain.map { frequency -> Float in
        let wavelength = (1 / frequency) * Float(2 * Double.pi)
        if wavelength > lowWavelength { return frequency / Float(factor) }
        if wavelength < highWavelength { return frequency }
        let smooth = ((1 / wavelength) * Float(original) - Float(low)) / Float(high - low)
        return (1 - smooth) * frequency / Float(factor) + smooth * frequency
      }
      return (frequencies, 1)
    case .yarn(let factor, let original, let attentionFactor, let betaFast, let betaSlow, let truncate):
      func correctionDimension(_ rotations: Double) -> Double {
        Double(dim) * Foundation.log(Double(original) / (rotations * 2 * Double.pi)) / (2 * Foundation.log(theta))
      }
      var low = correctionDimension(betaFast)
      var high = correctionDimension(betaSlow)
      if truncate {
        low = low.rounded(.down)
        high = high.rounded(.up)
      }
      low = max(low, 0)
      high = min(high, Double(dim - 1))
      if low == high { high += 0.001 }
      let frequencies = powers.indices.map { j -> Float in
        let ramp = min(max((Float(j) - Float(low)) / Float(high - low), 0), 1)
        let extrapolation = 1 - ramp
        let interpolated = 1 / (Float(factor) * powers[j])
        return interpolated * (1 - extrapolation) + plain[j] * extrapolation
      }
      return (frequencies, Float(attentionFactor))
    }
  }
}
