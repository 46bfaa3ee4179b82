import BitBudgetAnalysis
import BitBudgetTestSupport
import Foundation
import Testing

@Suite struct FrontierTests {
  static func point(_ key: String, _ gib: Double, _ accuracy: Double, model: String = "m", bits: Int = 8, tokens: Int = 1000, g: Int = 1) -> ResultPoint {
    ResultPoint(
      key: key, task: "t", model: model, weightBits: bits, kv: "full", tokenBudget: tokens, parallel: g,
      memoryBytes: Int(gib * Double(1 << 30)), weightsBytes: nil,
      accuracy: Accuracy(mean: accuracy, standardError: 0.02, questions: 30, samples: 240))
  }

  @Test func accuracyUncertaintyByHand() {
    // Scores 1, 0, 1, 1 plus the pseudo-questions 0 and 1: mean 2/3, sample variance 4/15,
    // standard error sqrt(4/15 / 6) = 0.210819.
    let accuracy = Accuracy(questionScores: [1, 0, 1, 1], samples: 4)
    #expect(accuracy.mean == 0.75)
    #expect(abs(accuracy.standardError - 0.210819) < 1e-6)
    #expect(accuracy.high == 1 && abs(accuracy.low - (0.75 - 1.96 * 0.210819)) < 1e-6)
    // All right still has an uncertainty: scores 1 × 30 plus 0, 1 → sd of 31 ones and a zero.
    let perfect = Accuracy(questionScores: Array(repeating: 1, count: 30), samples: 30)
    #expect(perfect.mean == 1 && perfect.standardError > 0.02 && perfect.standardError < 0.04)
    let a = Accuracy(mean: 0.60, standardError: 0.03, questions: 30, samples: 30)
    let b = Accuracy(mean: 0.50, standardError: 0.03, questions: 30, samples: 30)
    let c = Accuracy(mean: 0.55, standardError: 0.03, questions: 30, samples: 30)
    #expect(a.isSignificantlyAbove(b))  // 0.10 > 1.96 · 0.0424
    #expect(!a.isSignificantlyAbove(c) && !b.isSignificantlyAbove(a))
  }

  @Test func frontierTiesAndBudgets() {
    let points = [
      Self.point("a", 1, 0.20), Self.point("b", 2, 0.20), Self.point("c", 2, 0.35), Self.point("d", 3, 0.30),
      Self.point("f", 4, 0.50), Self.point("e", 4, 0.50), Self.point("g", 5, 0.45),
    ]
    let frontier = ParetoFrontier(points.shuffled())
    #expect(frontier.frontier.map(\.key) == ["a", "c", "e"])
    #expect(frontier.ties.map(\.key) == ["f"])
    #expect(frontier.best(within: Int(3.5 * Double(1 << 30)))?.key == "c")
    #expect(frontier.best(within: Int(4 * Double(1 << 30)))?.key == "e")
    #expect(frontier.best(within: 1 << 29) == nil)
    // Within 4 GiB: d (0.30) is significantly below e (0.50); f ties with it.
    let close = frontier.indistinguishable(from: frontier.frontier[2], within: 4 << 30).map(\.key)
    #expect(close == ["f"])
  }

  @Test func stepsNameTheAxisAndTheCrossoverSplitsWeightsFromGeneration() throws {
    // Weights grow (0.6B 8-bit → 1.7B 8-bit → 4B 8-bit), then tokens, then G.
    let points = [
      Self.point("w1", 1, 0.10, model: "0.6b"), Self.point("w2", 2, 0.20, model: "1.7b"), Self.point("w3", 4.5, 0.35, model: "4b"),
      Self.point("t1", 6, 0.40, model: "4b", tokens: 10000), Self.point("t2", 8, 0.45, model: "4b", tokens: 20000),
      Self.point("g1", 16, 0.55, model: "4b", tokens: 20000, g: 4), Self.point("x", 7, 0.38, model: "1.7b", bits: 16),
    ]
    let frontier = ParetoFrontier(points)
    #expect(frontier.frontier.map(\.key) == ["w1", "w2", "w3", "t1", "t2", "g1"])
    #expect(frontier.steps.map(\.axis) == [.weights, .weights, .tokens, .tokens, .parallel])
    #expect(frontier.segments.map(\.axis) == [.weights, .tokens, .parallel])
    #expect(frontier.segments.first?.steps == 2)
    let crossover = try #require(frontier.crossover)
    #expect(crossover.point.key == "w3" && crossover.explainedFraction == 1)
    // Same axes, another setting: "other".
    let same = [Self.point("s1", 1, 0.1), Self.point("s2", 2, 0.2)]
    #expect(ParetoFrontier(same).steps.map(\.axis) == [.other])
    // Only weights steps: no crossover.
    #expect(ParetoFrontier(Array(points.prefix(3))).crossover == nil)
  }

  /// The synthetic paper-shaped set of scripts/make-synthetic-results.py, whose frontier, step
  /// axes and crossover the script computed itself.
  @Test func syntheticResultSetMatchesTheScriptsFrontier() throws {
    let fixture = try SyntheticResults.load()
    let frontier = ParetoFrontier(fixture.points)
    #expect(frontier.points.count == 240)
    #expect(frontier.frontier.map(\.key) == fixture.frontier)
    #expect(frontier.steps.map(\.axis.rawValue) == fixture.axes)
    let crossover = try #require(frontier.crossover)
    #expect(crossover.point.key == fixture.crossover)
    #expect(abs(crossover.explainedFraction - fixture.crossoverExplainedFraction) < 1e-9)
    // The generative model's threshold: 8-bit Qwen3-4B (4.21 GiB by the script's formula).
    #expect(crossover.point.model == "qwen3-4b" && crossover.point.weightBits == 8)
  }
}

/// `Tests/Fixtures/analysis/synthetic-results.json` as result points.
struct SyntheticResults {
  struct Scenario: Decodable {
    let key: String
    let model: String
    let weightBits: Int
    let kv: String
    let tokenBudget: Int
    let parallel: Int
    let weightsBytes: Int
    let memoryBytes: Int
    let correctPerQuestion: [Int]
    let samplesPerQuestion: Int
  }

  struct File: Decodable {
    let task: String
    let scenarios: [Scenario]
    let frontier: [String]
    let axes: [String]
    let crossover: String
    let crossoverExplainedFraction: Double
  }

  let file: File
  var points: [ResultPoint] {
    file.scenarios.map { s in
      ResultPoint(
        key: s.key, task: file.task, model: s.model, weightBits: s.weightBits, kv: s.kv, tokenBudget: s.tokenBudget, parallel: s.parallel,
        memoryBytes: s.memoryBytes, weightsBytes: s.weightsBytes,
        accuracy: Accuracy(
          questionScores: s.correctPerQuestion.map { Double($0) / Double(s.samplesPerQuestion) },
          samples: s.correctPerQuestion.count * s.samplesPerQuestion))
    }
  }
  var frontier: [String] { file.frontier }
  var axes: [String] { file.axes }
  var crossover: String { file.crossover }
  var crossoverExplainedFraction: Double { file.crossoverExplainedFraction }

  static func load() throws -> SyntheticResults {
    let path = (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/analysis/synthetic-results.json")
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return SyntheticResults(file: try decoder.decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path))))
  }
}
