import Foundation

/// How well a model predicts a text with one KV cache, against the same model with a baseline
/// cache (usually full): perplexity of both and the KL divergence of their next-token
/// distributions, the measure llama.cpp's `perplexity --kl-divergence` reports for quantization.
public struct TextScore: Sendable, Codable {
  /// Tokens scored (every token after the prompt).
  public var scoredTokens: Int
  public var perplexity: Double
  public var baselinePerplexity: Double
  /// Mean over positions of KL(baseline ‖ cache) in nats.
  public var meanKL: Double
  /// The 99th percentile of the per-position KL.
  public var kl99: Double
  /// Fraction of positions where both caches give the same most likely token.
  public var top1Agreement: Double
  /// `residentBytes` and `residentTokens` of both caches at the end.
  public var kvBytes: Int
  public var baselineKVBytes: Int
  public var kvTokens: Int
  public var seconds: Double
}

public enum TextScoring {
  /// Feeds `tokens` to both caches as a generation would see them: the first `promptTokens` as
  /// one prefill, then one token per forward pass (both sequences batched in one pass), so
  /// eviction and quantization act exactly as during decoding. Each position's next-token
  /// distributions are compared in Double. Cost: one two-row forward pass per scored token.
  public static func score(
    session: InferenceSession, tokens: [Int], promptTokens: Int, cache: any KVCache, baseline: any KVCache,
    progress: ((Int) -> Void)? = nil
  ) throws -> TextScore {
    guard promptTokens >= 1, promptTokens < tokens.count else {
      throw EngineError.invalidInput("the text has \(tokens.count) tokens; it needs more than the \(promptTokens) prompt tokens")
    }
    let start = Date()
    var logProbability = 0.0, baselineLogProbability = 0.0
    var divergences: [Double] = []
    var agreements = 0
    func compare(_ view: LogitsView, next: Int) {
      let (ours, theirs) = (logSoftmax(view.row(0)), logSoftmax(view.row(1)))
      var kl = 0.0
      for i in 0..<ours.count where theirs[i] > -.infinity { kl += Foundation.exp(theirs[i]) * (theirs[i] - ours[i]) }
      divergences.append(max(0, kl))
      logProbability += ours[next]
      baselineLogProbability += theirs[next]
      if argmax(ours) == argmax(theirs) { agreements += 1 }
    }
    let prompt = Array(tokens.prefix(promptTokens))
    var view = try session.forward(
      [SequenceInput(cache: cache, tokens: prompt), SequenceInput(cache: baseline, tokens: prompt)],
      logits: .lastOfEachSequence)
    for position in promptTokens..<tokens.count {
      compare(view, next: tokens[position])
      progress?(position)
      guard position + 1 < tokens.count else { break }
      let token = [tokens[position]]
      view = try session.forward(
        [SequenceInput(cache: cache, tokens: token), SequenceInput(cache: baseline, tokens: token)],
        logits: .lastOfEachSequence, linearPath: .streaming)
    }
    let n = Double(divergences.count)
    let sorted = divergences.sorted()
    return TextScore(
      scoredTokens: divergences.count, perplexity: Foundation.exp(-logProbability / n),
      baselinePerplexity: Foundation.exp(-baselineLogProbability / n), meanKL: divergences.reduce(0, +) / n,
      kl99: sorted[min(sorted.count - 1, Int(0.99 * n))], top1Agreement: Double(agreements) / n,
      kvBytes: cache.residentBytes, baselineKVBytes: baseline.residentBytes, kvTokens: cache.residentTokens,
      seconds: Date().timeIntervalSince(start))
  }

  static func logSoftmax(_ logits: UnsafeBufferPointer<Float>) -> [Double] {
    let top = Double(logits.max() ?? 0)
    var total = 0.0
    for value in logits { total += Foundation.exp(Double(value) - top) }
    let shift = top + Foundation.log(total)
    return logits.map { Double($0) - shift }
  }

  static func argmax(_ values: [Double]) -> Int {
    var best = 0
    for i in values.indices where values[i] > values[best] { best = i }
    return best
  }
}
