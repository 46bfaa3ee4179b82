import Foundation

/// Which tokens an evicting KV cache keeps when it compresses a layer. Keys and values keep their
/// absolute positions (RoPE was applied before they were stored), so a policy only chooses and
/// orders rows; the cache moves them.
public enum EvictionPolicy: Sendable, Equatable {
  /// StreamingLLM as R-KV's codebase runs it: the first `sinks` tokens and the newest
  /// `budget − sinks`, the same for every head.
  case streaming(budget: Int, sinks: Int)
  /// R-KV: attention importance from the last `window` queries mixed with key redundancy.
  case rkv(RKVParameters)

  /// Tokens per KV head right after a compression.
  public var budget: Int {
    switch self {
    case .streaming(let budget, _): budget
    case .rkv(let parameters): parameters.budget
    }
  }

  /// Queries per layer the policy needs to remember (the R-KV observation window).
  public var queryWindow: Int {
    switch self {
    case .streaming: 0
    case .rkv(let parameters): parameters.window
    }
  }

  /// Decode steps between compressions (R-KV's `divide_length`, also used for StreamingLLM).
  public var interval: Int {
    switch self {
    case .streaming: 128
    case .rkv(let parameters): parameters.buffer
    }
  }

  /// The rows to keep for each KV head, in the order the compressed cache stores them, or nil
  /// when the layer holds fewer than `budget` tokens (nothing changes, as in the references).
  ///
  /// - `keys`: `[kvHeads][length][headDim]`, in cache order.
  /// - `queries`: the last `queryWindow` queries, `[queryHeads][window][headDim]` (R-KV only).
  public func keptRows(
    keys: UnsafePointer<Float>, length: Int, kvHeads: Int, headDim: Int,
    queries: UnsafePointer<Float>?, queryHeads: Int
  ) -> [[Int]]? {
    guard length >= budget else { return nil }
    switch self {
    case .streaming(let budget, let sinks):
      let kept = Array(0..<sinks) + Array((length - (budget - sinks))..<length)
      return Array(repeating: kept, count: kvHeads)
    case .rkv(let parameters):
      guard let queries else { return nil }
      return (0..<kvHeads).map { head in
        RKVScorer.keptRows(
          keys: keys + head * length * headDim, length: length, headDim: headDim,
          queries: queries + head * (queryHeads / kvHeads) * parameters.window * headDim,
          groupSize: queryHeads / kvHeads, parameters: parameters)
      }
    }
  }
}

/// R-KV's hyperparameters (`R1KV` with `run_math.py`'s defaults).
public struct RKVParameters: Sendable, Equatable {
  public var budget: Int
  /// Observation queries α, also the newest tokens always kept.
  public var window = 8
  /// Max-pool width for smoothing the attention importance.
  public var kernel = 7
  /// λ: weight of importance against redundancy.
  public var lambda: Float = 0.1
  /// Cosine similarity above which two keys count as redundant.
  public var threshold: Float = 0.5
  /// Decode steps between compressions (`divide_length`).
  public var buffer = 128

  public init(budget: Int) { self.budget = budget }
}

/// The R-KV score of one KV head and the rows it keeps (`R1KV._compute_scores` and `update_kv`,
/// with `cal_similarity` and `compute_attention_scores` of the R-KV repository):
///
/// 1. logits of the `window` queries of each query head of the group against every key, scaled
///    by 1/√D, max over the group;
/// 2. importance: per query, softmax over the non-window keys; mean over the queries;
/// 3. max-pool (kernel `k`, stride 1, padding k/2);
/// 4. redundancy: cosine similarities of all keys with the diagonal zeroed; per row, the last
///    column above the threshold (column 0 if none) is zeroed too; mean over rows; softmax;
/// 5. score = λ · importance − (1 − λ) · redundancy over the non-window keys; keep the top
///    `budget − window` by score (descending), then the window in order.
///
/// Cost per head: O(L² · D) for the similarities (L = rows held, ≤ budget + buffer).
/// Accumulations are in Double; the references run f32, so exact ties may order differently.
public enum RKVScorer {
  public static func scores(
    keys: UnsafePointer<Float>, length: Int, headDim: Int, queries: UnsafePointer<Float>, groupSize: Int,
    parameters: RKVParameters
  ) -> [Double] {
    let w = parameters.window
    let candidates = length - w
    let d = headDim
    let scale = 1 / Double(d).squareRoot()
    // 1–2. Importance.
    var importance = [Double](repeating: 0, count: candidates)
    var logits = [Double](repeating: 0, count: candidates)
    for i in 0..<w {
      for j in 0..<candidates {
        var best = -Double.infinity
        for g in 0..<groupSize {
          let q = queries + (g * w + i) * d
          let k = keys + j * d
          var dot = 0.0
          for x in 0..<d { dot += Double(q[x]) * Double(k[x]) }
          best = max(best, dot * scale)
        }
        logits[j] = best
      }
      let top = logits.max() ?? 0
      var total = 0.0
      for j in 0..<candidates {
        logits[j] = Foundation.exp(logits[j] - top)
        total += logits[j]
      }
      for j in 0..<candidates { importance[j] += logits[j] / total / Double(w) }
    }
    // 3. Max-pool.
    let half = parameters.kernel / 2
    let pooled = (0..<candidates).map { j in
      importance[max(0, j - half)...min(candidates - 1, j + half)].max() ?? 0
    }
    // 4. Redundancy over all rows.
    let norms = (0..<length).map { t -> Double in
      let k = keys + t * d
      var sum = 0.0
      for x in 0..<d { sum += Double(k[x]) * Double(k[x]) }
      return sum.squareRoot() + 1e-8
    }
    var columnSums = [Double](repeating: 0, count: length)
    var row = [Double](repeating: 0, count: length)
    for i in 0..<length {
      let ki = keys + i * d
      var last = 0
      for j in 0..<length {
        if j == i {
          row[j] = 0
          continue
        }
        let kj = keys + j * d
        var dot = 0.0
        for x in 0..<d { dot += Double(ki[x]) * Double(kj[x]) }
        row[j] = dot / (norms[i] * norms[j])
        if row[j] > Double(parameters.threshold) { last = j }
      }
      row[last] = 0
      for j in 0..<length { columnSums[j] += row[j] }
    }
    let means = columnSums.map { $0 / Double(length) }
    let top = means.max() ?? 0
    let exps = means.map { Foundation.exp($0 - top) }
    let total = exps.reduce(0, +)
    // 5. Mix.
    let lambda = Double(parameters.lambda)
    return (0..<candidates).map { j in lambda * pooled[j] - (1 - lambda) * exps[j] / total }
  }

  /// Rows to keep, in the reference's order: top `budget − window` scores descending (ties to the
  /// lower row), then the window rows in order.
  public static func keptRows(
    keys: UnsafePointer<Float>, length: Int, headDim: Int, queries: UnsafePointer<Float>, groupSize: Int,
    parameters: RKVParameters
  ) -> [Int] {
    let score = scores(keys: keys, length: length, headDim: headDim, queries: queries, groupSize: groupSize, parameters: parameters)
    let ranked = score.indices.sorted { score[$0] != score[$1] ? score[$0] > score[$1] : $0 < $1 }
    return Array(ranked.prefix(parameters.budget - parameters.window)) + Array((length - parameters.window)..<length)
  }
}
