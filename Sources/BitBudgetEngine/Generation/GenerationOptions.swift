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
