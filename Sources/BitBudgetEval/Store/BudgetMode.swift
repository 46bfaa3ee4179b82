/// How a scenario's thinking budget T is enforced (budget forcing, s1; the paper §2.2).
///
/// - `paper`: two-sided, as in the paper. A sample that ends its thinking (or stops) before T
///   has the end replaced by "Wait" and thinks on; at T the answer is forced. Every sample thinks
///   exactly T tokens, so accuracy against T measures the budget itself.
/// - `cap`: one-sided. The answer is forced at T; a sample may end its thinking earlier.
/// - `none`: no forcing; only the scenario's token limit stops a sample.
public enum BudgetMode: String, Codable, Sendable, CaseIterable {
  case paper, cap, none

  /// The default of `eval` and sweeps: the paper's.
  public static let standard = BudgetMode.paper
}

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
