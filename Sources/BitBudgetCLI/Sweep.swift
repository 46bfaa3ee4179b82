import ArgumentParser
import BitBudgetEngine
import BitBudgetEval
import BitBudgetKernels
import Foundation

struct Sweep: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate every scenario of a YAML grid on the local engine, resumably, into one SQLite database.",
    discussion: """
      Every list in GRID.yaml is an axis and every scalar is fixed (keys: model/models, task, \
      answer_type, samples, parallel, weights, kv, thinking_budget, answer_tokens, max_tokens, \
      temperature, top_p, top_k, seed, questions, gpqa_seed; see examples/paper-grid.yaml). Each \
      finished sample is committed at once; rerunning the command after a kill continues where it \
      stopped. A terminal shows a progress line with the ETA and live accuracy; the end prints a \
      table of every scenario (pass@1, maj@G, tokens, time).
      """)

  @Argument(help: ArgumentHelp("The grid.", valueName: "grid.yaml"))
  var grid: String

  @Option(help: ArgumentHelp("Results database (SQLite), created if missing.", valueName: "file"))
  var db: String

  @Option(name: .long, help: "Threads for the kernels (default: all processors).")
  var threads: Int = min(256, ThreadPool.defaultThreadCount)

  @Option(name: .customLong("memory-limit"), help: ArgumentHelp("Refuse scenarios whose weights + KV would exceed this.", valueName: "size"))
  var memoryLimit: String?

  @Flag(help: "Print one JSON object with every scenario's result.")
  var json = false

  func run() throws {
    let sweep: SweepGrid
    do { sweep = try SweepGrid.load(path: grid) } catch let error as EvalError { throw CommandFailure(message: error.description) }
    // Validate every point before running any (a typo in the last KV spec should not wait an hour).
    var planned: [(SweepGrid.Point, ModelOptions, EvalTask)] = []
    var tasks: [String: EvalTask] = [:]
    for point in sweep.points {
      var arguments = ["--model", point.model, "--kv", point.kv, "--threads", String(threads)]
      if point.weights != 16 { arguments += ["--weights", String(point.weights)] }
      if let memoryLimit { arguments += ["--memory-limit", memoryLimit] }
      let options: ModelOptions
      do { options = try ModelOptions.parse(arguments) } catch {
        throw CommandFailure(message: "\(grid): \(ModelOptions.message(for: error))")
      }
      let taskKey = "\(point.task)|\(point.answerType?.rawValue ?? "")|\(point.gpqaSeed)"
      let task = try tasks[taskKey] ?? Self.loadTask(point)
      tasks[taskKey] = task
      planned.append((point, options, task))
    }
    let store = try ScenarioRunner.openStore(db)
    let terminal = isatty(STDERR_FILENO) != 0
    let totalSamples = planned.reduce(0) { $0 + min($1.2.items.count, $1.0.questions ?? .max) * $1.0.samples }
    var doneSamples = 0, newSamples = 0
    let start = Date()
    var results: [Result] = []
    // Points sharing a model and weight precision reuse one loaded model.
    var loaded: (key: String, runner: ScenarioRunner)?
    for (index, (point, options, task)) in planned.enumerated() {
      let modelKey = "\(point.model)|\(point.weights)"
      if loaded?.key != modelKey {
        loaded = nil
        let model = try options.loadModel()
        loaded = (modelKey, try ScenarioRunner(options: options, model: model))
      }
      guard let runner = loaded?.runner else { continue }
      let items = Array(task.items.prefix(point.questions ?? .max))
      let limit = point.maxTokens ?? (point.thinkingBudget.map { $0 + point.answerTokens } ?? 1024)
      let scenario = Scenario(
        task: task.name, model: point.model, weightBits: runner.model.weights.format.bits, kv: try options.kvSpec().description,
        thinkingBudget: point.thinkingBudget, maxTokens: limit, samples: point.samples, parallel: point.parallel ?? point.samples,
        temperature: point.temperature, topP: point.topP, topK: point.topK, seed: point.seed)
      let scenarioStart = Date()
      // Samples already stored count as done but not toward the rate (the ETA) of this run.
      var before = try store.samples(scenario.key).filter { record in items.contains { $0.id == record.questionId } }.count
      doneSamples += before
      let generated = try runner.run(scenario, options: options, task: task, items: items, answerTokens: point.answerTokens, store: store) { done, total, score in
        doneSamples += score.samples - before
        newSamples += score.samples - before
        before = score.samples
        guard terminal && !json else { return }
        let elapsed = Date().timeIntervalSince(start)
        let rate = Double(newSamples) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(totalSamples - doneSamples) / rate : 0
        let line = String(
          format: "\r[scenario %d/%d] question %d/%d · %d/%d samples · pass@1 %.3f · ETA %@   ",
          index + 1, planned.count, done, total, doneSamples, totalSamples, score.passAt1, Self.duration(eta))
        FileHandle.standardError.write(Data(line.utf8))
      }
      let records = try store.samples(scenario.key).filter { record in items.contains { $0.id == record.questionId } }
      let score = ScenarioScore(task: task, records: records, majorityK: scenario.parallel)
      let seconds = Date().timeIntervalSince(scenarioStart)
      results.append(Result(
        scenario: scenario, scenarioKey: scenario.key, score: score, generatedThisRun: generated, secondsThisRun: seconds,
        weightsBytes: runner.model.weights.byteCount, run: try store.runMeasurements(scenario.key)))
      if !terminal && !json {
        Output.progress(String(format: "scenario %d/%d done: pass@1 %.3f, maj@%d %.3f", index + 1, planned.count, score.passAt1, scenario.parallel, score.majorityAtK))
      }
    }
    if terminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
    if json {
      try Output.json(Report(grid: grid, axes: sweep.axes, scenarios: results, seconds: Date().timeIntervalSince(start)))
      return
    }
    Output.line("| model | weights | kv | budget | max tokens | G | samples | questions | pass@1 | maj@G | errors | tokens | wall s | tokens/s | est. MiB |")
    Output.line("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results {
      let s = r.scenario
      Output.line(String(
        format: "| %@ | %d | %@ | %@ | %d | %d | %d | %d | %.3f | %.3f | %d | %d | %.1f | %.1f | %.1f |", (s.model as NSString).lastPathComponent,
        s.weightBits, s.kv, s.thinkingBudget.map(String.init) ?? "-", s.maxTokens, s.parallel, s.samples, r.score.questions,
        r.score.passAt1, r.score.majorityAtK, r.score.errors, r.score.generatedTokens, r.run?.wallSeconds ?? 0,
        r.run?.tokensPerSecond ?? 0, Double(r.run?.estimatedBytes ?? 0) / 1_048_576))
    }
  }

  static func loadTask(_ point: SweepGrid.Point) throws -> EvalTask {
    do {
      if point.task.lowercased().hasSuffix(".csv") {
        return try EvalTask.gpqa(csvPath: point.task, seed: point.gpqaSeed, name: (point.task as NSString).lastPathComponent)
      }
      return try EvalTask.jsonl(path: point.task, answerType: point.answerType ?? .integer)
    } catch let error as EvalError {
      throw CommandFailure(message: error.description)
    }
  }

  static func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
  }

  struct Result: Encodable {
    let scenario: Scenario
    let scenarioKey: String
    let score: ScenarioScore
    let generatedThisRun: Int
    let secondsThisRun: Double
    let weightsBytes: Int
    /// Memory estimate, peak RSS, wall time and tokens summed over this scenario's runs.
    let run: RunMeasurements?
  }

  struct Report: Encodable {
    let grid: String
    let axes: [String]
    let scenarios: [Result]
    let seconds: Double
  }
}
