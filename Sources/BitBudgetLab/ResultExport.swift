import BitBudgetAnalysis
import BitBudgetEval
import Foundation

/// What `ResultExport` writes.
public enum ExportFormat: String, CaseIterable, Sendable {
  /// Comma-separated, RFC 4180 quoting, a header row.
  case csv
  /// One JSON object per line (keys sorted).
  case jsonl
  /// One results JSON in lm-evaluation-harness' shape (`results`, `configs`, `versions`,
  /// `n-shot`, `higher_is_better`, `n-samples`, `config`, `date`): one "task" per scenario.
  case lmEval = "lm-eval"
}

/// The rows of a CSV or JSONL export.
public enum ExportRows: String, CaseIterable, Sendable {
  /// One row per stored sample, with its raw text.
  case samples
  /// One row per scenario: its settings, scores and memory.
  case scenarios
}

/// A results database written out for other tools. Rows stream scenario by scenario, so a large
/// database is not held in memory at once (the lm-eval JSON is one object, built whole).
public struct ResultExport {
  public let store: ResultStore
  /// Only scenarios of this task (its name as stored), or all.
  public var task: String?

  public init(store: ResultStore, task: String? = nil) {
    self.store = store
    self.task = task
  }

  static let sampleColumns = [
    "scenario_key", "task", "model", "weight_bits", "kv", "thinking_budget", "budget_mode", "max_tokens", "parallel", "question_id",
    "sample_index", "finish", "tokens", "thinking_tokens", "answer", "correct", "error", "seconds", "kv_bytes", "output",
  ]
  static let scenarioColumns = [
    "scenario_key", "task", "task_digest", "model", "weight_bits", "kv", "thinking_budget", "budget_mode", "max_tokens", "samples",
    "parallel", "temperature", "top_p", "top_k", "seed", "backend", "questions", "samples_stored", "errors", "pass_at_1",
    "pass_at_1_stderr", "maj_at_k", "maj_at_k_stderr", "generated_tokens", "generation_seconds", "tokens_per_second",
    "estimated_bytes", "peak_rss_bytes",
  ]

  /// Writes the export, one piece after another, to `output`.
  public func write(format: ExportFormat, rows: ExportRows, to output: (String) throws -> Void) throws {
    let scenarios = try store.scenarios().filter { task == nil || $0.task == task }
    if format == .lmEval {
      try output(try lmEvalJSON(scenarios))
      return
    }
    let columns = rows == .samples ? Self.sampleColumns : Self.scenarioColumns
    if format == .csv { try output(columns.joined(separator: ",") + "\r\n") }
    for scenario in scenarios {
      let lines = rows == .samples ? try sampleRows(scenario) : [try scenarioRow(scenario).row]
      for line in lines {
        switch format {
        case .csv: try output(columns.map { (line[$0] ?? .null).csv }.joined(separator: ",") + "\r\n")
        case .jsonl: try output(try Self.jsonLine(line) + "\n")
        case .lmEval: break
        }
      }
    }
  }

  /// One value of a row.
  enum Cell {
    case null, bool(Bool), int(Int), number(Double), text(String)

    init(_ value: Int?) { self = value.map { .int($0) } ?? .null }
    init(_ value: Double?) { self = value.map { .number($0) } ?? .null }
    init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    init(_ value: Bool) { self = .bool(value) }
    init(_ value: UInt64) { self = value <= UInt64(Int.max) ? .int(Int(value)) : .text(String(value)) }

    var json: Any {
      switch self {
      case .null: NSNull()
      case .bool(let value): value
      case .int(let value): value
      case .number(let value): value.isFinite ? value : NSNull()
      case .text(let value): value
      }
    }

    /// RFC 4180: a field holding a comma, quote or line break is quoted, quotes doubled.
    var csv: String {
      let text: String
      switch self {
      case .null: text = ""
      case .bool(let value): text = value ? "true" : "false"
      case .int(let value): text = String(value)
      case .number(let value): text = value.isFinite ? String(value) : ""
      case .text(let value): text = value
      }
      // Scalars, not Characters: "\r\n" is one Character, equal to neither "\r" nor "\n".
      guard text.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
      return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
  }

  typealias Row = [String: Cell]

  func common(_ s: Scenario) -> Row {
    [
      "scenario_key": Cell(s.key), "task": Cell(s.task), "model": Cell(s.model), "weight_bits": Cell(s.weightBits), "kv": Cell(s.kv),
      "thinking_budget": Cell(s.thinkingBudget), "budget_mode": Cell(s.budgetForcing.rawValue), "max_tokens": Cell(s.maxTokens),
      "parallel": Cell(s.parallel),
    ]
  }

