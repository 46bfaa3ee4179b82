import BitBudgetKernels
import BitBudgetTokenizer

/// What a ``ReasoningModel`` is asked to generate from.
public enum ReasoningPrompt: Sendable, Equatable {
  /// A conversation, rendered with the model's chat template (a chat reply also stops at the
  /// template's end of turn).
  case messages([ChatMessage])
  /// Raw text, encoded as the tokenizer encodes a prompt (with its beginning-of-sequence token).
  case text(String)
  /// Token ids, as they are.
  case tokens([Int])
}

/// How a ``ReasoningModel`` generates: length, sampling, thinking budget and KV cache.
///
/// Every field has a default; `ReasoningOptions()` generates one sample with the model's own
/// sampling settings into a full cache.
public struct ReasoningOptions: Sendable, Equatable {
  /// Most tokens a sample draws (thinking included). Tokens budget forcing inserts come on top,
  /// at most the budget's `maxInsertedTokens`. nil: the thinking budget plus `answerTokens` with a
  /// budget, else 256.
  public var maxTokens: Int?
  /// nil: the model's `generation_config.json` (greedy without one).
  public var sampling: SamplingParameters?
  /// Sample i draws from stream i of this seed, so samples do not depend on how many run.
  public var seed: UInt64 = 0
  /// The chat template's `enable_thinking`. Off, a Qwen3 prompt closes the thinking itself
  /// (an empty `<think></think>`) and everything generated is answer.
  public var thinking = true
  /// Thinking tokens after which budget forcing closes the thinking with `budgetText` (s1's
  /// budget forcing; the paper's thinking budget T). nil: no budget.
  public var thinkingBudget: Int?
  /// Tokens the answer may take after a forced close.
  public var answerTokens = 256
  /// What closes forced thinking: a name of `BudgetForcing.presets` (`paper`, `qwen3`, `s1`;
  /// their `</think>` becomes the model's own tag) or a text that contains the model's closing tag.
  public var budgetText = "paper"
  /// Until this many thinking tokens, an end of thinking is replaced by `waitText` (the paper's
  /// two-sided forcing when equal to the budget).
  public var minimumThinking = 0
  public var waitText = BudgetForcing.waitText
  /// The KV cache policy each sample's cache follows (full, eviction, quantization).
  public var kv: KVCacheSpec = .full
  /// How a dense cache stores keys and values.
  public var kvElementType: ElementType = .bf16

  public init(
    maxTokens: Int? = nil, sampling: SamplingParameters? = nil, seed: UInt64 = 0, thinking: Bool = true,
    thinkingBudget: Int? = nil, answerTokens: Int = 256, kv: KVCacheSpec = .full
  ) {
    self.maxTokens = maxTokens
    self.sampling = sampling
    self.seed = seed
    self.thinking = thinking
    self.thinkingBudget = thinkingBudget
    self.answerTokens = answerTokens
    self.kv = kv
  }
}
