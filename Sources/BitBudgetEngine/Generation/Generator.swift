import Foundation

/// Why a sequence stopped.
public enum FinishReason: String, Sendable, Codable {
  /// It produced a stop token (included in its tokens).
  case eos
  /// It reached the maximum number of new tokens.
  case length
}

/// The outcome of generating one sequence.
public struct GenerationResult: Sendable {
  /// New tokens, the stop token included when `finish == .eos`.
  public var tokens: [Int]
  public var finish: FinishReason
  public var promptTokens: Int
  /// Wall time of the prompt's forward passes.
  public var prefillSeconds: Double
  /// Wall time of the decode steps (one forward pass per new token after the first).
  public var decodeSeconds: Double
  /// Forward passes after the prompt (the first new token comes from the prompt's logits).
  public var decodeSteps: Int
}

/// Greedy decoding (`argmax` of the logits at every step), as transformers' `generate` with
/// `do_sample=False`.
public struct Generator {
  public let session: InferenceSession

  public init(session: InferenceSession) {
    self.session = session
  }

  /// Generates up to `maxTokens` tokens after `prompt` into `cache` (which may already hold
  /// context). Stops after a token in `stopTokens`. Only ids below `vocabularyLimit` are chosen
  /// (a model's embedding usually has padding rows past its tokenizer's last id). `onToken` sees
  /// each token as it is chosen; an error it throws ends generation.
  public func generateGreedy(
    prompt: [Int], maxTokens: Int, stopTokens: Set<Int>, cache: any KVCache,
    vocabularyLimit: Int? = nil, onToken: ((Int) throws -> Void)? = nil
  ) throws -> GenerationResult {
    guard !prompt.isEmpty else { throw EngineError.invalidInput("the prompt is empty: give at least one token") }
    guard maxTokens >= 0 else { throw EngineError.invalidInput("the maximum number of new tokens must not be negative") }
    // The last new token is sampled but never fed back, so it needs no position.
    let room = session.model.config.maxPositions - cache.nextPosition - prompt.count
    if room < 0 || maxTokens - 1 > room {
      throw EngineError.invalidInput(
        "the prompt (\(prompt.count) tokens) plus \(maxTokens) new tokens exceed the model's context of \(session.model.config.maxPositions) positions")
    }
    let prefillStart = Date()
    var result = GenerationResult(tokens: [], finish: .length, promptTokens: prompt.count, prefillSeconds: 0, decodeSeconds: 0, decodeSteps: 0)
    guard maxTokens > 0 else {
      _ = try session.prefill(prompt, cache: cache, logits: .none)
      result.prefillSeconds = Date().timeIntervalSince(prefillStart)
      return result
    }
    guard var logits = try session.prefill(prompt, cache: cache) else {
      throw EngineError.invalidInput("the prompt produced no logits")
    }
    result.prefillSeconds = Date().timeIntervalSince(prefillStart)
    let decodeStart = Date()
    while true {
      let row = logits.row(0)
      let token = try Self.argmax(UnsafeBufferPointer(rebasing: row.prefix(min(row.count, vocabularyLimit ?? row.count))))
      result.tokens.append(token)
      try onToken?(token)
      if stopTokens.contains(token) {
        result.finish = .eos
        break
      }
      if result.tokens.count >= maxTokens { break }
      logits = try session.forward([SequenceInput(cache: cache, tokens: [token])], logits: .lastOfEachSequence)
      result.decodeSteps += 1
    }
    result.decodeSeconds = Date().timeIntervalSince(decodeStart)
    return result
  }

  /// The index of the largest value (the first one on ties, as `torch.argmax`). NaN logits mean
  /// the model produced garbage and are an error.
  public static func argmax(_ values: UnsafeBufferPointer<Float>) throws -> Int {
    guard !values.isEmpty else { throw EngineError.invalidInput("no logits to choose from") }
    var best = 0
    var bestValue = values[0]
    var sawNaN = bestValue.isNaN
    for i in 1..<values.count {
      let v = values[i]
      sawNaN = sawNaN || v.isNaN
      if v > bestValue {
        best = i
        bestValue = v
      }
    }
    if sawNaN { throw EngineError.numericalFailure("the model produced NaN logits (corrupt weights, or an f16 overflow)") }
    return best
  }
}
