import BitBudgetTokenizer
import BitBudgetEval

/// How far a scenario's run has come: samples stored without an error, samples in all, and the
/// pass@1 of the stored ones.
public struct ScenarioProgress: Sendable, Equatable {
  public var done: Int
  public var total: Int
  public var passAt1: Double

  public init(done: Int, total: Int, passAt1: Double) {
    self.done = done
    self.total = total
    self.passAt1 = passAt1
  }
}

/// Where a scenario's samples come from: the local engine (`LocalScenarioBackend`) or an
/// OpenAI-compatible server (`RemoteScenarioBackend`).
///
/// A run generates only the samples the store does not hold yet (a killed run resumes; samples of
/// the same scenario at another G are copied, not generated again) and commits each as soon as it
/// is done. A sample that fails is stored as an error and redone by the next run; a scenario
/// over its memory limit is refused before anything is generated.
public protocol ScenarioBackend {
  /// `Scenario.backend` of its scenarios (nil for the local engine).
  var label: String? { get }

  /// `Scenario.chatTemplate` of its scenarios: the digest of its chat template, nil for Qwen3's.
  var chatTemplateKey: String? { get }

  /// The weight bits its scenarios record: what the loaded model holds, or for a server the bits
  /// asked for (16 when none).
  func weightBits(asked: Int?) -> Int

  /// The weights' bytes of `scenario`: the loaded model's, or the memory model's.
  func weightsBytes(_ scenario: Scenario) -> Int?

  /// Refuses, with the numbers, a scenario over its memory limit (for the local engine: with the
  /// longest prompt of `items`). `run` checks it first; a sweep checks it before it records the
  /// scenario.
  func admit(_ scenario: Scenario, task: EvalTask, items: [TaskItem]) throws

  /// Generates the missing samples of `scenario` for `items` into `store` and returns the tokens
  /// generated. `progress` is called after each question (local engine) or stored sample
  /// (servers); an error it throws stops the run (what is stored stays).
  func run(
    _ scenario: Scenario, task: EvalTask, items: [TaskItem], answerTokens: Int, store: ResultStore,
    progress: @escaping @Sendable (ScenarioProgress) throws -> Void
  ) throws -> Int
}

extension ChatTemplate {
  /// `Scenario.chatTemplate` for questions asked in this template: nil for Qwen3's own (the
  /// template of every scenario stored before models brought theirs), else its text's digest.
  public var scenarioKey: String? {
    source == ChatTemplate.qwen3Source ? nil : Scenario.chatTemplateDigest(source)
  }
}
