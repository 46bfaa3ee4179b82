import BitBudgetEngine
import BitBudgetEval
@testable import BitBudgetLab
import BitBudgetTestSupport
import BitBudgetTokenizer
import Foundation
import Testing

/// The lab in-process, without the binary: the local backend's resume after a simulated crash,
/// samples shared across G, failures recorded per sample, memory refusals, and a sweep.
@Suite(.serialized) struct LabTests {
  /// A random Qwen3 with the real tokenizer's vocabulary (so prompts, `</think>` and the forced
  /// text tokenize as for Qwen3) in a temporary folder holding the tokenizer files.
  static func makeModel() throws -> URL {
    let model = try Fixtures.makeRandomQwen3(vocab: 151_669)
    for file in ["tokenizer.json", "tokenizer_config.json"] {
      try FileManager.default.copyItem(
        atPath: (Fixtures.qwen3TokenizerDirectory as NSString).appendingPathComponent(file), toPath: model.appendingPathComponent(file).path)
    }
    return model
  }

  static let task = EvalTask(
    name: "arith", answerType: .integer,
    items: (0..<3).map { TaskItem(id: "q\($0)", question: "What is \($0) + \($0 + 2)?", gold: String(2 * $0 + 2)) })

  static func scenario(_ model: URL, parallel: Int = 1, maxTokens: Int = 6, budget: Int? = nil) -> Scenario {
    Scenario(
      task: task.name, model: model.path, weightBits: 16, kv: "full", thinkingBudget: budget, maxTokens: maxTokens, samples: 2,
      parallel: parallel, temperature: 1, topP: 1, topK: 0, seed: 5, taskDigest: task.contentDigest,
      budgetForcing: budget == nil ? .none : .paper)
  }

  struct Crash: Error {}

  /// Scenarios asked in Qwen3's template keep the keys they had before models brought their own
  /// templates; another template is part of the key (its samples are another experiment).
  @Test func theChatTemplateIsPartOfTheKeyUnlessItIsQwen3s() throws {
    let model = try Self.makeModel()
    defer { try? FileManager.default.removeItem(at: model) }
    let backend = try LocalScenarioBackend(model: try DecoderModel.load(path: model.path), settings: EngineSettings(modelPath: model.path))
    #expect(backend.chatTemplateKey == nil)
    #expect(backend.stops.contains(151645))
    let other = try ChatTemplate("{{ messages[0].content }}", name: "plain")
    let key = try #require(other.scenarioKey)
    #expect(key.count == 16)
    var scenario = Self.scenario(model)
    let before = scenario.key
    scenario.chatTemplate = key
    #expect(scenario.key != before)
    #expect(scenario.canonicalJSON.contains("\"chatTemplate\":\"\(key)\""))
    #expect(!Self.scenario(model).canonicalJSON.contains("chatTemplate"))
  }

  @Test func aCrashedRunResumesWithoutRedoingSamples() throws {
    let model = try Self.makeModel()
    defer { try? FileManager.default.removeItem(at: model) }
    let store = try ResultStore(path: model.appendingPathComponent("results.sqlite").path)
    let backend = try LocalScenarioBackend(model: try DecoderModel.load(path: model.path), settings: EngineSettings(modelPath: model.path, threads: 2))
    let scenario = Self.scenario(model)
    // The progress callback throws after the first question: the run stops there, as if killed.
    #expect(throws: Crash.self) {
      _ = try backend.run(scenario, task: Self.task, items: Self.task.items, answerTokens: 0, store: store) { _ in throw Crash() }
    }
    let before = try store.samples(scenario.key)
    #expect(before.count == 2 && Set(before.map(\.questionId)) == ["q0"])
    let progress = ProgressLog()
    let generated = try backend.run(scenario, task: Self.task, items: Self.task.items, answerTokens: 0, store: store) { progress.add($0) }
    let after = try store.samples(scenario.key)
    #expect(after.count == 6 && generated == 4 * 6)
    for record in before { #expect(after.contains(record)) }
    #expect(progress.entries.map(\.done) == [2, 4, 6] && progress.entries.allSatisfy { $0.total == 6 })
    // Done: a third run generates nothing.
    #expect(try backend.run(scenario, task: Self.task, items: Self.task.items, answerTokens: 0, store: store) { _ in } == 0)
  }

  @Test func anotherGReusesTheSamplesAndPaperBudgetsThinkExactly() throws {
    let model = try Self.makeModel()
    defer { try? FileManager.default.removeItem(at: model) }
    let store = try ResultStore(path: model.appendingPathComponent("results.sqlite").path)
    let backend = try LocalScenarioBackend(model: try DecoderModel.load(path: model.path), settings: EngineSettings(modelPath: model.path, threads: 2))
    let single = Self.scenario(model, parallel: 1, maxTokens: 20, budget: 8)
    _ = try backend.run(single, task: Self.task, items: Self.task.items, answerTokens: 4, store: store) { _ in }
    let pair = Self.scenario(model, parallel: 2, maxTokens: 20, budget: 8)
    #expect(try backend.run(pair, task: Self.task, items: Self.task.items, answerTokens: 4, store: store) { _ in } == 0)
    let records = try store.samples(pair.key)
    #expect(records.map(\.output) == (try store.samples(single.key)).map(\.output))
    #expect(records.count == 6 && records.allSatisfy { $0.thinkingTokens == 8 && $0.finish == "budget" })
    #expect(try store.runMeasurements(single.key)?.estimatedBytes ?? 0 > 0)
  }

