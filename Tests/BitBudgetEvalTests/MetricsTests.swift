import Testing

@testable import BitBudgetEval

/// The metrics against values computed by hand.
@Suite struct MetricsTests {
  @Test func passAtOneAndK() {
    #expect(AccuracyMetrics.passAt1([true, false, true, true]) == 0.75)
    #expect(AccuracyMetrics.passAt1([]) == 0)
    // 1 − C(3,2)/C(5,2) = 1 − 3/10
    #expect(abs(AccuracyMetrics.passAtK(samples: 5, correct: 2, k: 2) - 0.7) < 1e-12)
    // 1 − C(6,3)/C(10,3) = 1 − 20/120
    #expect(abs(AccuracyMetrics.passAtK(samples: 10, correct: 4, k: 3) - 5.0 / 6) < 1e-12)
    #expect(AccuracyMetrics.passAtK(samples: 4, correct: 0, k: 2) == 0)
    #expect(AccuracyMetrics.passAtK(samples: 3, correct: 2, k: 2) == 1)
    // pass@1 of the estimator is the plain mean.
    #expect(abs(AccuracyMetrics.passAtK(samples: 8, correct: 3, k: 1) - 3.0 / 8) < 1e-12)
  }

  @Test func majorityTiesGoToTheEarliest() {
    #expect(AccuracyMetrics.majority(["5", "7", "7", "5", nil]) == "5")
    #expect(AccuracyMetrics.majority([nil, "7", "5", "5", "7"]) == "7")
    #expect(AccuracyMetrics.majority(["3", nil, "4", "4"]) == "4")
    #expect(AccuracyMetrics.majority([String?](repeating: nil, count: 3)) == nil)
    #expect(AccuracyMetrics.majorityCorrect(["1", "2", "2"], gold: "2"))
  }

  @Test func majorityAtKOverSubsets() {
    let pool: [String?] = ["1", "1", "2"]
    // K = pool: plain maj@K. K = 2: every pair's majority is "1" (ties → earliest).
    #expect(AccuracyMetrics.majorityAtK(pool, gold: "1", k: 3) == 1)
    #expect(AccuracyMetrics.majorityAtK(pool, gold: "1", k: 2, draws: 50) == 1)
    // K = 1: the chance a random sample is right, 2/3; 4,000 draws: ±0.03 at 4 standard errors.
    let estimate = AccuracyMetrics.majorityAtK(pool, gold: "1", k: 1, draws: 4000, seed: 7)
    #expect(abs(estimate - 2.0 / 3) < 0.03)
    #expect(AccuracyMetrics.majorityAtK(pool, gold: "1", k: 1, draws: 100, seed: 7) == AccuracyMetrics.majorityAtK(pool, gold: "1", k: 1, draws: 100, seed: 7))
  }
}
