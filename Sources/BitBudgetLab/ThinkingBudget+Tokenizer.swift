import BitBudgetEngine
import BitBudgetEval
import BitBudgetTokenizer

extension ThinkingBudget {
  /// A budget of `budget` thinking tokens for a model whose vocabulary is `tokenizer`'s: at the
  /// budget, `text` is forced — a preset of `BudgetForcing.presets` (its `</think>` becoming the
  /// model's own closing tag) or the text itself, which must close the thinking — and until
  /// `minimumThinking` tokens an earlier end of thinking becomes `waitText`.
  public static func forTokenizer(
    _ tokenizer: Tokenizer, budget: Int, answerTokens: Int, text: String, minimumThinking: Int = 0,
    waitText: String = BudgetForcing.waitText
  ) throws(LabError) -> ThinkingBudget {
    guard let tags = tokenizer.thinkingTags, let end = tokenizer.id(of: tags.close) else {
      throw .invalidScenario("the tokenizer has no end-of-thinking token (</think> or [/THINK]), so thinking cannot be budgeted")
    }
    let forced = BudgetForcing.presets[text].map(tags.closing) ?? text
    let forcedTokens = tokenizer.encode(forced)
    guard forcedTokens.contains(end) else {
      throw .invalidScenario("the budget text must contain \(tags.close) to close the thinking")
    }
    return ThinkingBudget(
      budget: budget, answerTokens: answerTokens, endOfThinking: end, forcedTokens: forcedTokens,
      minimumThinking: minimumThinking, waitTokens: tokenizer.encode(waitText))
  }
}
