import BitBudgetKernels

/// SnapKV: a key's importance is the attention the last `window` queries (the observation window)
/// pay it, smoothed over neighbouring positions; the newest `window` tokens are always kept. As
/// kvpress's `SnapKVPress` scores it (with `DecodingPress` for the decode-time schedule), per KV
/// head:
///
/// 1. each window query of each query head of the group attends causally to every key (logits
///    scaled by 1/√D, f32 softmax over the keys it sees, the window's own keys included);
/// 2. the weights on the keys before the window, averaged over the window's queries;
/// 3. average-pooled (width `kernel`, stride 1, zero padding of `kernel/2` that counts in the
///    average, as `avg_pool1d`);
/// 4. averaged over the group's query heads;
/// 5. the top `budget − window` of those keys by score, and the window.
///
/// Kept rows stay in cache order. Cost per head and compression: the window's logits, O(window ·
/// group · L · D) multiply-adds over the keys laid out dimension-major, and as many exponentials.
public struct SnapKVPolicy: EvictionPolicy, Equatable {
  public static let name = "snapkv"
  public static let form = "snapkv:B[,window=32,kernel=7,buffer=128]"
  public static let conformanceSpecs = ["snapkv:40,window=8,buffer=16", "snapkv:64,kernel=5"]

  public var budget: Int
  /// Observation queries, also the newest tokens always kept.
  public var window = 32
  /// Width of the average pooling (odd).
  public var kernel = 7
  /// Decode steps between compressions (kvpress's `compression_interval`; by default 128, or
  /// the window if longer).
  public var buffer = 128

  public init(budget: Int) { self.budget = budget }

  public init(budget: Int, options: inout KVSpecOptions) throws {
    self.init(budget: budget)
    window = try options.int("window", default: window, in: 1...budget - 1)
    kernel = try options.int("kernel", default: kernel, in: 1...255)
    guard kernel % 2 == 1 else { throw options.error("kernel must be odd") }
    buffer = try options.int("buffer", default: max(buffer, window), in: window...1 << 20)
  }

  public var description: String { "snapkv:\(budget),window=\(window),kernel=\(kernel),buffer=\(buffer)" }
  public var queryWindow: Int { window }
  public var interval: Int { buffer }

  public func keptRows(_ request: EvictionRequest) -> [[Int]] {
    guard let queries = request.queries else { preconditionFailure("SnapKV scores with the window's queries") }
    return (0..<request.kvHeads).map { head in
      let score = scores(
        keys: request.keys(head: head), length: request.length, headDim: request.headDim,
        queries: queries + head * request.groupSize * window * request.headDim, groupSize: request.groupSize)
      let candidates = request.length - window
      let ranked = score.indices.sorted { score[$0] != score[$1] ? score[$0] > score[$1] : $0 < $1 }
      return ranked.prefix(budget - window).sorted() + Array(candidates..<request.length)
    }
  }

  /// The score of each key before the window (steps 1–4) for one KV head: `keys` `[length][D]`,
  /// `queries` `[groupSize][window][D]`.
  public func scores(
    keys: UnsafePointer<Float>, length: Int, headDim d: Int, queries: UnsafePointer<Float>, groupSize: Int
  ) -> [Float] {
    let candidates = length - window
    // Keys dimension-major, 16 per vector (zero-padded), so a pass over the dimensions gives 16
    // logits per query without horizontal sums.
    let padded = (length + 15) / 16 * 16
    let columns = UnsafeMutablePointer<Float>.allocate(capacity: d * padded)
    defer { columns.deallocate() }
    columns.initialize(repeating: 0, count: d * padded)
    for t in 0..<length {
      for x in 0..<d { columns[x * padded + t] = keys[t * d + x] }
    }
    let logits = UnsafeMutablePointer<Float>.allocate(capacity: 4 * padded)
    defer { logits.deallocate() }
    let scale = 1 / Float(d).squareRoot()
    var grouped = [Float](repeating: 0, count: candidates)
    var weights = [Float](repeating: 0, count: candidates)
    for g in 0..<groupSize {
      for j in 0..<candidates { weights[j] = 0 }
      var first = 0
      while first < window {
        let count = min(4, window - first)
        Self.logits(
          columns: columns, padded: padded, headDim: d, queries: queries + (g * window + first) * d, count: count,
          into: logits)
        for q in 0..<count {
          // Query `first + q` sits at position candidates + first + q and sees keys up to it.
          let row = logits + q * padded
          let visible = candidates + first + q + 1
          for j in 0..<visible { row[j] *= scale }
          let total = Elementwise.softmaxNumerators(row, count: visible)
          let inverse = 1 / total
          for j in 0..<candidates { weights[j] += row[j] * inverse }
        }
        first += count
      }
      // Mean over the window, then the pooling (zero padding counted: divide by the full width).
      let half = kernel / 2
      let divisor = Float(window) * Float(kernel)
      for j in 0..<candidates {
        var sum: Float = 0
        for t in max(0, j - half)...min(candidates - 1, j + half) { sum += weights[t] }
        grouped[j] += sum / divisor
      }
    }
    return grouped.map { $0 / Float(groupSize) }
  }

  /// Raw logits of `count` (1–4) queries `[count][D]` against every key of `columns`
  /// (`[D][padded]`), into `out` `[count][padded]`.
  private static func logits(
    columns: UnsafePointer<Float>, padded: Int, headDim d: Int, queries: UnsafePointer<Float>, count: Int,
    into out: UnsafeMutablePointer<Float>
  ) {
    // Missing queries repeat the last one (computed, not stored).
    let q = (0..<4).map { queries + min($0, count - 1) * d }
    let (q0, q1, q2, q3) = (q[0], q[1], q[2], q[3])
    var block = 0
    while block < padded {
      var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
      let base = UnsafeRawPointer(columns + block)
      for x in 0..<d {
        let k = base.loadUnaligned(fromByteOffset: x * padded * 4, as: SIMD16<Float>.self)
        a0.addProduct(k, SIMD16(repeating: q0[x]))
        a1.addProduct(k, SIMD16(repeating: q1[x]))
        a2.addProduct(k, SIMD16(repeating: q2[x]))
        a3.addProduct(k, SIMD16(repeating: q3[x]))
      }
      let row = UnsafeMutableRawPointer(out + block)
      row.storeBytes(of: a0, as: SIMD16<Float>.self)
      if count > 1 { row.storeBytes(of: a1, toByteOffset: padded * 4, as: SIMD16<Float>.self) }
      if count > 2 { row.storeBytes(of: a2, toByteOffset: 2 * padded * 4, as: SIMD16<Float>.self) }
      if count > 3 { row.storeBytes(of: a3, toByteOffset: 3 * padded * 4, as: SIMD16<Float>.self) }
      block += 16
    }
  }
}
