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

/// How far one cache configuration moves a model's next-token distributions from another's on
/// the same text (`perplexity --baseline-kv`).
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
    var comparison = Comparison()
    let prompt = Array(tokens.prefix(promptTokens))
    var view = try session.forward(
      [SequenceInput(cache: cache, tokens: prompt), SequenceInput(cache: baseline, tokens: prompt)],
      logits: .lastOfEachSequence)
    for position in promptTokens..<tokens.count {
      comparison.add(ours: view.row(0), theirs: view.row(1), next: tokens[position])
      progress?(position)
      guard position + 1 < tokens.count else { break }
      let token = [tokens[position]]
      view = try session.forward(
        [SequenceInput(cache: cache, tokens: token), SequenceInput(cache: baseline, tokens: token)],
        logits: .lastOfEachSequence, linearPath: .streaming)
    }
    return comparison.score(
      kvBytes: cache.residentBytes, baselineKVBytes: baseline.residentBytes, kvTokens: cache.residentTokens,
      seconds: Date().timeIntervalSince(start))
  }

  /// Running sums of the per-position comparison of two next-token distributions.
  struct Comparison {
    var logProbability = 0.0, baselineLogProbability = 0.0
    var divergences: [Double] = []
    var agreements = 0

    /// Compares the distributions (in Double) before `next`, the token that follows.
    mutating func add(ours oursLogits: UnsafeBufferPointer<Float>, theirs theirsLogits: UnsafeBufferPointer<Float>, next: Int) {
      let (ours, theirs) = (logSoftmax(oursLogits), logSoftmax(theirsLogits))
      var kl = 0.0
      for i in 0..<ours.count where theirs[i] > -.infinity { kl += Foundation.exp(theirs[i]) * (theirs[i] - ours[i]) }
      divergences.append(max(0, kl))
      logProbability += ours[next]
      baselineLogProbability += theirs[next]
      if argmax(ours) == argmax(theirs) { agreements += 1 }
    }

    func score(kvBytes: Int, baselineKVBytes: Int, kvTokens: Int, seconds: Double) -> TextScore {
      let n = Double(divergences.count)
      let sorted = divergences.sorted()
      return TextScore(
        scoredTokens: divergences.count, perplexity: Foundation.exp(-logProbability / n),
        baselinePerplexity: Foundation.exp(-baselineLogProbability / n), meanKL: divergences.reduce(0, +) / n,
        kl99: sorted[min(sorted.count - 1, Int(0.99 * n))], top1Agreement: Double(agreements) / n,
        kvBytes: kvBytes, baselineKVBytes: baselineKVBytes, kvTokens: kvTokens, seconds: seconds)
    }
  }

  /// Compares two models (e.g. quantized weights against their 16-bit original, same
  /// vocabulary) on `tokens`, cut into independent windows of `window` tokens, each fed in
  /// chunks with logits on every row (prefill speed; the KV caches are full). Every position
  /// after a window's first token is scored.
  public static func compareModels(
    session: InferenceSession, baseline baselineSession: InferenceSession, tokens: [Int], window: Int,
    progress: ((Int) -> Void)? = nil
  ) throws -> TextScore {
    guard tokens.count >= 2, window >= 2 else { throw EngineError.invalidInput("comparing models needs at least 2 tokens per window") }
    guard session.model.config.vocabSize == baselineSession.model.config.vocabSize else {
      throw EngineError.invalidInput("the two models have different vocabularies")
    }
    let start = Date()
    var comparison = Comparison()
    let chunk = min(session.maxRows, session.maxLogitRows, baselineSession.maxRows, baselineSession.maxLogitRows)
    var first = 0
    while first + 1 < tokens.count {
      let segment = Array(tokens[first..<min(tokens.count, first + window)])
      let cache = session.makeCache(elementType: .f32), baseline = baselineSession.makeCache(elementType: .f32)
      var position = 0
      while position + 1 < segment.count {
        let end = min(segment.count - 1, position + chunk)
        let piece = Array(segment[position..<end])
        let ours = try session.forward([SequenceInput(cache: cache, tokens: piece)], logits: .all)
        let theirs = try baselineSession.forward([SequenceInput(cache: baseline, tokens: piece)], logits: .all)
        for r in 0..<piece.count { comparison.add(ours: ours.row(r), theirs: theirs.row(r), next: segment[position + r + 1]) }
        position = end
        progress?(first + position)
      }
      first += window
    }
    return comparison.score(kvBytes: 0, baselineKVBytes: 0, kvTokens: 0, seconds: Date().timeIntervalSince(start))
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
