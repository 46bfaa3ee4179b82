/// What a ``ReasoningModel`` reports while it generates, in order for each sample.
public enum ReasoningEvent: Sendable {
  /// A token appended to a sample.
  case token(ReasoningToken)
  /// The sample reached its thinking budget; the forced text's tokens follow.
  case budgetReached(sample: Int)
  /// The sample ended its thinking before the minimum; the wait text's tokens follow and it
  /// thinks on.
  case thinkingExtended(sample: Int)
  /// The sample's thinking ended: the model's closing tag (`</think>`) was appended, drawn or
  /// forced. The tokens after it are the answer.
  case thinkingEnded(sample: Int)
  /// Every sample finished; the last event.
  case finished(ReasoningResult)
}

/// One token of a sample, as it is generated.
public struct ReasoningToken: Sendable, Equatable {
  /// The sample's index (0..<n).
  public var sample: Int
  public var id: Int
  /// The text this token completes, special tokens (`<|im_end|>`) left out. Empty while a
  /// multi-byte character is incomplete; the next token's text then carries it (a character
  /// still incomplete when the sample ends is not streamed; ``ReasoningSample/text`` has it).
  public var text: String
  /// True while the sample thinks (its closing tag included), false for the answer and for a
  /// model that does not think in tags.
  public var isThinking: Bool
  /// Drawn from the model, or inserted by budget forcing.
  public var origin: DecodeBatch.AppendedToken.Origin
}

/// A finished sample.
public struct ReasoningSample: Sendable, Equatable {
  public var index: Int
  /// Every generated token, inserted ones and the stop token included.
  public var tokens: [Int]
  /// The tokens decoded (empty without a tokenizer), special tokens kept.
  public var text: String
  /// The text before the closing tag (after an opening one). nil for a model that does not think
  /// in tags or a prompt that closed the thinking.
  public var thinking: String?
  /// The text after the closing tag; all of it when nothing was thought; nil when the thinking
  /// never closed.
  public var answer: String?
  /// Tokens before the closing tag (all of them when it never came); 0 when nothing was thought.
  public var thinkingTokens: Int
  public var finish: FinishReason
  /// Whether budget forcing closed the thinking.
  public var forced: Bool
  /// Tokens the sample's cache holds at the end (fewer than the sequence when it evicts).
  public var kvTokens: Int
  /// Bytes of the sample's cache, storage shared with other samples included.
  public var kvBytes: Int
}

/// Every sample of a generation, with its timing and memory.
public struct ReasoningResult: Sendable {
  public var samples: [ReasoningSample]
  /// The engine's account: prompt tokens, prefill and decode seconds, tokens decoded, KV bytes
  /// of all samples (storage shared since the prompt counted once).
  public var generation: GenerationResult
}
