import Foundation

/// R-KV (redundancy-aware KV compression for reasoning models): attention importance from the
/// last `window` queries mixed with key redundancy, scored by `RKVScorer`. The defaults are
/// `R1KV`'s with `run_math.py`'s settings.
public struct RKVPolicy: EvictionPolicy, Equatable {
  public static let name = "rkv"
  public static let form = "rkv:B[,window=8,kernel=7,lambda=0.1,threshold=0.5,buffer=128]"
  public static let conformanceSpecs = ["rkv:40,buffer=16", "rkv:64,lambda=0.07"]

  public var budget: Int
  /// Observation queries α, also the newest tokens always kept.
  public var window = 8
  /// Max-pool width for smoothing the attention importance.
  public var kernel = 7
  /// λ: weight of importance against redundancy.
  public var lambda: Float = 0.1
  /// Cosine similarity above which two keys count as redundant.
  public var threshold: Float = 0.5
  /// Decode steps between compressions (`divide_length`; by default 128, or the window if longer).
  public var buffer = 128

  public init(budget: Int) { self.budget = budget }

  public init(budget: Int, options: inout KVSpecOptions) throws {
    self.init(budget: budget)
    window = try options.int("window", default: window, in: 1...budget - 1)
    kernel = try options.int("kernel", default: kernel, in: 1...255)
    guard kernel % 2 == 1 else { throw options.error("kernel must be odd") }
    lambda = try options.float("lambda", default: lambda, in: 0...1)
    threshold = try options.float("threshold", default: threshold, in: -1...1)
    buffer = try options.int("buffer", default: max(buffer, window), in: window...1 << 20)
  }

  public var description: String {
    "rkv:\(budget),window=\(window),kernel=\(kernel),lambda=\(lambda),threshold=\(threshold),buffer=\(buffer)"
  }

  public var queryWindow: Int { window }
  public var interval: Int { buffer }
  /// One `KeyMarks` byte per kept row, so the next similarity scan skips what it already knows.
  public var markBytesPerHead: Int { budget }

  public func keptRows(_ request: EvictionRequest) -> [[Int]] {
    guard let queries = request.queries else { preconditionFailure("R-KV scores with the window's queries") }
    return (0..<request.kvHeads).map { head in
      RKVScorer.keptRows(
        keys: request.keys(head: head), length: request.length, headDim: request.headDim,
        queries: queries + head * request.groupSize * window * request.headDim, groupSize: request.groupSize, parameters: self,
        marks: request.marks.map { $0 + head * request.length },
        isolated: request.isolated.map { $0 + head * request.length })
    }
  }
}

