import ArgumentParser
import BitBudgetAnalysis
import BitBudgetEngine
import BitBudgetLab
import BitBudgetEval
import BitBudgetMemory
import Foundation

struct PlanCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plan",
    abstract: "The most accurate setup that fits a memory budget.",
    discussion: """
      The plan names the model, weight bits, KV policy, token budget and G. \
      With --db, from measured results: the most accurate scenario whose memory fits, the \
      scenarios within noise of it, and what the next frontier point would cost. Without, from \
      the paper's guidelines encoded as data (Not All Bits Are Equal, §4–5: a scale threshold at \
      the effective size of 8-bit Qwen3-4B; weights first below it — 8-bit, not 16, for small \
      maths models — tokens then G above it; no 4-bit weights for large maths models; 4-bit for \
      knowledge tasks; majority voting for maths only; KV compression where it buys a larger \
      model or a longer budget, eviction below 8-bit Qwen3-8B and 8-bit HQQ above), with the \
      memory model deciding what fits — labelled as such: no accuracy is measured. --reserve is \
      kept for the process (and the OS, if you add it); with --convention engine the plan is \
      one the engine's --memory-limit accepts. Each plan ends with the command that runs it.
      """)

  @Option(help: ArgumentHelp("The memory you have, with a unit (e.g. 8GiB, 16GB, 512MiB).", valueName: "size"))
  var memory: String

  @Option(help: "math (maths and code) or knowledge (GPQA-like): what the paper's guidelines plan for; needed without --db, and with --db used when no measured scenario fits.")
  var task: PlanTask?

  @Option(help: ArgumentHelp(
    "KV caches the guidelines may use: auto (full, or R-KV/8-bit HQQ where compression buys a larger model or a longer budget), or one policy (full, rkv:4096, hqq:8, …).",
    valueName: "auto|full|spec"))
  var kv = "auto"

  @Option(help: ArgumentHelp("Memory kept for the process and the OS (default: the engine's measured runtime overhead, 32 MiB).", valueName: "size"))
  var reserve: String?

  @Option(help: "engine (what BitBudget allocates, scratch included: the plan passes its --memory-limit) or paper (weights + KV, the paper's Table 1).")
  var convention: MemoryConvention = .engine

  @Option(name: .customLong("prompt-tokens"), help: "Prompt tokens to allow for (engine convention).")
  var promptTokens = 512

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
      throw ValidationError("--memory \"\(memory)\" is not a size with a unit (\(ByteSize.examples))")
    }
    if let reserve, ByteSize.parse(reserve) == nil {
      throw ValidationError("--reserve \"\(reserve)\" is not a size with a unit (\(ByteSize.examples))")
    }
    _ = try kvChoice()
    guard (1...(1 << 20)).contains(promptTokens) else { throw ValidationError("--prompt-tokens must be in 1...\(1 << 20)") }
    if db == nil && task == nil { throw ValidationError("give --task math|knowledge (or --db with measured results)") }
  }

  func kvChoice() throws -> PlanKV {
    if kv == "auto" { return .auto }
    do { return .fixed(try KVCacheSpec.parse(kv)) } catch { throw ValidationError("--kv: \(error)") }
  }

  /// The guideline plan with this command's settings.
  func guidelinePlan(memory budget: Int, task: PlanTask) throws -> Plan {
    var guidelines = PaperGuidelines()
    guidelines.convention = convention
    guidelines.promptTokens = promptTokens
    let reserveBytes = reserve.flatMap(ByteSize.parse) ?? PaperGuidelines.runtimeOverheadBytes
    return try guidelines.plan(memory: budget, task: task, kv: try kvChoice(), reserve: reserveBytes)
  }

  func run() throws {
    let budget = ByteSize.parse(memory) ?? 0
    let plan: Plan
    if let db {
      guard FileManager.default.fileExists(atPath: db) else { throw CommandFailure(message: "no results database at \(db)") }
      let results = try ResultPoints(store: try openStore(db, readOnly: true), memory: memorySource)
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
        var fallback = try guidelinePlan(memory: budget, task: task)
        fallback.reasons.insert("\(error.description); this plan is from the paper's guidelines instead.", at: 0)
        plan = fallback
      }
    } else {
      plan = try guidelinePlan(memory: budget, task: task ?? .math)
    }
    if json {
      try Output.json(plan)
      return
    }
    func gib(_ bytes: Int?) -> String { bytes.map { String(format: "%.2f", Double($0) / Double(1 << 30)) } ?? "?" }
    func describe(_ o: PlanOption) -> String {
      var text = "\(o.model) \(o.weightBits)-bit, KV \(KVCacheSpec.shortDescription(of: o.kv)), \(o.tokenBudget) tokens, G=\(o.parallel): \(gib(o.totalBytes)) GiB"
      if let kv = o.kvBytes { text += " (weights \(gib(o.weightsBytes)) + KV \(gib(kv)))" }
      if let accuracy = o.accuracy { text += String(format: ", accuracy %.3f ± %.3f", accuracy.mean, 1.96 * accuracy.standardError) }
      return text
    }
    let label = plan.source == "paper guidelines" ? "from the paper's guidelines, not from measurements" : "from \(plan.source)"
    var header = "Plan for \(gib(plan.budgetBytes)) GiB, \(plan.task) (\(label)"
    if let convention = plan.convention {
      header += "; \(convention.rawValue) convention, \(ByteSize.readable(plan.reserveBytes)) kept for the process"
    }
    Output.line(header + "):")
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
    // A measured plan names a scenario that already ran (its own settings are in the store).
    guard plan.convention != nil else { return }
    Output.line("Run it:")
    Output.line("  " + Self.command(for: plan))
    if ModelPresets.named(plan.choice.model) != nil {
      Output.line("  (\(Self.folderName(plan.choice.model)): a folder holding Hugging Face's Qwen/\(Self.folderName(plan.choice.model)))")
    }
  }
}

extension PlanTask: ExpressibleByArgument {}

extension PlanCommand {
  /// `qwen3-8b` → `Qwen3-8B`, the name of its Hugging Face repository.
  static func folderName(_ model: String) -> String {
    guard ModelPresets.named(model) != nil else { return model }
    return "Qwen3-" + model.dropFirst("qwen3-".count).uppercased()
  }

  /// The `eval` command that runs a guideline plan's choice (the paper's budget forcing; with the
  /// engine convention also its --memory-limit).
  static func command(for plan: Plan) -> String {
    let o = plan.choice
    let task = ["math": "aime25", "knowledge": "gpqa-diamond"][plan.task] ?? plan.task
    var words = ["bitbudget", "eval", "--model", folderName(o.model), "--task", task, "--db", "results.sqlite"]
    if o.weightBits != 16 { words += ["--weights", String(o.weightBits)] }
    if o.kv != "full" { words += ["--kv", KVCacheSpec.shortDescription(of: o.kv)] }
    words += ["--thinking-budget", String(o.tokenBudget), "--budget-mode", "paper"]
    if o.parallel > 1 { words += ["--samples", String(o.parallel), "--parallel", String(o.parallel)] }
    if plan.convention == .engine { words += ["--memory-limit", "\(plan.budgetBytes - plan.reserveBytes)B"] }
    return words.map { $0.contains(",") || $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
  }
}
