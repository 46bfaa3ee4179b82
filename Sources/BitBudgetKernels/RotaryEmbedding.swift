import Foundation

/// Rotary position embedding in the non-interleaved ("rotate_half") form of transformers: dimension
/// `j` is rotated with dimension `j + D/2` by the angle `p · θ^(−2j/D)`.
///
/// The angles and their cosines/sines are computed the way transformers does (f32 inverse
/// frequencies, f32 product with the position), so keys match the reference to f32 rounding.
/// No table of all positions is kept: `fill(position:)` costs `D/2` sin/cos pairs per token.
public struct RotaryEmbedding: Sendable {
  public let headDim: Int
  public let theta: Double
  public let scaling: RopeScaling
  /// `θ^(−2j/D)` for `j` in `0..<D/2` (scaled as `scaling` says), in f32 as transformers computes it.
  public let inverseFrequencies: [Float]
  /// The factor on every cos and sin (YaRN's attention factor; 1 otherwise).
  public let attentionScaling: Float

  public init(headDim: Int, theta: Double, scaling: RopeScaling = .none) {
    self.headDim = headDim
    self.theta = theta
    self.scaling = scaling
    (inverseFrequencies, attentionScaling) = scaling.inverseFrequencies(dim: headDim, theta: theta)
  }

  /// Writes `cos` and `sin` of the `D/2` angles of `position` (times the attention scaling).
  public func fill(
    position: Int, cos cosines: UnsafeMutablePointer<Float>, sin sines: UnsafeMutablePointer<Float>
  ) {
    let p = Float(position)
    for j in 0..<(headDim / 2) {
      let angle = Double(p * inverseFrequencies[j])
      cosines[j] = Float(Foundation.cos(angle)) * attentionScaling
      sines[j] = Float(Foundation.sin(angle)) * attentionScaling
    }
  }

  /// Rotates `heads` consecutive head vectors of `headDim` values in place with the angles of one
  /// position (`cos`/`sin` from `fill`).
  @inlinable
  public static func rotate(
    _ vectors: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
    cos cosines: UnsafePointer<Float>, sin sines: UnsafePointer<Float>
  ) {
    let half = headDim / 2
    for h in 0..<heads {
      let x = vectors + h * headDim
      var j = 0
      while j + 16 <= half {
        let x1 = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self)
        let x2 = UnsafeRawPointer(x + j + half).loadUnaligned(as: SIMD16<Float>.self)
        let c = UnsafeRawPointer(cosines + j).loadUnaligned(as: SIMD16<Float>.self)
        let s = UnsafeRawPointer(sines + j).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(x + j).storeBytes(of: x1 * c - x2 * s, as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(x + j + half).storeBytes(of: x2 * c + x1 * s, as: SIMD16<Float>.self)
        j += 16
      }
      while j < half {
        let x1 = x[j], x2 = x[j + half]
        x[j] = x1 * cosines[j] - x2 * sines[j]
        x[j + half] = x2 * cosines[j] + x1 * sines[j]
        j += 1
      }
    }
  }
}