/// What one R-KV compression learned about a kept key, so that the next compression scans only
/// the keys that are new or changed: similarities between keys that both kept their values are
/// the same sums again.
public struct KeyMarks: OptionSet, Sendable {
  public let rawValue: UInt8
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// The key was scored at the last compression and holds the same values now (HQQ quantizes
  /// the dense rows after a compression, which changes them).
  public static let settled = KeyMarks(rawValue: 1)
  /// The key is settled and no key scored at the last compression resembled it.
  public static let isolated = KeyMarks(rawValue: 2)
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
/// when a key resembles nothing; with `marks`, only the similarities whose outcome the last
/// compression did not settle, see `lastSimilar`). Sums are in Double or f32; the references run f32, so exact ties may order
/// differently.
public enum RKVScorer {
  /// `marks` (`length` entries, or nil) and `isolated` (`length` entries, written if given) as in
  /// `EvictionPolicy.keptRows`.
  public static func scores(
    keys: UnsafePointer<Float>, length: Int, headDim: Int, queries: UnsafePointer<Float>, groupSize: Int,
    parameters: RKVPolicy, marks: UnsafePointer<KeyMarks>? = nil, isolated: UnsafeMutablePointer<Bool>? = nil
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
    let total = UnsafeMutablePointer<Double>.allocate(capacity: d)
    defer { total.deallocate() }
    total.initialize(repeating: 0, count: d)
    for t in 0..<length {
      let k = keys + t * d, unit = normalized + t * d
      let inverse = 1 / (dot(k, k, d).squareRoot() + 1e-8)
      for x in 0..<d {
        unit[x] = k[x] * inverse
        total[x] += Double(unit[x])
      }
    }
    var columnSums = (0..<length).map { j -> Double in
      let kj = normalized + j * d
      var dot = SIMD8<Double>(), own = SIMD8<Double>()
      var x = 0
      while x + 8 <= d {
        let k = SIMD8<Double>(UnsafeRawPointer(kj + x).loadUnaligned(as: SIMD8<Float>.self))
        dot.addProduct(UnsafeRawPointer(total + x).loadUnaligned(as: SIMD8<Double>.self), k)
        own.addProduct(k, k)
        x += 8
      }
      var sum = dot.sum() - own.sum()
      while x < d {
        sum += total[x] * Double(kj[x]) - Double(kj[x]) * Double(kj[x])
        x += 1
      }
      return sum
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
    let found = lastSimilar(
      normalized: normalized, columns: columns, padded: padded, length: length, d: d, threshold: parameters.threshold,
      marks: marks)
    if let isolated { for i in 0..<length { isolated[i] = found[i] < 0 } }
    // A row with no similar key zeroes column 0 (the reference's fallback index).
    let last = found.map { max($0, 0) }
    for i in 0..<length where last[i] != i {
      columnSums[last[i]] -= Double(dot(normalized + i * d, normalized + last[i] * d, d))
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

  /// Per row `i`, the last column `j ≠ i` whose cosine similarity exceeds `threshold` (−1 if
  /// none), from unit keys token-major (`normalized`) and dimension-major (`columns`, `padded`
  /// tokens per dimension, zero-padded).
  ///
  /// With `marks`, only the sums whose outcome is not known are computed, each once: a settled
  /// key against another settled key stayed below the threshold last time if either was isolated
  /// (a similarity is symmetric, and bit-identical both ways: the same products, summed in the
  /// same order). So isolated keys meet the unsettled ones (every pair, which answers both
  /// sides), and the other keys meet each other, stopping at each row's first hit. O(L² · D)
  /// when keys resemble nothing and nothing is marked; with marks, O(L · D · (unsettled keys +
  /// keys that had a similar one)) at most, about O(L · D) when each has a recent similar one.
  static func lastSimilar(
    normalized: UnsafePointer<Float>, columns: UnsafePointer<Float>, padded: Int, length: Int, d: Int, threshold: Float,
    marks: UnsafePointer<KeyMarks>? = nil
  ) -> [Int] {
    var last = [Int](repeating: -1, count: length)
    guard let marks else {
      scanFromNewest(
        rows: Array(0..<length), columns: columns, padded: padded, indices: nil, count: length, normalized: normalized,
        d: d, threshold: threshold, into: &last)
      return last
    }
    let all = Array(0..<length)
    let unsettled = all.filter { !marks[$0].contains(.settled) }
    let isolated = all.filter { marks[$0].contains(.isolated) }
    let similar = all.filter { marks[$0] == .settled }
    let notIsolated = all.filter { !marks[$0].contains(.isolated) }
    // Isolated rows × unsettled columns, every pair (its transpose is what the unsettled rows
    // would compute against the isolated keys): the newest hit of each row, and of each column.
    var newestIsolated = [Int](repeating: -1, count: unsettled.count)
    withCompactColumns(unsettled, columns: columns, padded: padded, d: d) { compact, stride in
      newestIsolated.withUnsafeMutableBufferPointer { newest in
        scanFromNewest(
          rows: isolated, columns: compact, padded: stride, indices: unsettled, count: unsettled.count,
          normalized: normalized, d: d, threshold: threshold, into: &last, newestRowOfColumn: newest.baseAddress)
      }
    }
    // Rows that are not isolated against the keys that are not isolated, stopping at the first hit.
    withCompactColumns(notIsolated, columns: columns, padded: padded, d: d) { compact, stride in
      scanFromNewest(
        rows: similar + unsettled, columns: compact, padded: stride, indices: notIsolated, count: notIsolated.count,
        normalized: normalized, d: d, threshold: threshold, into: &last)
    }
    for (c, u) in unsettled.enumerated() { last[u] = max(last[u], newestIsolated[c]) }
    return last
  }

  /// Calls `body` with `subset`'s columns, dimension-major and zero-padded like `columns`, and
  /// their padded count.
  private static func withCompactColumns(
    _ subset: [Int], columns: UnsafePointer<Float>, padded: Int, d: Int,
    _ body: (UnsafePointer<Float>, Int) -> Void
  ) {
    guard !subset.isEmpty else { return }
    let stride = (subset.count + 31) / 32 * 32
    let compact = UnsafeMutablePointer<Float>.allocate(capacity: d * stride)
    defer { compact.deallocate() }
    compact.initialize(repeating: 0, count: d * stride)
    for x in 0..<d {
      for (c, j) in subset.enumerated() { compact[x * stride + c] = columns[x * padded + j] }
    }
    body(compact, stride)
  }

  /// For each of `rows`, the newest of `count` columns (`columns`, dimension-major, `padded` per
  /// dimension; column `c` is key `indices[c]`, or `c`) above `threshold`, other than the row's
  /// own key, into `last`. With `newestRowOfColumn` (`count` entries), every pair is computed
  /// and each column's entry becomes the largest row above the threshold against it.
  ///
  /// Rows go 8 at a time, scanning 32-column blocks from the newest back: a block is loaded once
  /// for 8 rows (the scan of one row streams all `d · padded` floats when no key resembles it —
  /// 1.1 MB at budget 2048, beyond L2), and a tile stops when each of its rows has found its
  /// column. Each similarity is the same ordered sum of FMAs whatever the tile, the rows beside
  /// it or the column's place, so the result depends on none of them.
  private static func scanFromNewest(
    rows list: [Int], columns: UnsafePointer<Float>, padded: Int, indices: [Int]?, count: Int,
    normalized: UnsafePointer<Float>, d: Int, threshold: Float, into last: inout [Int],
    newestRowOfColumn: UnsafeMutablePointer<Int>? = nil
  ) {
    let limit = SIMD16<Float>(repeating: threshold)
    var first = 0
    while first < list.count {
      let rows = min(8, list.count - first)
      // Rows past the tile's last repeat it (computed, not used).
      let row = (0..<8).map { list[first + min($0, rows - 1)] }
      let k = row.map { normalized + $0 * d }
      var pending = rows
      var done = [Bool](repeating: false, count: 8)
      var block = (count - 1) / 32
      while block >= 0 && (pending > 0 || newestRowOfColumn != nil) {
        var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), a5 = SIMD16<Float>(), b5 = SIMD16<Float>()
        var a6 = SIMD16<Float>(), b6 = SIMD16<Float>(), a7 = SIMD16<Float>(), b7 = SIMD16<Float>()
        let base = UnsafeRawPointer(columns + block * 32)
        let (k0, k1, k2, k3, k4, k5, k6, k7) = (k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7])
        for x in 0..<d {
          let low = base.loadUnaligned(fromByteOffset: x * padded * 4, as: SIMD16<Float>.self)
          let high = base.loadUnaligned(fromByteOffset: x * padded * 4 + 64, as: SIMD16<Float>.self)
          let q0 = SIMD16<Float>(repeating: k0[x]), q1 = SIMD16<Float>(repeating: k1[x])
          let q2 = SIMD16<Float>(repeating: k2[x]), q3 = SIMD16<Float>(repeating: k3[x])
          a0.addProduct(low, q0); b0.addProduct(high, q0)
          a1.addProduct(low, q1); b1.addProduct(high, q1)
          a2.addProduct(low, q2); b2.addProduct(high, q2)
          a3.addProduct(low, q3); b3.addProduct(high, q3)
          let q4 = SIMD16<Float>(repeating: k4[x]), q5 = SIMD16<Float>(repeating: k5[x])
          let q6 = SIMD16<Float>(repeating: k6[x]), q7 = SIMD16<Float>(repeating: k7[x])
          a4.addProduct(low, q4); b4.addProduct(high, q4)
          a5.addProduct(low, q5); b5.addProduct(high, q5)
          a6.addProduct(low, q6); b6.addProduct(high, q6)
          a7.addProduct(low, q7); b7.addProduct(high, q7)
        }
        // The newest column of each open row's block above the threshold closes the row.
        func check(_ r: Int, _ low: SIMD16<Float>, _ high: SIMD16<Float>) {
          guard r < rows, !done[r] || newestRowOfColumn != nil, any(low .> limit) || any(high .> limit) else { return }
          for lane in stride(from: 31, through: 0, by: -1) {
            let c = block * 32 + lane
            guard c < count else { continue }
            let j = indices?[c] ?? c
            guard j != row[r], (lane < 16 ? low[lane] : high[lane - 16]) > threshold else { continue }
            if let newestRowOfColumn { newestRowOfColumn[c] = max(newestRowOfColumn[c], row[r]) }
            if !done[r] {
              last[row[r]] = j
              done[r] = true
              pending -= 1
              if newestRowOfColumn == nil { return }
            }
          }
        }
        check(0, a0, b0); check(1, a1, b1); check(2, a2, b2); check(3, a3, b3)
        check(4, a4, b4); check(5, a5, b5); check(6, a6, b6); check(7, a7, b7)
        block -= 1
      }
      first += rows
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
    parameters: RKVPolicy, marks: UnsafePointer<KeyMarks>? = nil, isolated: UnsafeMutablePointer<Bool>? = nil
  ) -> [Int] {
    let score = scores(
      keys: keys, length: length, headDim: headDim, queries: queries, groupSize: groupSize, parameters: parameters,
      marks: marks, isolated: isolated)
    let ranked = score.indices.sorted { score[$0] != score[$1] ? score[$0] > score[$1] : $0 < $1 }
    return Array(ranked.prefix(parameters.budget - parameters.window)) + Array((length - parameters.window)..<length)
  }
}
