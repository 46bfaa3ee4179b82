import BitBudgetEngine
import Foundation

/// An accuracy measured over a task's questions, with its uncertainty.
///
/// The standard error is that of the mean of the per-question scores (pass@1 or maj@G of each
/// question, in [0, 1]), computed as if two pseudo-questions scoring 0 and 1 were added (the
/// Agresti–Coull adjustment for 0/1 scores), so that a scenario that got every question right (or
/// none) still shows the uncertainty of its few questions.
public struct Accuracy: Sendable, Codable, Equatable {
  public var mean: Double
  public var standardError: Double
  public var questions: Int
  public var samples: Int

  public init(mean: Double, standardError: Double, questions: Int, samples: Int) {
    self.mean = mean
    self.standardError = standardError
    self.questions = questions
    self.samples = samples
  }

  /// From per-question scores in [0, 1]; `samples` is the number of samples behind them.
  public init(questionScores scores: [Double], samples: Int) {
    let n = scores.count
    mean = n == 0 ? 0 : scores.reduce(0, +) / Double(n)
    let adjusted = scores + [0, 1]
    let m = adjusted.reduce(0, +) / Double(adjusted.count)
    let variance = adjusted.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(adjusted.count - 1)
    standardError = (variance / Double(adjusted.count)).squareRoot()
    questions = n
    self.samples = samples
  }

  /// The 95% interval (mean ± 1.96 standard errors, clipped to [0, 1]).
  public var low: Double { max(0, mean - 1.96 * standardError) }
  public var high: Double { min(1, mean + 1.96 * standardError) }

  /// Whether `self` is above `other` by more than the noise of both (a two-sided 95% test of the
  /// difference of independent means).
  public func isSignificantlyAbove(_ other: Accuracy) -> Bool {
    mean - other.mean > 1.96 * (standardError * standardError + other.standardError * other.standardError).squareRoot()
  }
}

/// One evaluated configuration as the analysis sees it: the paper's axes, the memory it needs and
/// the accuracy it reached. Accuracy is pass@1 for G = 1 and maj@G otherwise (the paper's metric
/// for parallel scaling).
public struct ResultPoint: Sendable, Codable, Equatable {
  /// The scenario key in the results store.
  public var key: String
  public var task: String
  /// A label: a preset (`qwen3-4b`) or a model file's name.
  public var model: String
  public var weightBits: Int
  /// `--kv` spec.
  public var kv: String
  /// The thinking budget, or the generation limit without one.
  public var tokenBudget: Int
  /// G.
  public var parallel: Int
  /// Weights + KV (+ scratch in the engine convention), bytes: the x axis.
  public var memoryBytes: Int
  /// Weight bytes — the paper's effective size — when known.
  public var weightsBytes: Int?
  public var accuracy: Accuracy

  public init(
    key: String, task: String, model: String, weightBits: Int, kv: String, tokenBudget: Int, parallel: Int, memoryBytes: Int,
    weightsBytes: Int?, accuracy: Accuracy
  ) {
    self.key = key
    self.task = task
    self.model = model
    self.weightBits = weightBits
    self.kv = kv
    self.tokenBudget = tokenBudget
    self.parallel = parallel
    self.memoryBytes = memoryBytes
    self.weightsBytes = weightsBytes
    self.accuracy = accuracy
  }

  /// `qwen3-4b 8-bit`: the weights a point runs (one curve of the report per such label).
  public var weightsLabel: String { "\(model) \(weightBits)-bit" }

  /// `qwen3-4b 8-bit, full KV, 10000 tokens, G=1`.
  public var description: String {
    "\(weightsLabel), \(KVCacheSpec.shortDescription(of: kv)) KV, \(tokenBudget) tokens, G=\(parallel)"
  }
}
