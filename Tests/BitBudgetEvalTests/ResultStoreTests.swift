import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEval

@Suite struct ResultStoreTests {
  static let scenario = Scenario(
    task: "arith.jsonl", model: "m", weightBits: 4, kv: "rkv:1024", thinkingBudget: 2000, maxTokens: 2256, samples: 4, parallel: 2,
    temperature: 0.6, topP: 0.95, topK: 20, seed: 1)

  @Test func scenarioKeysAreStable() {
    var other = Self.scenario
    #expect(other.key == Self.scenario.key && other.key.count == 16)
    other.samples = 8
    #expect(other.key != Self.scenario.key)
    // Canonical JSON: sorted keys, so the key does not depend on declaration order.
    #expect(Self.scenario.canonicalJSON.hasPrefix(#"{"kv":"rkv:1024","maxTokens":2256"#))
  }

  @Test func samplesAreSharedAcrossGOnly() throws {
    let directory = try Fixtures.temporaryDirectory("store-reuse")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = try ResultStore(path: directory.appendingPathComponent("r.sqlite").path)
    var g1 = Self.scenario
    g1.parallel = 1
    var g4 = Self.scenario
    g4.parallel = 4
    var otherSeed = Self.scenario
    otherSeed.seed = 2
    func sample(_ key: String, _ q: String, _ i: Int, error: String? = nil) -> SampleRecord {
      SampleRecord(
        scenarioKey: key, questionId: q, sampleIndex: i, output: error == nil ? "\\boxed{\(i)}" : "", tokens: 3, thinkingTokens: 1,
        finish: error == nil ? "eos" : "error", answer: error == nil ? String(i) : nil, correct: i == 0, error: error, seconds: 1)
    }
    for scenario in [g1, g4, otherSeed] { try store.register(scenario) }
    try store.record([sample(g1.key, "q1", 0), sample(g1.key, "q1", 1), sample(g1.key, "q1", 2, error: "timeout")])
    try store.record([sample(g4.key, "q1", 1, error: "HTTP 500")])
    // G = 4 takes G = 1's finished samples (its own failed sample 1 replaced), not the failure.
    #expect(try store.reuseSamples(for: g4) == 2)
    let reused = try store.samples(g4.key)
    #expect(reused.map(\.sampleIndex) == [0, 1] && reused.allSatisfy { $0.error == nil && $0.scenarioKey == g4.key })
    #expect(reused.map(\.output) == ["\\boxed{0}", "\\boxed{1}"])
    #expect(try store.reuseSamples(for: g4) == 0)
    // Another seed is another scenario's samples: nothing shared.
    #expect(try store.reuseSamples(for: otherSeed) == 0)
  }

  @Test func recordsResumeAndErrors() throws {
    let directory = try Fixtures.temporaryDirectory("store")
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("r.sqlite").path
    let key = Self.scenario.key
    do {
      let store = try ResultStore(path: path)
      try store.register(Self.scenario)
      try store.register(Self.scenario)  // idempotent
      try store.record(SampleRecord(scenarioKey: key, questionId: "q1", sampleIndex: 0, output: "\\boxed{5}", tokens: 9, thinkingTokens: 4, finish: "eos", answer: "5", correct: true, seconds: 0.5))
      try store.record(SampleRecord(scenarioKey: key, questionId: "q1", sampleIndex: 1, output: "", tokens: 0, thinkingTokens: 0, finish: "error", answer: nil, correct: false, error: "timeout", seconds: 0))
    }
    // Reopened (as after a restart): the finished sample counts, the failed one is to redo.
    let store = try ResultStore(path: path)
    #expect(try store.scenarios() == [Self.scenario])
    #expect(try store.finishedSamples(key) == [SampleKey(questionId: "q1", sampleIndex: 0)])
    try store.record(SampleRecord(scenarioKey: key, questionId: "q1", sampleIndex: 1, output: "\\boxed{6}", tokens: 7, thinkingTokens: 3, finish: "eos", answer: "6", correct: false, seconds: 0.4))
    #expect(try store.finishedSamples(key).count == 2)
    let task = EvalTask(name: "arith.jsonl", answerType: .integer, items: [TaskItem(id: "q1", question: "?", gold: "5")])
    let score = ScenarioScore(task: task, records: try store.samples(key))
    #expect(score.questions == 1 && score.samples == 2 && score.passAt1 == 0.5 && score.majorityAtK == 1 && score.generatedTokens == 16)

    // Run measurements add up over resumed runs; the peak RSS keeps the largest.
    try store.recordRun(key, estimatedBytes: 1000, peakRssBytes: 500, seconds: 2, generatedTokens: 10)
    try store.recordRun(key, estimatedBytes: 1000, peakRssBytes: 400, seconds: 3, generatedTokens: 20)
    #expect(try store.runMeasurements(key) == RunMeasurements(estimatedBytes: 1000, peakRssBytes: 500, wallSeconds: 5, generatedTokens: 30))
    #expect(try store.runMeasurements(key)?.tokensPerSecond == 6)

    let junk = directory.appendingPathComponent("junk.sqlite").path
    try "not a database, just text that is long enough to have a header".write(toFile: junk, atomically: true, encoding: .utf8)
    #expect(throws: EvalError.self) { try ResultStore(path: junk) }
  }
}
