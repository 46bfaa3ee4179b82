/// The texts budget forcing inserts.
public enum BudgetForcing {
  /// Named forced texts (appended at the budget; each closes the thinking with `</think>`):
  /// `paper` (the paper's "**Final Answer**\n\boxed{"), `qwen3` (the Qwen3 report's early-exit
  /// instruction), `s1` (s1's "Final Answer:").
  public static let presets: [String: String] = [
    "paper": forcedText,
    "qwen3": "Considering the limited time by the user, I have to give the solution based on the thinking directly now.\n</think>.\n\n",
    "s1": "\n</think>\n\nFinal Answer:",
  ]

  /// The forced text of evaluations (`eval`, sweeps, remote backends).
  public static let forcedText = "\n</think>\n\n**Final Answer**\n\\boxed{"

  /// What replaces an early end of thinking in `paper` mode (one token in Qwen3's vocabulary).
  public static let waitText = "Wait"
}
