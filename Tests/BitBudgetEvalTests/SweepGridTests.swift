import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEval

@Suite struct SweepGridTests {
  /// Nine levels of nine aliases each: 9⁹ values once expanded, from ~300 bytes.
  static let billionLaughs = (0..<9).map { level in
    let name = String(UnicodeScalar(UInt8(97 + level)))
    let items = level == 0 ? Array(repeating: "x", count: 9) : Array(repeating: "*" + String(UnicodeScalar(UInt8(96 + level))), count: 9)
    return "\(name): &\(name) [\(items.joined(separator: ","))]"
  }.joined(separator: "\n") + "\nmodel: m\ntask: t\n"

  @Test func axesMultiplyInFileOrder() throws {
    let grid = try SweepGrid.parse("""
      model: m.gguf
      task: t.jsonl
      weights: [16, 4]
      kv: [full, "rkv:512", "hqq:4"]
      samples: 4
      parallel: [1, 4]
      temperature: 0.7
      """, path: "g.yaml")
    #expect(grid.points.count == 12)
    #expect(grid.axes == ["weights", "kv", "parallel"])
    #expect(grid.points.allSatisfy { $0.model == "m.gguf" && $0.samples == 4 && $0.temperature == 0.7 })
    // The last axis varies fastest.
    #expect(grid.points.prefix(3).map(\.parallel) == [1, 4, 1])
    #expect(grid.points.prefix(3).map(\.kv) == ["full", "full", "rkv:512"])
    #expect(grid.points[6].weights == 4)
  }

  @Test func theExampleGridParses() throws {
    let path = (Fixtures.repositoryRoot as NSString).appendingPathComponent("examples/paper-grid.yaml")
    let grid = try SweepGrid.load(path: path)
    // The paper's design (§2.3): serial + parallel on AIME25, serial on GPQA, KV compression.
    #expect(grid.points.count == 720 + 144 + 864)
    #expect(grid.axes == ["model", "weights", "thinking_budget", "parallel", "kv"])
    #expect(Set(grid.points.map(\.model)).count == 6 && Set(grid.points.map(\.task)) == ["aime25", "gpqa-diamond"])
    #expect(grid.points.allSatisfy { $0.budgetMode == .paper })
    #expect(Set(grid.points.map(\.kv)) == ["full", "rkv:2048", "rkv:4096", "rkv:8192", "hqq:2", "hqq:4", "hqq:8"])
    #expect(grid.points.filter { $0.kv != "full" }.allSatisfy { $0.samples == 8 })
    let remote = try SweepGrid.load(path: (Fixtures.repositoryRoot as NSString).appendingPathComponent("examples/remote-grid.yaml"))
    #expect(remote.points.count == 3 * 80 && remote.points.allSatisfy { $0.backend?.endpoints.count == 2 })
    #expect(Set(remote.points.compactMap { $0.backend?.model }) == ["Qwen/Qwen3-32B-AWQ", "Qwen/Qwen3-32B-FP8", "Qwen/Qwen3-32B"])
  }

  @Test func backendsAreFixedOrAnAxis() throws {
    let yaml = """
      model: qwen3-8b
      task: aime25.jsonl
      weights: [8, 16]
      backend:
        endpoint: [http://node1:8000/v1, "http://node2:8000/v1/"]
        model: Qwen/Qwen3-8B
        concurrency: 16
        timeout: 600
      """
    let grid = try SweepGrid.parse(yaml, path: "g.yaml")
    #expect(grid.points.count == 2 && grid.axes == ["weights"])
    let backend = try #require(grid.points[0].backend)
    #expect(backend.endpoints.map(\.absoluteString) == ["http://node1:8000/v1", "http://node2:8000/v1"])
    #expect(backend.model == "Qwen/Qwen3-8B" && backend.concurrency == 16 && backend.timeoutSeconds == 600)
    #expect(backend.retries == RemoteBackend.defaultRetries)
    let axis = try SweepGrid.parse("model: m\ntask: t\nbackend: [local, {endpoint: http://h/v1, model: x}]\n", path: "g.yaml")
    #expect(axis.points.map { $0.backend?.model } == [nil, "x"])
    #expect(axis.axes == ["backend"])
  }

  /// Documents of one file are grids run one after the other; the limit counts all of them.
  @Test func documentsAreGridsOneAfterTheOther() throws {
    let grid = try SweepGrid.parse("model: a\ntask: t\nweights: [16, 8]\n---\n# second\nmodel: b\ntask: t\nkv: [full, \"hqq:4\"]\n", path: "g.yaml")
    #expect(grid.points.map { "\($0.model) \($0.weights ?? 0) \($0.kv)" } == ["a 16 full", "a 8 full", "b 0 full", "b 0 hqq:4"])
    #expect(grid.axes == ["weights", "kv"])
    do {
      _ = try SweepGrid.parse("model: a\ntask: t\nseed: [1, 2]\n---\nmodel: b\ntask: t\nseed: [1, 2]\n", path: "g.yaml", maxScenarios: 3)
      Issue.record("accepted 4 scenarios with a limit of 3")
    } catch {
      #expect("\(error)".contains("document 2") && "\(error)".contains("the grid has 4 scenarios"), "\(error)")
    }
    #expect(throws: EvalError.self) { try SweepGrid.parse("---\n# nothing\n---\n  # indented\n", path: "g.yaml") }
    // A document may start on its marker's line.
    let inline = try SweepGrid.parse("model: a\ntask: t\n--- {model: b, task: t}\n", path: "g.yaml")
    #expect(inline.points.map(\.model) == ["a", "b"])
    do {
      _ = try SweepGrid.parse("model: a\ntask: t\n---\nmodel: b\n", path: "g.yaml")
    } catch {
      #expect("\(error)".contains("(document 2)") && "\(error)".contains("no \"task\""), "\(error)")
    }
  }

