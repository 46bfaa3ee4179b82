import Foundation

/// Accuracy over samples of one question (`algorithms.md` §7.5, §8.4).
public enum AccuracyMetrics {
  /// pass@1: the mean correctness over the samples (0 for none).
  public static func passAt1(_ correct: [Bool]) -> Double {
    correct.isEmpty ? 0 : Double(correct.filter { $0 }.count) / Double(correct.count)
  }

  /// The unbiased pass@k estimator of Chen et al. (2021): `1 − C(n − c, k) / C(n, k)` for `n`
  /// samples of which `c` are correct; computed as a product to stay exact for large n.
  public static func passAtK(samples n: Int, correct c: Int, k: Int) -> Double {
    precondition(k >= 1 && k <= n && c >= 0 && c <= n, "pass@k needs 1 ≤ k ≤ n and 0 ≤ c ≤ n")
    if n - c < k { return 1 }
    var failAll = 1.0
    for i in stride(from: n - c + 1, through: n, by: 1) { failAll *= 1 - Double(k) / Double(i) }
    return 1 - failAll
  }

  /// The majority answer: the most frequent non-nil answer, ties going to the one whose first
  /// occurrence is earliest; nil when every answer is nil.
  public static func majority<Answer: Hashable>(_ answers: [Answer?]) -> Answer? {
    var counts: [Answer: Int] = [:]
    var first: [Answer: Int] = [:]
    for (i, answer) in answers.enumerated() {
      guard let answer else { continue }
      counts[answer, default: 0] += 1
      if first[answer] == nil { first[answer] = i }
    }
    return counts.max { a, b in a.value != b.value ? a.value < b.value : first[a.key, default: 0] > first[b.key, default: 0] }?.key
  }

  /// maj@K: whether the majority of `answers` equals `gold`.
  public static func majorityCorrect<Answer: Hashable>(_ answers: [Answer?], gold: Answer) -> Bool {
    majority(answers) == gold
  }

  /// maj@K averaged over `draws` random K-subsets of a larger pool (without replacement, each
  /// subset in pool order so ties keep their meaning), seeded; exact when K is 1 or the pool size.
  public static func majorityAtK<Answer: Hashable>(
    _ pool: [Answer?], gold: Answer, k: Int, draws: Int = 100, seed: UInt64 = 0
  ) -> Double {
    majorityAtK(pool, isCorrect: { $0 == gold }, k: k, draws: draws, seed: seed)
  }

  /// maj@K as above, with correctness given per answer (e.g. the stored `correct` flag of the
  /// samples that gave it, when the gold answer is not at hand).
  public static func majorityAtK<Answer: Hashable>(
    _ pool: [Answer?], isCorrect: (Answer) -> Bool, k: Int, draws: Int = 100, seed: UInt64 = 0
  ) -> Double {
    precondition(k >= 1 && k <= pool.count, "maj@K needs 1 ≤ K ≤ pool size")
    if k == pool.count { return majority(pool).map(isCorrect) == true ? 1 : 0 }
    // maj@1 is the share of correct answers: its expectation over all draws, exactly.
    if k == 1 { return Double(pool.filter { $0.map(isCorrect) == true }.count) / Double(pool.count) }
    var generator = SeededGenerator(seed: seed)
    var hits = 0
    for _ in 0..<draws {
      var indices = Array(pool.indices)
      indices.shuffle(using: &generator)
      let subset = indices.prefix(k).sorted().map { pool[$0] }
      if majority(subset).map(isCorrect) == true { hits += 1 }
    }
    return Double(hits) / Double(draws)
  }
}

/// SplitMix64: a small seeded generator for reproducible draws and shuffles.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
  private var state: UInt64

  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