  func sampleRows(_ s: Scenario) throws -> [Row] {
    try store.samples(s.key).map { r in
      common(s).merging([
        "question_id": Cell(r.questionId), "sample_index": Cell(r.sampleIndex), "finish": Cell(r.finish), "tokens": Cell(r.tokens),
        "thinking_tokens": Cell(r.thinkingTokens), "answer": Cell(r.answer), "correct": Cell(r.correct), "error": Cell(r.error),
        "seconds": Cell(r.seconds), "kv_bytes": Cell(r.kvBytes), "output": Cell(r.output),
      ]) { $1 }
    }
  }

  /// A scenario's settings, scores (with the standard errors of `Accuracy`) and memory.
  func scenarioRow(_ s: Scenario) throws -> (row: Row, score: ScenarioScore, passAt1: Accuracy, majority: Accuracy) {
    let score = ScenarioScore(records: try store.samples(s.key), majorityK: s.parallel)
    let pass = Accuracy(questionScores: score.perQuestion.map(\.passAt1), samples: score.samples)
    let majority = Accuracy(questionScores: score.perQuestion.map(\.majorityAtK), samples: score.samples)
    let run = try store.runMeasurements(s.key)
    let row = common(s).merging([
      "task_digest": Cell(s.taskDigest), "samples": Cell(s.samples), "temperature": Cell(s.temperature), "top_p": Cell(s.topP),
      "top_k": Cell(s.topK), "seed": Cell(s.seed), "backend": Cell(s.backend), "questions": Cell(score.questions),
      "samples_stored": Cell(score.samples), "errors": Cell(score.errors), "pass_at_1": Cell(score.passAt1),
      "pass_at_1_stderr": Cell(pass.standardError), "maj_at_k": Cell(score.majorityAtK), "maj_at_k_stderr": Cell(majority.standardError),
      "generated_tokens": Cell(run?.generatedTokens), "generation_seconds": Cell(run?.generationSeconds),
      "tokens_per_second": Cell(run?.tokensPerSecond), "estimated_bytes": Cell(run?.estimatedBytes), "peak_rss_bytes": Cell(run?.peakRssBytes),
    ]) { $1 }
    return (row, score, pass, majority)
  }

  /// lm-evaluation-harness' results file: each scenario a task named `TASK:KEY`, with pass@1 and
  /// maj@G (`…,none` and their standard errors) and its settings under `configs`.
  func lmEvalJSON(_ scenarios: [Scenario]) throws -> String {
    var results: [String: Any] = [:], configs: [String: Any] = [:], versions: [String: Any] = [:]
    var shots: [String: Any] = [:], higher: [String: Any] = [:], counts: [String: Any] = [:]
    for s in scenarios {
      let (row, score, pass, majorityAccuracy) = try scenarioRow(s)
      let name = "\(s.task):\(s.key)"
      let majority = "maj@\(s.parallel)"
      let budget = s.thinkingBudget.map { "budget=\($0) \(s.budgetForcing.rawValue)" } ?? "max_tokens=\(s.maxTokens)"
      results[name] = [
        "alias": "\(s.task) \(ResultPoints.modelLabel(s.model)) \(s.weightBits)-bit kv=\(s.kv) \(budget) G=\(s.parallel)",
        "pass@1,none": score.passAt1, "pass@1_stderr,none": pass.standardError,
        "\(majority),none": score.majorityAtK, "\(majority)_stderr,none": majorityAccuracy.standardError,
      ] as [String: Any]
      configs[name] = [
        "task": name, "output_type": "generate_until", "num_fewshot": 0, "repeats": s.samples,
        "generation_kwargs": [
          "temperature": s.temperature, "top_p": s.topP, "top_k": s.topK, "max_gen_toks": s.maxTokens, "do_sample": s.temperature > 0,
        ] as [String: Any],
        "metadata": row.mapValues(\.json),
      ] as [String: Any]
      versions[name] = 1.0
      shots[name] = 0
      higher[name] = ["pass@1": true, majority: true]
      counts[name] = ["original": score.questions, "effective": score.questions]
    }
    let document: [String: Any] = [
      "results": results, "configs": configs, "versions": versions, "n-shot": shots, "higher_is_better": higher, "n-samples": counts,
      "config": ["model": "bitbudget", "model_args": "", "batch_size": 1] as [String: Any],
      "date": Date().timeIntervalSince1970,
    ]
    let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  static func jsonLine(_ row: Row) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: row.mapValues(\.json), options: [.sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
  }
}
