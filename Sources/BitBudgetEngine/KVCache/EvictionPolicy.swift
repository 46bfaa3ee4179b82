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
/// Cost per head: O(w · L · D · g) for the importance, O(L · D) for the redundancy's column sums,
/// plus, per row, a scan from the newest key back to the last similar one (O(L · D) per row only
/// when a key resembles nothing). Sums are in Double or f32; the references run f32, so exact
/// ties may order differently.
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
          best = max(best, Double(dot(queries + (g * w + i) * d, keys + j * d, d)) * scale)
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
    // 4. Redundancy over all rows. Column sums of the cosine matrix come from linearity,
    // Σᵢ Cᵢⱼ = (Σᵢ k̂ᵢ)·k̂ⱼ, minus the zeroed diagonal and the zeroed "last similar" entry of each
    // row; that entry is found scanning each row from the end, which stops at the first hit.
    // O(L·D) plus the scans, instead of the reference's O(L²·D) matrix.
    let normalized = UnsafeMutablePointer<Float>.allocate(capacity: length * d)
    defer { normalized.deallocate() }
    var total = [Double](repeating: 0, count: d)
    for t in 0..<length {
      let k = keys + t * d
      var sum: Float = 0
      for x in 0..<d { sum += k[x] * k[x] }
      let inverse = 1 / (sum.squareRoot() + 1e-8)
      for x in 0..<d {
        normalized[t * d + x] = k[x] * inverse
        total[x] += Double(normalized[t * d + x])
      }
    }
    var columnSums = (0..<length).map { j -> Double in
      let kj = normalized + j * d
      var dot = 0.0, own = 0.0
      for x in 0..<d {
        dot += total[x] * Double(kj[x])
        own += Double(kj[x]) * Double(kj[x])
      }
      return dot - own
    }
    // The scans read the keys dimension-major, 32 per block (zero-padded), so one pass over the
    // dimensions gives 32 similarities without horizontal sums.
    let padded = (length + 31) / 32 * 32
    let columns = UnsafeMutablePointer<Float>.allocate(capacity: d * padded)
    defer { columns.deallocate() }
    columns.initialize(repeating: 0, count: d * padded)
    for t in 0..<length {
      for x in 0..<d { columns[x * padded + t] = normalized[t * d + x] }
    }
    let threshold = SIMD16<Float>(repeating: parameters.threshold)
    for i in 0..<length {
      let ki = normalized + i * d
      var last = 0
      var block = (length - 1) / 32
      search: while block >= 0 {
        var low = SIMD16<Float>(), high = SIMD16<Float>()
        let base = UnsafeRawPointer(columns + block * 32)
        for x in 0..<d {
          let q = SIMD16<Float>(repeating: ki[x])
          low.addProduct(base.loadUnaligned(fromByteOffset: x * padded * 4, as: SIMD16<Float>.self), q)
          high.addProduct(base.loadUnaligned(fromByteOffset: x * padded * 4 + 64, as: SIMD16<Float>.self), q)
        }
        if any(low .> threshold) || any(high .> threshold) {
          for lane in stride(from: 31, through: 0, by: -1) {
            let j = block * 32 + lane
            guard j < length, j != i else { continue }
            if (lane < 16 ? low[lane] : high[lane - 16]) > threshold[0] {
              last = j
              break search
            }
          }
        }
        block -= 1
      }
      if last != i { columnSums[last] -= Double(dot(ki, normalized + last * d, d)) }
    }
    let means = columnSums.map { $0 / Double(length) }
    let top = means.max() ?? 0
    let exps = means.map { Foundation.exp($0 - top) }
    let denominator = exps.reduce(0, +)
    // 5. Mix.
    let lambda = Double(parameters.lambda)
    return (0..<candidates).map { j -> Double in
      let redundancy = exps[j] / denominator
      return lambda * pooled[j] - (1 - lambda) * redundancy
    }
  }

  /// `a · b` over `count` floats, 16 lanes at a time.
  @inline(__always)
  static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
    var lanes = SIMD16<Float>()
    var x = 0
    while x + 16 <= count {
      let va = UnsafeRawPointer(a + x).loadUnaligned(as: SIMD16<Float>.self)
      let vb = UnsafeRawPointer(b + x).loadUnaligned(as: SIMD16<Float>.self)
      lanes.addProduct(va, vb)
      x += 16
    }
    var sum = lanes.sum()
    while x < count {
      sum += a[x] * b[x]
      x += 1
    }
    return sum
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
