import ArgumentParser
import BitBudgetEngine
import BitBudgetEval
import BitBudgetKernels
import BitBudgetMemory
import Foundation

struct Sweep: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate every scenario of a YAML grid, on the local engine or OpenAI-compatible servers, resumably, into one SQLite database.",
    discussion: """
      Every list in GRID.yaml is an axis and every scalar is fixed (keys: model/models, task, \
      answer_type, samples, parallel, weights, kv, thinking_budget, budget_mode (paper: "Wait" until \
      the budget, then the forced answer; cap; none), answer_tokens, max_tokens, \
      temperature, top_p, top_k, seed, questions, gpqa_seed, backend; see examples/paper-grid.yaml). \
      backend: {endpoint: URL or [URLs], model: SERVED_NAME, concurrency, timeout, retries} runs \
      the samples on OpenAI-compatible servers (model then names the memory model, e.g. \
      qwen3-8b). A line `---` starts another grid in the same file, run after it. Each \
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

  @Option(name: .customLong("max-scenarios"), help: "Refuse grids with more scenarios than this (a guard against runaway grids).")
  var maxScenarios = SweepGrid.defaultMaxScenarios

  @Flag(help: "Print one JSON object with every scenario's result.")
  var json = false

  func validate() throws {
    guard maxScenarios >= 1 else { throw ValidationError("--max-scenarios must be at least 1") }
  }

  func run() throws {
    let sweep: SweepGrid
    do { sweep = try SweepGrid.load(path: grid, maxScenarios: maxScenarios) } catch let error as EvalError { throw CommandFailure(message: error.description) }
    // Validate every point before running any (a typo in the last KV spec should not wait an hour).
    var planned: [(SweepGrid.Point, ModelOptions, EvalTask)] = []
    var tasks: [String: EvalTask] = [:]
    for point in sweep.points {
      var arguments = ["--model", point.model, "--kv", point.kv, "--threads", String(threads)]
      if let weights = point.weights { arguments += ["--weights", String(weights)] }
      if let memoryLimit { arguments += ["--memory-limit", memoryLimit] }
      let options: ModelOptions
      do { options = try ModelOptions.parse(arguments) } catch {
        throw CommandFailure(message: "\(grid): \(ModelOptions.message(for: error))")
      }
      if point.backend != nil, (try? MemoryModel.load(point.model)) == nil {
        throw CommandFailure(
          message: "\(grid): with a remote backend, model \"\(point.model)\" names the memory model: a preset (\(ModelPresets.all.map(\.name).joined(separator: ", "))) or a model folder or GGUF")
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
    // Points sharing a model and weight precision reuse one loaded model; points sharing a
    // remote backend and memory model one HTTP client.
    var loaded: (key: String, runner: ScenarioRunner)?
    var remotes: [RemoteKey: RemoteScenario] = [:]
    defer { for remote in remotes.values { remote.shutdown() } }
    for (index, (point, options, task)) in planned.enumerated() {
      let items = Array(task.items.prefix(point.questions ?? .max))
      let limit = point.maxTokens ?? (point.thinkingBudget.map { $0 + point.answerTokens } ?? 1024)
      let kv = try options.kvSpec().description
      func scenario(weightBits: Int) -> Scenario {
        Scenario(
          task: task.name, model: point.model, weightBits: weightBits, kv: kv, thinkingBudget: point.thinkingBudget, maxTokens: limit,
          samples: point.samples, parallel: point.parallel ?? point.samples, temperature: point.temperature, topP: point.topP,
          topK: point.topK, seed: point.seed, backend: point.backend?.scenarioLabel, taskDigest: task.contentDigest,
          budgetForcing: point.budgetMode)
      }
      let scenarioStart = Date()
      let current: Scenario
      let generated: Int
      let weightsBytes: Int?
      // Samples already stored count as done but not toward the rate (the ETA) of this run.
      let ids = Set(items.map(\.id))
      let stored = { (key: String, finishedOnly: Bool) in
        try store.samples(key).filter { ids.contains($0.questionId) && (!finishedOnly || $0.error == nil) }.count
      }
      let scenarioCount = planned.count
      let line: @Sendable (Int, Int, Double, Int, Int) -> Void = { (done: Int, total: Int, passAt1: Double, sweepDone: Int, sweepNew: Int) in
        guard terminal && !json else { return }
        let rate = Double(sweepNew) / max(Date().timeIntervalSince(start), 1e-9)
        let eta = rate > 0 ? Double(totalSamples - sweepDone) / rate : 0
        let text = String(
          format: "\r[scenario %d/%d] %d/%d · %d/%d samples · pass@1 %.3f · ETA %@   ",
          index + 1, scenarioCount, done, total, sweepDone, totalSamples, passAt1, Self.duration(eta))
        FileHandle.standardError.write(Data(text.utf8))
      }
      if var backend = point.backend {
        backend.apiKey = apiKeyFromEnvironment()
        let remoteKey = RemoteKey(backend: backend, memoryModel: point.model)
        let remote = try remotes[remoteKey] ?? RemoteScenario(backend: backend, memoryModel: point.model)
        remotes[remoteKey] = remote
        current = scenario(weightBits: point.weights ?? 16)
        try remote.checkMemoryLimit(current, limit: memoryLimit)
        try store.register(current)
        try store.reuseSamples(for: current)
        let before = try stored(current.key, true)
        let (sweepDone, sweepNew) = (doneSamples, newSamples)
        generated = try remote.run(current, task: task, items: items, answerTokens: point.answerTokens, store: store) { done, total, passAt1 in
          line(done, total, passAt1, sweepDone + done, sweepNew + done - before)
        }
        let after = try stored(current.key, true)
        doneSamples += after
        newSamples += after - before
        weightsBytes = remote.memory.estimate(for: current, convention: .paper)?.weightsBytes
      } else {
        let modelKey = "\(point.model)|\(point.weights.map(String.init) ?? "stored")"
        if loaded?.key != modelKey {
          loaded = nil
          let model = try options.loadModel()
          loaded = (modelKey, try ScenarioRunner(options: options, model: model))
        }
        guard let runner = loaded?.runner else { continue }
        current = scenario(weightBits: runner.model.weights.format.bits)
        try store.register(current)
        try store.reuseSamples(for: current)
        var before = try stored(current.key, false)  // as the runner's score counts: errors included
        doneSamples += before
        generated = try runner.run(current, options: options, task: task, items: items, answerTokens: point.answerTokens, store: store) { done, total, score in
          doneSamples += score.samples - before
          newSamples += score.samples - before
          before = score.samples
          line(done, total, score.passAt1, doneSamples, newSamples)
        }
        weightsBytes = runner.model.weights.byteCount
      }
      let records = try store.samples(current.key).filter { record in items.contains { $0.id == record.questionId } }
      let score = ScenarioScore(task: task, records: records, majorityK: current.parallel)
      results.append(Result(
        scenario: current, scenarioKey: current.key, score: score, generatedThisRun: generated,
        secondsThisRun: Date().timeIntervalSince(scenarioStart), weightsBytes: weightsBytes, run: try store.runMeasurements(current.key)))
      if !terminal && !json {
        Output.progress(String(format: "scenario %d/%d done: pass@1 %.3f, maj@%d %.3f", index + 1, planned.count, score.passAt1, current.parallel, score.majorityAtK))
      }
    }
    if terminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
    if json {
      try Output.json(Report(grid: grid, axes: sweep.axes, scenarios: results, seconds: Date().timeIntervalSince(start)))
      return
    }
    Output.line("| model | weights | kv | budget | max tokens | G | samples | questions | pass@1 | maj@G | errors | tokens | gen. s | tokens/s | est. MiB |")
    Output.line("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results {
      let s = r.scenario
      // Samples shared from another G cost this scenario no time: no rate to show. Time and
      // tokens are the scenario's own samples' sums, over all its runs.
      let wall = r.run.map(\.generationSeconds) ?? 0
      let speed = wall > 0 ? String(format: "%.1f | %.1f", wall, r.run?.tokensPerSecond ?? 0) : "shared | -"
      Output.line(String(
        format: "| %@ | %d | %@ | %@ | %d | %d | %d | %d | %.3f | %.3f | %d | %d | %@ | %.1f |", (s.model as NSString).lastPathComponent,
        s.weightBits, s.kv, s.thinkingBudget.map { "\($0) \(s.budgetForcing.rawValue)" } ?? "-", s.maxTokens, s.parallel, s.samples, r.score.questions,
        r.score.passAt1, r.score.majorityAtK, r.score.errors, r.score.generatedTokens, speed, Double(r.run?.estimatedBytes ?? 0) / 1_048_576))
    }
  }

  static func loadTask(_ point: SweepGrid.Point) throws -> EvalTask {
    do {
      return try EvalTask.load(point.task, answerType: point.answerType, gpqaSeed: point.gpqaSeed)
    } catch let error as EvalError {
      throw CommandFailure(message: error.description)
    }
  }

  static func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
  }

  /// One HTTP client per backend (all its settings) and memory model.
  struct RemoteKey: Hashable {
    let backend: RemoteBackend
    let memoryModel: String
  }

  struct Result: Encodable {
    let scenario: Scenario
    let scenarioKey: String
    let score: ScenarioScore
    let generatedThisRun: Int
    let secondsThisRun: Double
    /// Remote backends: the memory model's (paper convention).
    let weightsBytes: Int?
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
