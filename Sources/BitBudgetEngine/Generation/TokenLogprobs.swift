import Foundation

/// The model's log-probabilities at one sampled position: the log-softmax of the raw logits over
/// the vocabulary limit, before temperature and the filters (what OpenAI's API and vLLM report),
/// of the chosen token and of the most likely tokens.
public struct TokenLogprobs: Sendable, Equatable {
  /// A token and its log-probability (natural log).
  public struct Alternative: Sendable, Equatable {
    public var token: Int
    public var logprob: Float
  }

  /// The chosen token's log-probability (natural log, ≤ 0).
  public var logprob: Float
  /// The `top` most likely tokens, most likely first (among equal logits the lower id first).
  public var alternatives: [Alternative]

  /// Computes them from one row of logits. Cost: two passes over the row (its maximum, then
  /// `exp` of every logit summed in Double, with a k-element insertion list).
  public init(logits: UnsafeBufferPointer<Float>, chosen: Int, top: Int) {
    var largest = -Float.infinity
    for logit in logits { largest = max(largest, logit) }
    var sum = 0.0
    var best: [Alternative] = []
    best.reserveCapacity(top + 1)
    for (token, logit) in logits.enumerated() {
      if largest.isFinite { sum += Foundation.exp(Double(logit - largest)) }
      guard top > 0, best.count < top || logit > best[best.count - 1].logprob else { continue }
      var slot = best.count
      while slot > 0 && best[slot - 1].logprob < logit { slot -= 1 }
      best.insert(Alternative(token: token, logprob: logit), at: slot)
      if best.count > top { best.removeLast() }
    }
    // An infinite largest logit leaves no finite normalizer: the maxima share the mass equally.
    let maxima = largest.isFinite ? 0 : logits.reduce(0) { $0 + ($1 == largest ? 1 : 0) }
    func normalized(_ logit: Float) -> Float {
      guard largest.isFinite else { return logit == largest ? -Float(Foundation.log(Double(maxima))) : -.infinity }
      return Float(Double(logit - largest) - Foundation.log(sum))
    }
    logprob = logits.indices.contains(chosen) ? normalized(logits[chosen]) : -.infinity
    alternatives = best.map { Alternative(token: $0.token, logprob: normalized($0.logprob)) }
  }
}
