import ArgumentParser
import BitBudgetAnalysis
import BitBudgetEngine
import BitBudgetLab
import BitBudgetMemory
import BitBudgetEval
import Foundation

struct Frontier: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Accuracy against memory: the Pareto frontier of results.",
    discussion: """
      A table, JSON or an HTML report. \
      Per task: every scenario's accuracy (pass@1 for G = 1, maj@G otherwise, with a 95% \
      interval over questions) against its memory (the memory model's estimate recorded by each \
      run, or with --memory-source measured the peak RSS of local runs); the frontier (no other scenario \
      is more accurate with no more memory), which axis moves it in each memory range (weights, \
      tokens, G, KV policy; steps within noise are marked), and where it turns from weights to \
      generation (the paper's crossover). --html writes a self-contained report with SVG plots.
      """)

  @Option(help: ArgumentHelp("Results database (SQLite) written by eval or sweep.", valueName: "file"))
  var db: String

  @Option(help: "Only this task (as stored: the task file's name).")
  var task: String?

  @Option(name: .customLong("memory-source"), help: "What memory counts: estimate (memory model) or measured (peak RSS of local runs).")
  var memorySource: ResultPoints.MemorySource = .estimate

  @Option(help: ArgumentHelp("Write a self-contained HTML report here.", valueName: "file"))
  var html: String?

  @Option(help: ArgumentHelp("Write each task's plots here as standalone SVG files (TASK-kv-POLICY-gG.svg, legend included); the folder is created if missing.", valueName: "dir"))
  var svg: String?

  @Flag(help: "Print one JSON object.")
  var json = false

  func run() throws {
    guard FileManager.default.fileExists(atPath: db) else { throw CommandFailure(message: "no results database at \(db)") }
    let store = try openStore(db, readOnly: true)
    let results = try ResultPoints(store: store, memory: memorySource)
    var tasks = results.byTask
    if let task {
      tasks = tasks.filter { $0.task == task }
      guard !tasks.isEmpty else {
        throw CommandFailure(message: "no scenarios of task \"\(task)\" in \(db) (tasks: \(results.byTask.map(\.task).joined(separator: ", ")))")
      }
    }
    guard !tasks.isEmpty else { throw CommandFailure(message: "\(db) holds no scored scenarios") }
    let frontiers = tasks.map { (task: $0.task, frontier: ParetoFrontier($0.points)) }
    for line in results.notes { Output.progress("note: \(line)") }
    if let html {
      let report = HTMLReport(
        title: "BitBudget: accuracy vs memory", source: "Results: \(db), \(results.points.count) scenarios",
        memoryNote: memorySource == .estimate
          ? "Memory: the memory model's estimate (engine convention for local runs: weights + KV peak + scratch; paper convention for remote servers)."
          : "Memory: peak RSS measured by local runs.",
        frontiers: frontiers, notes: results.notes)
      try OutputPath.checkNotInput(try OutputPath.resolve(html, followingFinalLink: false), input: db)
      try OutputPath.write(Data(report.html.utf8), to: html)
    }
    if let svg {
      do {
        try FileManager.default.createDirectory(atPath: svg, withIntermediateDirectories: true)
      } catch {
        throw CommandFailure(message: "cannot create \(svg): \(error.localizedDescription)")
      }
      var taken: Set<String> = []
      for (task, frontier) in frontiers {
        let figure = HTMLReport.figure(frontier)
        // Task names become file names: two that sanitize alike get a number.
        let base = task.map { $0.isLetter || $0.isNumber || $0 == "-" ? String($0) : "-" }.joined()
        var taskName = base.isEmpty ? "task" : base
        var suffix = 2
        while taken.contains(taskName) { taskName = "\(base)-\(suffix)"; suffix += 1 }
        taken.insert(taskName)
        for panel in figure.panels {
          var plot = panel.plot
          plot.title = "\(task): \(plot.title)"
          plot.legend = figure.legend
          let path = (svg as NSString).appendingPathComponent("\(taskName)-\(panel.name).svg")
          try OutputPath.checkNotInput(try OutputPath.resolve(path, followingFinalLink: false), input: db)
          try OutputPath.write(Data(plot.svg.utf8), to: path)
          Output.progress("wrote \(path)")
        }
      }
    }
    if json {
      try Output.json(Report(tasks: frontiers.map { task, frontier in
        TaskReport(
          task: task, scenarios: frontier.points.count, frontier: frontier.frontier, steps: frontier.steps, segments: frontier.segments,
          crossover: frontier.crossover)
      }, notes: results.notes, memorySource: memorySource.rawValue))
      return
    }
    for (task, frontier) in frontiers {
      Output.line("\(task): \(counted(frontier.points.count, "scenario")), \(frontier.frontier.count) on the frontier")
      Output.line("| memory | accuracy | ±95% | model | bits | kv | tokens | G | step |")
      Output.line("|---|---|---|---|---|---|---|---|---|")
      let steps = Dictionary(frontier.steps.map { ($0.to.key, $0) }, uniquingKeysWith: { a, _ in a })
      for p in frontier.frontier {
        let step = steps[p.key]?.label ?? "start"
        Output.line(String(
          format: "| %@ | %.3f | %.3f | %@ | %d | %@ | %d | %d | %@ |", ByteSize.readable(p.memoryBytes), p.accuracy.mean,
          1.96 * p.accuracy.standardError, p.model, p.weightBits, KVCacheSpec.shortDescription(of: p.kv), p.tokenBudget, p.parallel, step))
      }
      for segment in frontier.segments {
        Output.line(
          "\(ByteSize.readable(segment.fromBytes)) to \(ByteSize.readable(segment.toBytes)): moves by \(segment.axis.rawValue) (\(counted(segment.steps, "step")))")
      }
      if let crossover = frontier.crossover {
        let size = crossover.effectiveSizeBytes.map { ", effective size \(ByteSize.readable($0))" } ?? ""
        Output.line(
          "crossover at \(ByteSize.readable(crossover.memoryBytes)) (\(crossover.point.description)\(size)): weights below, generation above"
            + String(format: " (%.0f%% of the frontier's memory span fits)", crossover.explainedFraction * 100))
      }
      Output.line("")
    }
    if let html { Output.progress("wrote \(html)") }
  }

  struct TaskReport: Encodable {
    let task: String
    let scenarios: Int
    let frontier: [ResultPoint]
    let steps: [FrontierStep]
    let segments: [FrontierSegment]
    let crossover: Crossover?
  }

  struct Report: Encodable {
    let tasks: [TaskReport]
    let notes: [String]
    let memorySource: String
  }
}

extension ResultPoints.MemorySource: ExpressibleByArgument {}
