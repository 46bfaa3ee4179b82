import Foundation

/// Why a sample stopped.
public enum FinishReason: String, Sendable, Codable {
  /// It produced a stop token (kept in its tokens).
  case eos
  /// It reached the maximum number of generated tokens (or, after budget forcing, of answer
  /// tokens without thinking budget).
  case length
  /// Its thinking reached the budget and was closed by the forced text (whatever ended the answer).
  case budget
}

/// A thinking budget enforced by budget forcing (s1): when a sample has generated `budget` tokens
/// without closing its thinking, `forcedTokens` (which close it, e.g. "\n</think>\n\n**Final
/// Answer**\n\\boxed{") are appended and fed through the model, and the sample answers within
/// `answerTokens` more tokens. With `minimumThinking`, a sample that closes its thinking (or stops)
/// earlier has the closing token replaced by `waitTokens` ("Wait") and goes on thinking.
public struct ThinkingBudget: Sendable, Equatable {
  public var budget: Int
  public var answerTokens: Int
  /// The token that ends thinking (`</think>`).
  public var endOfThinking: Int
  public var forcedTokens: [Int]
  public var minimumThinking: Int
  public var waitTokens: [Int]

  public init(
    budget: Int, answerTokens: Int = 256, endOfThinking: Int, forcedTokens: [Int],
    minimumThinking: Int = 0, waitTokens: [Int] = []
  ) {
    self.budget = budget
    self.answerTokens = answerTokens
    self.endOfThinking = endOfThinking
    self.forcedTokens = forcedTokens
    self.minimumThinking = minimumThinking
    self.waitTokens = waitTokens
  }

  /// Most positions a sample's inserted tokens can take beyond its sampled tokens: the forced
  /// text, plus what the "Wait" insertions add. Each insertion replaces one sampled token (the
  /// early end of thinking, not fed) with at most `waitTokens.count` tokens, all counted as
  /// thinking, and none goes past the budget, so the "Wait" tokens of a sample total at most
  /// S = min(minimumThinking − 1 + waitTokens.count, budget) over at least ⌈S / waitTokens.count⌉
  /// insertions. With a one-token "Wait" (Qwen3's) that adds nothing.
  public var maxInsertedTokens: Int {
    guard minimumThinking > 0, !waitTokens.isEmpty else { return forcedTokens.count }
    let waits = min(minimumThinking - 1 + waitTokens.count, budget)
    let insertions = (waits + waitTokens.count - 1) / waitTokens.count
    return forcedTokens.count + waits - insertions
  }
}

/// What to generate.
public struct GenerationOptions: Sendable {
  /// Most tokens each sample may sample (inserted forced/"Wait" tokens not counted).
  public var maxTokens: Int
  public var sampling: SamplingParameters
  /// Parallel samples G.
  public var samples: Int
  /// Sample `i` draws from `SampleRandom(seed: seed, stream: firstStream + i)`.
  public var seed: UInt64
  /// The random stream of sample 0 (to run sample `k` of a larger set on its own).
  public var firstStream: UInt64 = 0
  public var stopTokens: Set<Int>
  /// Only ids below this are chosen (a model's embedding often has padding rows past the
  /// tokenizer's last id).
  public var vocabularyLimit: Int?
  public var thinkingBudget: ThinkingBudget?
  /// When set, each drawn token's log-probability and this many most likely alternatives are
  /// computed (`TokenLogprobs`; one more pass over the logits per token) and passed to the token
  /// handler.
  public var logprobs: Int?

  public init(
    maxTokens: Int, sampling: SamplingParameters = .greedy, samples: Int = 1, seed: UInt64 = 0,
    stopTokens: Set<Int> = [], vocabularyLimit: Int? = nil, thinkingBudget: ThinkingBudget? = nil
  ) {
    self.maxTokens = maxTokens
    self.sampling = sampling
    self.samples = samples
    self.seed = seed
    self.stopTokens = stopTokens
    self.vocabularyLimit = vocabularyLimit
    self.thinkingBudget = thinkingBudget
  }
}

/// One generated sample.
public struct SampleResult: Sendable {
  /// New tokens: sampled ones, forced and "Wait" tokens where they were inserted, and the stop
  /// token when `finish == .eos` (or the answer ended with one after forcing).
  public var tokens: [Int] = []
  public var finish: FinishReason = .length
  /// Tokens before the end of thinking (all of them if thinking never ended); counted only with a
  /// thinking budget.
  public var thinkingTokens = 0
  /// Whether the forced text was inserted.
  public var forced = false
  /// Times `</think>` (or a stop token) was replaced by "Wait".
  public var waits = 0
  /// Tokens its KV cache holds at the end (per layer, the largest over layers): fewer than the
  /// sequence when the cache policy evicts.
  public var kvTokens = 0
  /// Bytes its KV cache holds at the end, storage shared with other samples included.
  public var kvBytes = 0
}

/// The outcome of a generation call.
public struct GenerationResult: Sendable {
  public var samples: [SampleResult]
  public var promptTokens: Int
  /// Wall time of the prompt's forward passes.
  public var prefillSeconds: Double
  /// Wall time of the forward passes after the prompt.
  public var decodeSeconds: Double
  /// Forward passes after the prompt.
  public var decodeSteps: Int
  /// Tokens fed through the model after the prompt, over all samples.
  public var decodedTokens: Int
  /// Bytes of KV-cache storage the samples hold together (storage shared since the prompt counted
  /// once), at the end.
  public var kvBytes: Int
}

/// Generates one or more samples after a prompt.
///
/// The prompt is prefilled once; each sample then continues in its own KV cache forked from the
/// prompt's (blocks shared until written; see `FullKVCache`). All live samples are decoded together
/// in one forward pass per step — one matrix–matrix product over their rows, so the weights are
/// read once per step for all of them — and finished samples drop out. Each sample has its own
/// random stream, and the kernels compute a row the same way whatever other rows share its pass,
/// so a sample's tokens do not depend on G, on the other samples or on the thread count.
public struct Generator {
  public let session: InferenceSession

  public init(session: InferenceSession) {
    self.session = session
  }

  /// Generates `options.samples` samples after `prompt` into caches forked from `cache` (which
  /// may already hold context; sample 0 continues in `cache` itself). `onToken` sees every token
  /// appended to a sample, as it happens; an error it throws ends generation.
  public func generate(
    prompt: [Int], options: GenerationOptions, cache: any KVCache,
    onToken: DecodeBatch.TokenHandler? = nil
  ) throws -> GenerationResult {
    let batch = DecodeBatch(session: session)
    let start = Date()
    let group = try batch.add(prompt: prompt, options: options, cache: cache, onToken: onToken)
    while batch.hasWork { try batch.step() }
    // Decoding: everything after the prompt's passes (the first tokens' draws included).
    let decodeSeconds = Date().timeIntervalSince(start) - batch.prefillSeconds
    let (samples, kvBytes) = batch.remove(group)
    return GenerationResult(
      samples: samples, promptTokens: prompt.count, prefillSeconds: batch.prefillSeconds, decodeSeconds: decodeSeconds,
      decodeSteps: batch.passes, decodedTokens: batch.decodedTokens, kvBytes: kvBytes)
  }

  /// Greedy decoding of one sequence, as transformers' `generate(do_sample=False)`.
  public func generateGreedy(
    prompt: [Int], maxTokens: Int, stopTokens: Set<Int>, cache: any KVCache
  ) throws -> GenerationResult {
    try generate(prompt: prompt, options: GenerationOptions(maxTokens: maxTokens, stopTokens: stopTokens), cache: cache)
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
