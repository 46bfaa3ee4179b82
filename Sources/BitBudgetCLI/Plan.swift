import ArgumentParser
import BitBudgetAnalysis
import BitBudgetEngine
import BitBudgetEval
import BitBudgetMemory
import Foundation

struct PlanCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plan",
    abstract: "The memory-optimal configuration for a memory budget: model, weight bits, KV policy, token budget, G.",
    discussion: """
      With --db, from measured results: the most accurate scenario whose memory fits, the \
      scenarios within noise of it, and what the next frontier point would cost. Without, from \
      the paper's guidelines encoded as data (Not All Bits Are Equal, §4–5: a scale threshold at \
      the effective size of 8-bit Qwen3-4B; weights first below it, tokens then G above it; no \
      4-bit weights for large maths models; 4-bit for knowledge tasks; eviction for small models), \
      with the memory model's paper convention deciding what fits — labelled as such: no \
      accuracy is measured.
      """)

  @Option(help: ArgumentHelp("The memory budget (e.g. 8GiB, 16GB, 512MiB, bytes).", valueName: "size"))
  var memory: String

  @Option(help: "math (maths and code) or knowledge (GPQA-like): what the paper's guidelines plan for; needed without --db, and with --db used when no measured scenario fits.")
  var task: PlanTask?

  @Option(help: ArgumentHelp("Plan from the measured results in this database.", valueName: "file"))
  var db: String?

  @Option(name: .customLong("db-task"), help: "With --db: the stored task to plan for (needed when it holds several).")
  var dbTask: String?

  @Option(name: .customLong("memory-source"), help: "With --db: estimate (memory model) or measured (peak RSS).")
  var memorySource: ResultPoints.MemorySource = .estimate

  @Flag(help: "Print one JSON object.")
  var json = false

  func validate() throws {
    guard let bytes = ByteSize.parse(memory), bytes > 0 else {
      throw ValidationError("--memory \"\(memory)\" is not a size (e.g. 8GiB, 16GB, 512MiB, or bytes)")
    }
    if db == nil && task == nil { throw ValidationError("give --task math|knowledge (or --db with measured results)") }
  }

  func run() throws {
    let budget = ByteSize.parse(memory) ?? 0
    let plan: Plan
    if let db {
      guard FileManager.default.fileExists(atPath: db) else { throw CommandFailure(message: "no results database at \(db)") }
      let results = try ResultPoints(store: try ScenarioRunner.openStore(db, readOnly: true), memory: memorySource)
      let tasks = results.byTask
      let chosen: (task: String, points: [ResultPoint])
      if let dbTask {
        guard let match = tasks.first(where: { $0.task == dbTask }) else {
          throw CommandFailure(message: "no scenarios of task \"\(dbTask)\" in \(db) (tasks: \(tasks.map(\.task).joined(separator: ", ")))")
        }
        chosen = match
      } else {
        guard let only = tasks.first else { throw CommandFailure(message: "\(db) holds no scored scenarios") }
        guard tasks.count == 1 else {
          throw CommandFailure(message: "\(db) holds several tasks; choose one with --db-task (\(tasks.map(\.task).joined(separator: ", ")))")
        }
        chosen = only
      }
      do {
        plan = try MeasuredPlanner(points: chosen.points, source: "measured results (\(db))").plan(memory: budget, task: chosen.task)
      } catch let error as PlanError {
        // With --task, the guidelines answer what the measurements cannot (labelled as such).
        guard let task else { throw CommandFailure(message: error.description) }
        var fallback = try PaperGuidelines().plan(memory: budget, task: task)
        fallback.reasons.insert("\(error.description); this plan is from the paper's guidelines instead.", at: 0)
        plan = fallback
      }
    } else {
      plan = try PaperGuidelines().plan(memory: budget, task: task ?? .math)
    }
    if json {
      try Output.json(plan)
      return
    }
    func gib(_ bytes: Int?) -> String { bytes.map { String(format: "%.2f", Double($0) / Double(1 << 30)) } ?? "?" }
    func describe(_ o: PlanOption) -> String {
      var text = "\(o.model) \(o.weightBits)-bit, KV \(o.kv), \(o.tokenBudget) tokens, G=\(o.parallel): \(gib(o.totalBytes)) GiB"
      if let kv = o.kvBytes { text += " (weights \(gib(o.weightsBytes)) + KV \(gib(kv)))" }
      if let accuracy = o.accuracy { text += String(format: ", accuracy %.3f ± %.3f", accuracy.mean, 1.96 * accuracy.standardError) }
      return text
    }
    let label = plan.source == "paper guidelines" ? "from the paper's guidelines, not from measurements" : "from \(plan.source)"
    Output.line("Plan for \(gib(plan.budgetBytes)) GiB, \(plan.task) (\(label)):")
    Output.line("  " + describe(plan.choice))
    Output.line("Why:")
    for reason in plan.reasons { Output.line("  - " + reason) }
    if !plan.alternatives.isEmpty {
      Output.line("Also consider:")
      for o in plan.alternatives { Output.line("  - " + describe(o) + (o.note.map { " — " + $0 } ?? "")) }
    }
    if !plan.rejected.isEmpty {
      Output.line("Not chosen:")
      for o in plan.rejected { Output.line("  - " + describe(o) + (o.note.map { " — " + $0 } ?? "")) }
    }
  }
}

extension PlanTask: ExpressibleByArgument {}
