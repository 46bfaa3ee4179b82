import BitBudgetAnalysis
import BitBudgetEngine
import BitBudgetEval
import BitBudgetMemory
import Foundation

/// Reads a results database into the analysis's points: accuracy per scenario (pass@1 for
/// G = 1, maj@G otherwise, with per-question uncertainty) and its memory.
public struct ResultPoints: Sendable {
  /// What the memory axis counts.
  public enum MemorySource: String, CaseIterable, Sendable {
    /// The memory model's estimate recorded by each run (engine convention for the local engine,
    /// paper convention for remote servers); computed from the memory model when a run was
    /// interrupted before recording it.
    case estimate
    /// The peak RSS measured by local runs (scenarios without one are left out).
    case measured
  }

  public var points: [ResultPoint] = []
  /// What the reader should know (one line each): scenarios left out, failed samples not
  /// counted, scenarios over fewer questions than their task's others, mixed memory conventions.
  public var notes: [String] = []

  public init(store: ResultStore, memory source: MemorySource) throws {
    var models: [String: MemoryModel?] = [:]
    var conventions: [String: Set<MemoryConvention>] = [:]
    func memoryModel(_ name: String) -> MemoryModel? {
      if let cached = models[name] { return cached }
      let loaded = try? MemoryModel.load(name)
      models[name] = .some(loaded)  // failures are cached too
      return loaded
    }
    let scenarios = try store.scenarios()
    // Files of the same name with other questions are different tasks: named apart by digest.
    let digestsByName = Dictionary(grouping: scenarios, by: \.task).mapValues { Set($0.map(\.taskDigest)) }
    func taskLabel(_ scenario: Scenario) -> String {
      guard digestsByName[scenario.task]?.count ?? 0 > 1 else { return scenario.task }
      return "\(scenario.task)@\(scenario.taskDigest.map { String($0.prefix(8)) } ?? "unversioned")"
    }
    for scenario in scenarios {
      let task = taskLabel(scenario)
      let all = try store.samples(scenario.key)
      // Failed samples are not answers: they are left out (a rerun redoes them), not scored wrong.
      let records = all.filter { $0.error == nil }
      let label = "\(task) \(scenario.model) \(scenario.weightBits)-bit \(scenario.kv) G=\(scenario.parallel)"
      if records.count < all.count {
        notes.append("\(label): \(all.count - records.count) failed samples not counted (rerun the sweep to redo them)")
      }
      guard !records.isEmpty else { continue }
      let score = ScenarioScore(records: records, majorityK: scenario.parallel)
      let convention: MemoryConvention = scenario.backend == nil ? .engine : .paper
      let model = memoryModel(scenario.model)
      let run = try store.runMeasurements(scenario.key)
      let memoryBytes: Int?
      switch source {
      case .measured:
        memoryBytes = run?.peakRssBytes.flatMap { $0 > 0 ? $0 : nil }
      case .estimate:
        memoryBytes = run?.estimatedBytes ?? model?.estimate(for: scenario, convention: convention)?.totalBytes
      }
      guard let memoryBytes else {
        notes.append("\(label): no \(source == .measured ? "measured peak RSS" : "memory estimate (the model \(scenario.model) is not a preset or a readable model)")")
        continue
      }
      let weights = model?.estimate(for: scenario, convention: convention)?.weightsBytes
      let scores = score.perQuestion.map { scenario.parallel == 1 ? $0.passAt1 : $0.majorityAtK }
      points.append(ResultPoint(
        key: scenario.key, task: task, model: Self.modelLabel(scenario.model), weightBits: scenario.weightBits, kv: scenario.kv,
        tokenBudget: scenario.thinkingBudget ?? scenario.maxTokens, parallel: scenario.parallel, memoryBytes: memoryBytes,
        weightsBytes: weights, accuracy: Accuracy(questionScores: scores, samples: score.samples)))
      conventions[task, default: []].insert(convention)
    }
    for (task, points) in byTask {
      let most = points.map(\.accuracy.questions).max() ?? 0
      for p in points where p.accuracy.questions < most {
        notes.append("\(task) \(p.description): \(p.accuracy.questions) of \(most) questions answered so far (its interval is wider)")
      }
      if conventions[task]?.count ?? 0 > 1 {
        notes.append("\(task): local scenarios count memory in the engine convention (with scratch), remote ones in the paper's")
      }
    }
  }

  /// A preset's name, or a model folder's or GGUF file's name (without `.gguf`).
  public static func modelLabel(_ model: String) -> String {
    if let preset = ModelPresets.named(model) { return preset.name }
    let name = (model as NSString).lastPathComponent
    return name.lowercased().hasSuffix(".gguf") ? String(name.dropLast(5)) : name
  }

  /// Points grouped by task, tasks in name order.
  public var byTask: [(task: String, points: [ResultPoint])] {
    Dictionary(grouping: points, by: \.task).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  }
}
