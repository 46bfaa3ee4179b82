import Foundation
import PropertyBased
import Testing

@testable import BitBudgetEval

/// Properties of pass@k, maj@K and scenario scores over random pools of samples.
///
/// Exact equalities are asserted where the code has an exact branch (pass@n, maj@K at K = 1 and K
/// = n, all or no correct samples); pass@1 of the product formula equals the mean within 1e-12, the
/// rounding of at most 64 Double factors (≈ 64 · 2⁻⁵³ ≈ 7e-15).
@Suite struct MetricsPropertyTests {
  /// (n, c): up to 64 samples, any number of them correct.
  static let counts = zip(Gen.int(in: 1...64), Gen.int(in: 0...64)).map { n, c in (n, min(c, n)) }

  @Test func passAtKIsABoundedMonotoneEstimator() async {
    await propertyCheck(count: 300, input: Self.counts) { n, c in
      var previous = -1.0
      for k in 1...n {
        let value = AccuracyMetrics.passAtK(samples: n, correct: c, k: k)
        #expect((0...1).contains(value), "pass@\(k) of \(c)/\(n) = \(value)")
        #expect(value >= previous, "pass@\(k) < pass@\(k - 1) for \(c)/\(n)")
        previous = value
      }
      let correct = (0..<n).map { $0 < c }
      #expect(abs(AccuracyMetrics.passAtK(samples: n, correct: c, k: 1) - AccuracyMetrics.passAt1(correct)) <= 1e-12)
      #expect(AccuracyMetrics.passAt1(correct) == Double(c) / Double(n))
      #expect(AccuracyMetrics.passAtK(samples: n, correct: c, k: n) == (c > 0 ? 1 : 0))
    }
  }

  /// Answers from a small alphabet (so majorities and ties are common) or nil (a sample without an
  /// answer), gold "a".
  static let answers = Gen.int(in: 0...4).map { $0 == 4 ? nil : ["a", "b", "c", "d"][$0] }.array(of: 1...12)

  @Test func majorityAtKIsBoundedAndExactAtTheEnds() async {
    await propertyCheck(count: 300, input: Self.answers, Gen.int(in: 1...12), Gen.uint64(in: 0...1000)) { pool, kRaw, seed in
      let k = (kRaw - 1) % pool.count + 1
      let value = AccuracyMetrics.majorityAtK(pool, gold: "a", k: k, draws: 40, seed: seed)
      #expect((0...1).contains(value))
      // A value from `draws` subsets is a multiple of 1/draws unless computed exactly.
      if k == pool.count {
        #expect(value == (AccuracyMetrics.majorityCorrect(pool, gold: "a") ? 1 : 0))
      } else if k == 1 {
        #expect(value == Double(pool.filter { $0 == "a" }.count) / Double(pool.count))
      }
      // Every sample right (all "a") → 1; none right (no "a") → 0, whatever K and the draws.
      let right = [String?](repeating: "a", count: pool.count)
      #expect(AccuracyMetrics.majorityAtK(right, gold: "a", k: k, draws: 40, seed: seed) == 1)
      let wrong = pool.map { $0 == "a" ? "b" : $0 }
      #expect(AccuracyMetrics.majorityAtK(wrong, gold: "a", k: k, draws: 40, seed: seed) == 0)
      // Seeded: the same call gives the same value.
      #expect(AccuracyMetrics.majorityAtK(pool, gold: "a", k: k, draws: 40, seed: seed) == value)
    }
  }

  /// A sample: (question 0…4, answer index or none, failed?, tokens).
  static let records = zip(Gen.int(in: 0...4), Gen.int(in: 0...4), Gen.bool(0.15), Gen.int(in: 0...5000))
    .array(of: 0...30)
    .map { rows -> [SampleRecord] in
      var next: [Int: Int] = [:]
      return rows.map { question, answerIndex, failed, tokens in
        let index = next[question, default: 0]
        next[question] = index + 1
        // Gold of question q is "q"; answers are "0"…"3" or none. Failed samples have no answer
        // and are not correct, as the runners store them.
        let answer = failed || answerIndex == 4 ? nil : String(answerIndex)
        return SampleRecord(
          scenarioKey: "s", questionId: "q\(question)", sampleIndex: index, output: "", tokens: tokens, thinkingTokens: 0,
          finish: failed ? "error" : "eos", answer: answer, correct: answer == String(question), error: failed ? "boom" : nil,
          seconds: Double(tokens) / 1000)
      }
    }

  @Test func scenarioScoreFieldsStayInBounds() async {
    await propertyCheck(count: 200, input: Self.records, Gen.int(in: 0...8)) { records, kRaw in
      let majorityK = kRaw == 0 ? nil : kRaw
      let score = ScenarioScore(records: records, majorityK: majorityK)
      #expect(score.questions == Set(records.map(\.questionId)).count)
      #expect(score.samples == records.count)
      #expect((0...score.samples).contains(score.errors))
      #expect(score.errors == records.filter { $0.error != nil }.count)
      #expect(score.generatedTokens == records.reduce(0) { $0 + $1.tokens })
      #expect((0...1).contains(score.passAt1) && (0...1).contains(score.majorityAtK))
      #expect(score.perQuestion.count == score.questions)
      #expect(score.perQuestion.reduce(0) { $0 + $1.samples } == score.samples)
      #expect(score.perQuestion.map(\.questionId) == score.perQuestion.map(\.questionId).sorted())
      for question in score.perQuestion {
        #expect((0...1).contains(question.passAt1) && (0...1).contains(question.majorityAtK))
        let group = records.filter { $0.questionId == question.questionId }
        #expect(question.passAt1 == AccuracyMetrics.passAt1(group.map(\.correct)))
      }
      if records.isEmpty {
        #expect(score.passAt1 == 0 && score.majorityAtK == 0)
      } else {
        let mean = score.perQuestion.reduce(0) { $0 + $1.passAt1 } / Double(score.questions)
        #expect(abs(score.passAt1 - mean) <= 1e-12)
      }
      // Every sample right → 1 for both; none right → 0 for both.
      let allRight = records.map { record -> SampleRecord in
        var r = record
        r.answer = String(r.questionId.dropFirst())
        r.correct = true
        r.error = nil
        return r
      }
      let noneRight = records.map { record -> SampleRecord in
        var r = record
        r.correct = false
        return r
      }
      if !records.isEmpty {
        let right = ScenarioScore(records: allRight, majorityK: majorityK)
        #expect(right.passAt1 == 1 && right.majorityAtK == 1)
        let wrong = ScenarioScore(records: noneRight, majorityK: majorityK)
        #expect(wrong.passAt1 == 0 && wrong.majorityAtK == 0)
      }
    }
  }
}
