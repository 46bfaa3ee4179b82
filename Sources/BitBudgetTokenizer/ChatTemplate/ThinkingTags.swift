/// The delimiters a reasoning model writes its thinking between.
public struct ThinkingTags: Sendable, Equatable {
  public var open: String
  public var close: String

  /// Qwen3, QwQ, DeepSeek-R1 and its distills, SmolLM3, Phi-4-reasoning.
  public static let think = ThinkingTags(open: "<think>", close: "</think>")
  /// Mistral's reasoning models (Magistral, Ministral Reasoning).
  public static let bracketThink = ThinkingTags(open: "[THINK]", close: "[/THINK]")

  public static let known: [ThinkingTags] = [.think, .bracketThink]

  /// `text` (a budget-forcing text written with `</think>`) with this model's close tag instead.
  public func closing(_ text: String) -> String {
    close == ThinkingTags.think.close ? text : text.replacingOccurrences(of: ThinkingTags.think.close, with: close)
  }
}

extension Tokenizer {
  /// The model's own thinking delimiters: the first known pair whose closing tag is one token of
  /// this vocabulary; nil for a model that does not think in tags (Llama 3, Gemma 3).
  public var thinkingTags: ThinkingTags? {
    ThinkingTags.known.first { id(of: $0.close) != nil }
  }
}

extension Tokenizer {
  /// End-of-turn tokens a chat reply stops at: those of Qwen (`<|im_end|>`), Llama 3
  /// (`<|eot_id|>`), Phi (`<|end|>`) and Gemma (`<end_of_turn>`) that `template` writes and this
  /// vocabulary has. A base checkpoint's generation config lists only its end of text, yet its
  /// template ends turns with these.
  public func endOfTurnIds(_ template: ChatTemplate) -> [Int] {
    ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"].compactMap { token in
      template.source.contains(token) ? id(of: token) : nil
    }
  }
}
