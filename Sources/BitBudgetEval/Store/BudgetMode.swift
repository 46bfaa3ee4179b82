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
