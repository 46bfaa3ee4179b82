import BitBudgetTokenizer
import Foundation

// What ties a model to its text: its tokenizer, its chat template, and thinking budgets written
// in its vocabulary.

extension ChatTemplate {
  /// The template `model` is prompted with: `explicit` (a file, or `qwen3`) when given, else the
  /// model's own; a model without one is refused rather than prompted in another model's format.
  public static func forModel(_ model: DecoderModel, tokenizer: Tokenizer, explicit: String?) throws -> ChatTemplate {
    if let explicit { return try load(explicit, tokenizer: tokenizer) }
    guard let template = try tokenizer.chatTemplate(name: model.path) else {
      throw EngineError.invalidInput(
        "\(model.path) has no chat template (tokenizer_config.json chat_template, chat_template.jinja, or GGUF tokenizer.chat_template); give one (a .jinja file, a tokenizer_config.json, or qwen3; the CLI's --chat-template)")
    }
    return template
  }
}

extension DecoderModel {
  /// The tokenizer at `explicit` (a folder or file), else the model's own (GGUF metadata or the
  /// folder's tokenizer files), or nil when there is none.
  public func tokenizer(explicit: String? = nil) throws -> Tokenizer? {
    if let explicit { return try Tokenizer.load(anyFrom: explicit) }
    if let gguf { return try Tokenizer.fromGGUF(gguf) }
    guard let folder = directory else { return nil }
    let hasTokenizer = ["tokenizer.json", "vocab.json"].contains {
      FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0))
    }
    return hasTokenizer ? try Tokenizer.load(from: folder) : nil
  }
}

extension ThinkingBudget {
  /// A budget of `budget` thinking tokens for a model whose vocabulary is `tokenizer`'s: at the
  /// budget, `text` is forced — a preset of `BudgetForcing.presets` (its `</think>` becoming the
  /// model's own closing tag) or the text itself, which must close the thinking — and until
  /// `minimumThinking` tokens an earlier end of thinking becomes `waitText`.
  public static func forTokenizer(
    _ tokenizer: Tokenizer, budget: Int, answerTokens: Int, text: String, minimumThinking: Int = 0,
    waitText: String = BudgetForcing.waitText
  ) throws(EngineError) -> ThinkingBudget {
    guard let tags = tokenizer.thinkingTags, let end = tokenizer.id(of: tags.close) else {
      throw .invalidInput("the tokenizer has no end-of-thinking token (</think> or [/THINK]), so thinking cannot be budgeted")
    }
    let forced = BudgetForcing.presets[text].map(tags.closing) ?? text
    let forcedTokens = tokenizer.encode(forced)
    guard forcedTokens.contains(end) else {
      throw .invalidInput("the budget text must contain \(tags.close) to close the thinking")
    }
    return ThinkingBudget(
      budget: budget, answerTokens: answerTokens, endOfThinking: end, forcedTokens: forcedTokens,
      minimumThinking: minimumThinking, waitTokens: tokenizer.encode(waitText))
  }
}
