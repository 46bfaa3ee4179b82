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

  /// Samples are graded against the answer key of the task's last run: fixing a gold answer
  /// re-scores what is stored, without generating anything again.
  @Test func aCorrectedAnswerKeyReGradesStoredSamples() throws {
    let directory = try Fixtures.temporaryDirectory("store-regrade")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = try ResultStore(path: directory.appendingPathComponent("r.sqlite").path)
    let wrongKey = EvalTask(name: "arith.jsonl", answerType: .integer, items: [TaskItem(id: "q1", question: "2+2?", gold: "5")])
    var scenario = Self.scenario
    scenario.taskDigest = wrongKey.contentDigest
    try store.register(scenario)
    try store.recordAnswerKey(wrongKey)
    try store.record((0..<2).map { i in
      SampleRecord(
        scenarioKey: scenario.key, questionId: "q1", sampleIndex: i, output: "\\boxed{4}", tokens: 5, thinkingTokens: 2,
        finish: "eos", answer: "4", correct: false, seconds: 1)
    })
    #expect(try store.samples(scenario.key).allSatisfy { !$0.correct })
    let fixed = EvalTask(name: "arith.jsonl", answerType: .integer, items: [TaskItem(id: "q1", question: "2+2?", gold: "4")])
    #expect(fixed.contentDigest == wrongKey.contentDigest)
    try store.recordAnswerKey(fixed)
    #expect(try store.samples(scenario.key).allSatisfy(\.correct))
    #expect(ScenarioScore(records: try store.samples(scenario.key)).passAt1 == 1)
    // Another file of the same name with other questions is another scenario.
    let other = EvalTask(name: "arith.jsonl", answerType: .integer, items: [TaskItem(id: "q1", question: "3+3?", gold: "6")])
    var otherScenario = Self.scenario
    otherScenario.taskDigest = other.contentDigest
    #expect(otherScenario.key != scenario.key)
    #expect(try store.samples(otherScenario.key).isEmpty)
  }

  /// Tokens and generation time are the sums of a scenario's own finished samples: a killed run
  /// that never recorded its totals still counts, samples copied from another G do not, and a
  /// sample written by two concurrent runs counts once.
  @Test func runTotalsComeFromTheSamples() throws {
    let directory = try Fixtures.temporaryDirectory("store-totals")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = try ResultStore(path: directory.appendingPathComponent("r.sqlite").path)
    var g1 = Self.scenario
    g1.parallel = 1
    let g2 = Self.scenario
    for scenario in [g1, g2] { try store.register(scenario) }
    func sample(_ key: String, _ i: Int, tokens: Int, error: String? = nil) -> SampleRecord {
      SampleRecord(
        scenarioKey: key, questionId: "q1", sampleIndex: i, output: "", tokens: tokens, thinkingTokens: 0, finish: error == nil ? "eos" : "error",
        answer: "1", correct: true, error: error, seconds: 0.5)
    }
    try store.record([sample(g1.key, 0, tokens: 10), sample(g1.key, 1, tokens: 20)])
    try store.record(sample(g1.key, 1, tokens: 20))  // a second, concurrent run finishing the same sample
    try store.record(sample(g1.key, 2, tokens: 0, error: "timeout"))
    #expect(try store.runMeasurements(g1.key)?.generatedTokens == 30)
    #expect(try store.runMeasurements(g1.key)?.generationSeconds == 1)
    #expect(try store.reuseSamples(for: g2) == 2)
    try store.record(sample(g2.key, 2, tokens: 7))
    #expect(try store.runMeasurements(g2.key)?.generatedTokens == 7)
    #expect(try store.runMeasurements(g2.key)?.generationSeconds == 0.5)
  }

  /// A database holding any count (written by an older version from a server's claim) scores
  /// and totals without trapping.
  @Test func absurdStoredCountsSaturate() throws {
    let directory = try Fixtures.temporaryDirectory("store-poison")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = try ResultStore(path: directory.appendingPathComponent("r.sqlite").path)
    try store.register(Self.scenario)
    try store.record((0..<3).map { i in
      SampleRecord(
        scenarioKey: Self.scenario.key, questionId: "q1", sampleIndex: i, output: "", tokens: .max, thinkingTokens: .max,
        finish: "eos", answer: "1", correct: true, seconds: 1)
    })
    #expect(ScenarioScore(records: try store.samples(Self.scenario.key)).generatedTokens == .max)
    #expect(try store.runMeasurements(Self.scenario.key)?.generatedTokens == .max)
  }

  /// Reading needs no write access: a read-only store opens a database without changing it, and
  /// refuses to write.
  @Test func readOnlyStoresReadWithoutWriting() throws {
    let directory = try Fixtures.temporaryDirectory("store-readonly")
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("r.sqlite").path
    do {
      let store = try ResultStore(path: path)
      try store.register(Self.scenario)
      try store.record(SampleRecord(
        scenarioKey: Self.scenario.key, questionId: "q1", sampleIndex: 0, output: "", tokens: 3, thinkingTokens: 1, finish: "eos",
        answer: "1", correct: true, seconds: 1))
    }
    let before = try Data(contentsOf: URL(fileURLWithPath: path))
    let reader = try ResultStore(path: path, readOnly: true)
    #expect(try reader.scenarios() == [Self.scenario])
    #expect(try reader.samples(Self.scenario.key).count == 1)
    #expect(throws: EvalError.self) { try reader.register(Self.scenario) }
    #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    #expect(throws: EvalError.self) { try ResultStore(path: directory.appendingPathComponent("missing.sqlite").path, readOnly: true) }
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

    // The peak RSS keeps the largest of the runs; tokens and time are the finished samples' sums.
    try store.recordRun(key, estimatedBytes: 1000, peakRssBytes: 500)
    try store.recordRun(key, estimatedBytes: 1000, peakRssBytes: 400)
    let measured = try #require(try store.runMeasurements(key))
    #expect(measured.estimatedBytes == 1000 && measured.peakRssBytes == 500 && measured.generatedTokens == 16)
    #expect(abs(measured.generationSeconds - 0.9) < 1e-12)

    let junk = directory.appendingPathComponent("junk.sqlite").path
    try "not a database, just text that is long enough to have a header".write(toFile: junk, atomically: true, encoding: .utf8)
    #expect(throws: EvalError.self) { try ResultStore(path: junk) }
  }
}