  /// `budget_mode` defaults to the paper's and may be an axis; `cap` and `none` keep the keys of
  /// scenarios stored before the mode existed (one-sided forcing, no budget).
  @Test func budgetModeIsAnAxisAndOnlyPaperChangesKeys() throws {
    let grid = try SweepGrid.parse("model: m\ntask: t\nthinking_budget: 100\nbudget_mode: [paper, cap, none]\n", path: "g.yaml")
    #expect(grid.points.map(\.budgetMode) == [.paper, .cap, .none])
    #expect(try SweepGrid.parse("model: m\ntask: t\n", path: "g.yaml").points[0].budgetMode == .paper)
    func scenario(_ budget: Int?, _ mode: BudgetMode) -> Scenario {
      Scenario(
        task: "t", model: "m", weightBits: 16, kv: "full", thinkingBudget: budget, maxTokens: 356, samples: 1, parallel: 1,
        temperature: 0.6, topP: 0.95, topK: 20, seed: 0, budgetForcing: mode)
    }
    #expect(scenario(100, .cap).canonicalJSON == #"{"kv":"full","maxTokens":356,"model":"m","parallel":1,"samples":1,"seed":0,"task":"t","temperature":0.6,"thinkingBudget":100,"topK":20,"topP":0.95,"weightBits":16}"#)
    #expect(scenario(100, .paper).canonicalJSON.hasPrefix(#"{"budgetMode":"paper","kv":"full""#))
    #expect(scenario(100, .none).key == scenario(nil, .paper).key)
    #expect(scenario(100, .paper).budgetForcing == .paper && scenario(100, .cap).budgetForcing == .cap && scenario(100, .none).budgetForcing == .none)
  }

  @Test(arguments: [
    ("task: t\n", "no \"model\""),
    ("model: m\n", "no \"task\""),
    ("model: m\ntask: t\nweigths: [4]\n", "unknown key \"weigths\""),
    ("model: m\ntask: t\nweights: [16, 3]\n", "\"weights\" must be 16, 8 or 4"),
    ("model: m\ntask: t\nkv: []\n", "empty list"),
    ("model: m\ntask: t\nsamples: two\n", "\"samples\" must be an integer"),
    ("model: m\ntask: t\nsamples: 2\nparallel: 4\n", "parallel 4 exceeds samples 2"),
    ("model: m\nmodels: [a]\ntask: t\n", "not both"),
    ("- just\n- a list\n", "mapping"),
    ("model: [unclosed\n", "not valid YAML"),
    // Keys that are collections used to trap inside Yams (found by fuzzing: Fuzz/crashes/).
    ("? r:\n", "not a mapping"),
    ("model: m\ntask: t\n[a]: b\n", "not a list"),
    ("model: m\ntask: t\nbackend: {{a: 1}: b}\n", "not a mapping"),
    ("x: &k [1]\n*k : 2\n", "not a"),
    (SweepGridTests.billionLaughs, "more than 100000 values"),
    ("model: m\ntask: t\nbackend: remote\n", "\"backend\" must be local or a mapping"),
    ("model: m\ntask: t\nbackend: {model: x}\n", "needs \"endpoint\""),
    ("model: m\ntask: t\nbackend: {endpoint: http://h/v1}\n", "needs \"model\""),
    ("model: m\ntask: t\nbackend: {endpoint: ftp://h, model: x}\n", "not an http(s) URL"),
    ("model: m\ntask: t\nbackend: {endpoint: http://h/v1, model: x, workers: 3}\n", "unknown backend key \"workers\""),
    ("model: m\ntask: t\nbackend: {endpoint: http://h/v1, endpoints: [http://g/v1], model: x}\n", "not both"),
    ("model: m\ntask: t\nbackend: {endpoint: http://h/v1, model: x, concurrency: many}\n", "\"concurrency\" must be an integer"),
    ("model: m\ntask: t\nbudget_mode: wait\n", "\"budget_mode\" must be paper, cap or none"),
    ("model: m\ntask: t\nthinking_budget: 100\nmax_tokens: 50\n", "below thinking_budget 100"),
  ])
  func errorsNameTheKey(yaml: String, phrase: String) {
    do {
      _ = try SweepGrid.parse(yaml, path: "g.yaml")
      Issue.record("accepted: \(yaml)")
    } catch {
      #expect("\(error)".contains(phrase), "\(error)")
      #expect(!"\(error)".contains("\n"))
    }
  }
}
