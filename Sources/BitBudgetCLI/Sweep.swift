import ArgumentParser
import BitBudgetEngine
import BitBudgetEval
import BitBudgetKernels
import BitBudgetLab
import BitBudgetMemory
import Foundation

struct Sweep: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run every scenario of a YAML grid into one database.",
    discussion: """
      On the local engine or OpenAI-compatible servers, resumably, into one SQLite database. \
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

  @Option(name: .customLong("threads"), help: "Threads for the kernels (default: all processors).")
  var threadsOption: Int?

  var threads: Int { threadCount(threadsOption) }

  @Option(name: .customLong("memory-limit"), help: ArgumentHelp("Refuse scenarios whose weights + KV would exceed this.", valueName: "size"))
  var memoryLimit: String?

  @Option(name: .customLong("max-scenarios"), help: "Refuse grids with more scenarios than this (a guard against runaway grids).")
  var maxScenarios = SweepGrid.defaultMaxScenarios

  @Flag(help: "Print one JSON object with every scenario's result.")
  var json = false

  func validate() throws {
    guard maxScenarios >= 1 else { throw ValidationError("--max-scenarios must be at least 1") }
    guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256") }
    if let memoryLimit, ByteSize.parse(memoryLimit) == nil {
      throw ValidationError("--memory-limit \"\(memoryLimit)\" is not a size with a unit (\(ByteSize.examples))")
    }
  }

  func run() throws {
    let grid: SweepGrid
    do { grid = try SweepGrid.load(path: self.grid, maxScenarios: maxScenarios) } catch let error as EvalError { throw CommandFailure(message: error.description) }
    // Every point is validated (and its task read) before any runs: a typo in the last KV spec
    // should not wait an hour.
    let runner: SweepRunner
    do {
      runner = try SweepRunner(
        grid: grid, engine: EngineSettings(modelPath: "", threads: threads, memoryLimit: memoryLimit.flatMap(ByteSize.parse)), apiKey: apiKeyFromEnvironment())
    } catch let error as LabError {
      throw CommandFailure(message: "\(self.grid): \(error.description)")
    }
    let store = try openStore(db)
    // On a terminal one live line (also with --json, whose object comes at the end); in a log a
    // line per finished scenario.
    let live = LiveLine()
    defer { live.clear() }
    let start = Date()
    let results = try runner.run(store: store) { progress in
      live.show(
        "scenario \(progress.scenario + 1)/\(progress.scenarios)", done: progress.sweepDone, total: progress.sweepTotal,
        etaSeconds: progress.etaSeconds,
        detail: "\(progress.sweepDone)/\(progress.sweepTotal) samples · this scenario \(progress.current.done)/\(progress.current.total), pass@1 "
          + String(format: "%.3f", progress.current.passAt1))
    } finished: { index, count, result in
      if LiveLine.available { return }
      Output.progress(String(
        format: "scenario %d/%d done: pass@1 %.3f, maj@%d %.3f", index + 1, count, result.score.passAt1, result.scenario.parallel,
        result.score.majorityAtK))
    }
    live.clear()
    if json {
      try Output.json(Report(grid: self.grid, axes: grid.axes, scenarios: results, seconds: Date().timeIntervalSince(start)))
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
        s.weightBits, KVCacheSpec.shortDescription(of: s.kv), s.thinkingBudget.map { "\($0) \(s.budgetForcing.rawValue)" } ?? "-", s.maxTokens, s.parallel, s.samples, r.score.questions,
        r.score.passAt1, r.score.majorityAtK, r.score.errors, r.score.generatedTokens, speed, Double(r.run?.estimatedBytes ?? 0) / 1_048_576))
    }
  }

  struct Report: Encodable {
    let grid: String
    let axes: [String]
    let scenarios: [ScenarioResult]
    let seconds: Double
  }
}