  @Test func failuresAreRecordedPerSampleAndMemoryLimitsRefuse() throws {
    let model = try Self.makeModel()
    defer { try? FileManager.default.removeItem(at: model) }
    let store = try ResultStore(path: model.appendingPathComponent("results.sqlite").path)
    let loaded = try DecoderModel.load(path: model.path)
    let backend = try LocalScenarioBackend(model: loaded, settings: EngineSettings(modelPath: model.path, threads: 2))
    // A question longer than the model's context fails alone; the others are answered.
    let long = TaskItem(id: "long", question: String(repeating: "seven ", count: loaded.config.maxPositions), gold: "7")
    let task = EvalTask(name: "arith", answerType: .integer, items: Self.task.items + [long])
    let scenario = Self.scenario(model)
    _ = try backend.run(scenario, task: task, items: task.items, answerTokens: 0, store: store) { _ in }
    let records = try store.samples(scenario.key)
    let failed = records.filter { $0.questionId == "long" }
    #expect(failed.count == 2 && failed.allSatisfy { $0.finish == "error" && ($0.error ?? "").contains("context") })
    #expect(records.filter { $0.error == nil }.count == 6)
    // Over the memory limit: refused before generating, nothing recorded.
    var tight = EngineSettings(modelPath: model.path, threads: 2, memoryLimit: 1 << 20)
    tight.kv = .full
    let limited = try LocalScenarioBackend(model: loaded, settings: tight)
    let other = Self.scenario(model, maxTokens: 7)
    #expect(throws: LabError.self) {
      _ = try limited.run(other, task: Self.task, items: Self.task.items, answerTokens: 0, store: store) { _ in }
    }
    #expect(try store.samples(other.key).isEmpty)
  }

  @Test func aSweepRunsEveryPointAndSharesAcrossG() throws {
    let model = try Self.makeModel()
    defer { try? FileManager.default.removeItem(at: model) }
    let taskFile = model.appendingPathComponent("arith.jsonl")
    try Self.task.items.map { #"{"id": "\#($0.id)", "question": "\#($0.question)", "answer": \#($0.gold)}"# }.joined(separator: "\n")
      .write(to: taskFile, atomically: true, encoding: .utf8)
    let grid = try SweepGrid.parse(
      "model: \(model.path)\ntask: \(taskFile.path)\nsamples: 2\nparallel: [1, 2]\nkv: [full, \"hqq:4,group=16,residual=16\"]\nmax_tokens: 5\n", path: "g.yaml")
    let runner = try SweepRunner(grid: grid, engine: EngineSettings(modelPath: "", threads: 2))
    let store = try ResultStore(path: model.appendingPathComponent("results.sqlite").path)
    let progress = ProgressLog()
    let results = try runner.run(store: store) { progress.add($0.current, sweepDone: $0.sweepDone, sweepTotal: $0.sweepTotal) }
    #expect(results.count == 4)
    // The last axis varies fastest: (G 1, full), (G 1, hqq), then G = 2 of each reusing them.
    #expect(results.map(\.generatedThisRun).map { $0 > 0 } == [true, true, false, false])
    #expect(results.map(\.scenario.kv) == ["full", "hqq:4,group=16,residual=16", "full", "hqq:4,group=16,residual=16"])
    #expect(results.allSatisfy { $0.score.samples == 6 })
    // Progress counts the sweep's samples, those copied from another G included: all 24 at the end.
    #expect(progress.sweep.last.map { [$0.0, $0.1] } == [24, 24])
    let refused = try SweepGrid.parse("model: \(model.path)\ntask: \(taskFile.path)\nkv: \"rkv:x\"\n", path: "g.yaml")
    #expect(throws: LabError.self) { try SweepRunner(grid: refused, engine: EngineSettings(modelPath: "", threads: 2)) }
    // A quantization group the model's heads cannot hold (head dimension 16) is refused up front.
    let geometry = try SweepGrid.parse("model: \(model.path)\ntask: \(taskFile.path)\nkv: [full, \"hqq:4\"]\n", path: "g.yaml")
    #expect(throws: LabError.self) { try SweepRunner(grid: geometry, engine: EngineSettings(modelPath: "", threads: 2)) }
  }
}

extension LabTests {
  /// CSV fields as RFC 4180 quotes them (what Python's csv module and spreadsheets read back).
  @Test func csvFieldsAreQuotedWhereNeeded() {
    #expect(ResultExport.Cell("plain").csv == "plain")
    #expect(ResultExport.Cell("a,b").csv == "\"a,b\"")
    #expect(ResultExport.Cell("say \"hi\"").csv == "\"say \"\"hi\"\"\"")
    #expect(ResultExport.Cell("line\r\nbreak").csv == "\"line\r\nbreak\"")
    #expect(ResultExport.Cell(nil as Int?).csv == "" && ResultExport.Cell(true).csv == "true" && ResultExport.Cell(UInt64.max).csv == "18446744073709551615")
    #expect(ResultExport.Cell(Double.nan).json is NSNull)
  }
}

/// Progress calls, from any thread.
final class ProgressLog: @unchecked Sendable {
  private let lock = NSLock()
  private var _entries: [ScenarioProgress] = []
  private var _sweep: [(Int, Int)] = []

  func add(_ progress: ScenarioProgress, sweepDone: Int = 0, sweepTotal: Int = 0) {
    lock.withLock {
      _entries.append(progress)
      _sweep.append((sweepDone, sweepTotal))
    }
  }

  var entries: [ScenarioProgress] { lock.withLock { _entries } }
  var sweep: [(Int, Int)] { lock.withLock { _sweep } }
}
