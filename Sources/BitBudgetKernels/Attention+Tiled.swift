import Foundation

/// The tiles of the attention kernel.
///
/// Reading the cache once per query row would move ~T²/2 rows of keys and values through memory
/// for a prompt of T tokens (at 16k tokens, 8 MiB per head and row for Qwen3-0.6B: bandwidth
/// bound). Instead a task owns a tile of up to 32 query vectors — `tileRows` rows × the group's
/// query heads — and walks the cache in blocks of `tileTokens` tokens: each block is read from
/// memory once for the whole tile and stays in L1 while all its query vectors use it. Softmax is
/// online: per query vector a running maximum and sum, the outputs rescaled by
/// `e^(old max − new max)` when the maximum grows, so no score row longer than one block exists
/// and scratch does not grow with the context.
///
/// The arithmetic of one query vector does not depend on the tile around it (every pass width
/// runs the same per-lane sequence), so a row gets bit-identical outputs alone, in a prompt, or
/// in a batch of samples sharing their prompt's blocks (`attendSharing`).
///
/// Cost per tile and block: `2 · vectors · tokens · headDim` FMAs (logits 8 vectors × 32 tokens
/// per pass, values 8 vectors × 32 dimensions per pass), `vectors · tokens` exponentials;
/// bytes read: the block's keys and values once.
extension Attention {
  /// Query rows per tile: the tile's query vectors (rows × group heads, at most 32 unless one
  /// group is larger) share every block of keys and values read.
  static func tileRows(group: Int) -> Int { max(1, 32 / group) }

  /// Tokens per block of keys and values (a multiple of 32, the logits pass).
  static let tileTokens = 64

  /// Per-thread scratch floats of one tile (`TileState`): its queries and outputs (`vectors ·
  /// headDim` each), scores of one block, running maxima and sums, per-group query sums for
  /// quantized keys, one value row, a block's unpacked values and their weighted sums, and the
  /// bf16 pairs of the queries and of one block's weights (half a float each).
  static func tileScratchFloats(shape: AttentionShape) -> Int {
    let vectors = tileRows(group: shape.groupSize) * shape.groupSize
    let d = shape.headDim
    let bf16Words = vectors * ((d + 1) / 2) + vectors * tileTokens / 2
    return 4 * vectors * d + vectors * tileTokens + 2 * vectors + d + tileTokens * d + bf16Words
  }

  static func attendTiled<W: Widening>(
    _: W.Type, _ queries: UnsafePointer<Float>, _ rows: Int, _ visibleBefore: Int,
    _ segments: UnsafeBufferPointer<KVSegment>, _ shape: AttentionShape,
    _ output: UnsafeMutablePointer<Float>, _ pool: ThreadPool, _ scratch: AttentionScratch
  ) {
    let group = shape.groupSize
    let d = shape.headDim
    let width = shape.queryHeads * d
    let tileRows = tileRows(group: group)
    let tiles = (rows + tileRows - 1) / tileRows
    let bf16 = usesBF16Products(W.self, scratch: scratch, shape: shape) && segments.contains { $0.quantized == nil }
    pool.parallelFor(tiles * shape.kvHeads) { task, thread in
      // Later tiles see more tokens: handing them out first keeps the end of the loop short.
      let tile = tiles - 1 - task / shape.kvHeads
      let kvHead = task % shape.kvHeads
      let firstRow = tile * tileRows
      let tileState = TileState(scratch: scratch.buffer(thread: thread), vectors: min(tileRows, rows - firstRow) * group, d: d)
      tileState.begin(bf16: bf16) { v in queries + (firstRow + v / group) * width + (kvHead * group + v % group) * d }
      // Vector v (row firstRow + v / group) sees the cache up to its own token.
      walk(
        W.self, tileState, segments, vectors: 0..<tileState.vectors, kvHead: kvHead, shape: shape,
        visibleBase: visibleBefore + firstRow + 1, causal: true, bf16: bf16)
      tileState.finish(W.self) { v in output + (firstRow + v / group) * width + (kvHead * group + v % group) * d }
    }
  }

  /// Attention of one new row for each of several sequences whose caches begin with the same
  /// segments — samples forked from one prompt — reading those segments once for all of them
  /// rather than once per sequence (G samples at depth 8k read 8k tokens' keys and values once per
  /// step, not G times).
  ///
  /// Row `r`'s query is row `rows[r]` of `queries` (`[·, queryHeads·headDim]`), and its output
  /// goes to the same row of `output`; it attends over `shared` followed by its own segments
  /// `own[r]`, which end with its new token. Bit-identical to `attend` of that row over its whole
  /// segment list: a vector's blocks and arithmetic are the same in either walk.
  public static func attendSharing(
    queries: UnsafePointer<Float>, rows: [Int], shared: UnsafeBufferPointer<KVSegment>, own: [[KVSegment]],
    shape: AttentionShape, output: UnsafeMutablePointer<Float>, pool: ThreadPool, scratch: AttentionScratch
  ) {
    precondition(rows.count == own.count, "one list of own segments per row")
    precondition(!shared.isEmpty, "attendSharing needs shared segments (else use attend)")
    // Dense segments share one type (quantized ones report their scale type): the first dense one
    // of any list decides, as in `attend`.
    let dense = shared.first { $0.quantized == nil } ?? own.lazy.flatMap { $0 }.first { $0.quantized == nil }
    guard let elementType = (dense ?? shared.first)?.elementType else { return }
    let sharedTokens = shared.reduce(0) { $0 + $1.tokens }
    precondition(scratch.threadCount >= pool.threadCount, "AttentionScratch has fewer threads than the pool")
    scratch.reserve(scratchFloats(shape: shape))
    switch elementType {
    case .bf16: attendSharing(BF16Widening.self, queries, rows, shared, sharedTokens, own, shape, output, pool, scratch)
    case .f16: attendSharing(F16Widening.self, queries, rows, shared, sharedTokens, own, shape, output, pool, scratch)
    case .f32: attendSharing(F32Widening.self, queries, rows, shared, sharedTokens, own, shape, output, pool, scratch)
    }
  }

  static func attendSharing<W: Widening>(
    _: W.Type, _ queries: UnsafePointer<Float>, _ rows: [Int], _ shared: UnsafeBufferPointer<KVSegment>,
    _ sharedTokens: Int, _ own: [[KVSegment]], _ shape: AttentionShape, _ output: UnsafeMutablePointer<Float>,
    _ pool: ThreadPool, _ scratch: AttentionScratch
  ) {
    let group = shape.groupSize
    let d = shape.headDim
    let width = shape.queryHeads * d
    let tileRows = tileRows(group: group)
    let tiles = (rows.count + tileRows - 1) / tileRows
    let bf16 = usesBF16Products(W.self, scratch: scratch, shape: shape)
      && (shared.contains { $0.quantized == nil } || own.contains { $0.contains { $0.quantized == nil } })
    pool.parallelFor(tiles * shape.kvHeads) { task, thread in
      let kvHead = task % shape.kvHeads
      let firstRow = task / shape.kvHeads * tileRows
      let tileState = TileState(scratch: scratch.buffer(thread: thread), vectors: min(tileRows, rows.count - firstRow) * group, d: d)
      tileState.begin(bf16: bf16) { v in queries + rows[firstRow + v / group] * width + (kvHead * group + v % group) * d }
      walk(
        W.self, tileState, shared, vectors: 0..<tileState.vectors, kvHead: kvHead, shape: shape,
        visibleBase: sharedTokens, causal: false, bf16: bf16)
      for r in 0..<(tileState.vectors / group) {
        own[firstRow + r].withUnsafeBufferPointer { segments in
          walk(
            W.self, tileState, segments, vectors: (r * group)..<((r + 1) * group), kvHead: kvHead, shape: shape,
            visibleBase: segments.reduce(0) { $0 + $1.tokens }, causal: false, bf16: bf16)
        }
      }
      tileState.finish(W.self) { v in output + rows[firstRow + v / group] * width + (kvHead * group + v % group) * d }
    }
  }

  /// The running state of a tile's query vectors, in one thread's scratch: the vectors' queries
  /// and (unnormalized, in `W`'s lane order) outputs, per-vector running maxima and sums, one
  /// block of scores, room for unpacking quantized keys' query sums and values, and the bf16
  /// pairs of the queries (`queryWords`, `(d + 1) / 2` per vector) and of one block's weights
  /// (`weightWords`, `tileTokens / 2` per vector).
  struct TileState {
    let vectors: Int
    let d: Int
    let queries: UnsafeMutablePointer<Float>
    let outputs: UnsafeMutablePointer<Float>
    let scores: UnsafeMutablePointer<Float>
    let maxima: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Float>
    let querySums: UnsafeMutablePointer<Float>
    let valueRow: UnsafeMutablePointer<Float>
    let unpackedValues: UnsafeMutablePointer<Float>
    let blockOutputs: UnsafeMutablePointer<Float>
    let queryWords: UnsafeMutableRawPointer
    let weightWords: UnsafeMutableRawPointer

    @inline(__always)
    init(scratch: UnsafeMutablePointer<Float>, vectors: Int, d: Int) {
      self.vectors = vectors
      self.d = d
      queries = scratch
      outputs = queries + vectors * d
      scores = outputs + vectors * d
      maxima = scores + vectors * tileTokens
      sums = maxima + vectors
      querySums = sums + vectors
      valueRow = querySums + vectors * d
      unpackedValues = valueRow + d
      blockOutputs = unpackedValues + tileTokens * d
      // Raw: the words sit in float scratch whose layout moves with the tile's vector count, so
      // they are stored and loaded untyped (the C kernels read them as 32-bit words).
      queryWords = UnsafeMutableRawPointer(blockOutputs + vectors * d)
      weightWords = queryWords + vectors * ((d + 1) / 2) * 4
    }

    /// Copies each vector's query (`query(v)`, `d` floats; also as bf16 pairs when `bf16`) and
    /// clears outputs, maxima and sums.
    @inline(__always)
    func begin(bf16: Bool, query: (Int) -> UnsafePointer<Float>) {
      for v in 0..<vectors { (queries + v * d).update(from: query(v), count: d) }
      if bf16 { roundQueries() }
      outputs.update(repeating: 0, count: vectors * d)
      maxima.update(repeating: -.infinity, count: vectors)
      sums.update(repeating: 0, count: vectors)
    }

    /// Writes each vector's normalized output, in natural order, to `destination(v)`.
    @inline(__always)
    func finish<W: Widening>(_: W.Type, destination: (Int) -> UnsafeMutablePointer<Float>) {
      for v in 0..<vectors {
        let o = outputs + v * d
        let inverse = 1 / sums[v]
        for j in 0..<d { o[j] *= inverse }
        if W.usesPairOrder {
          PairOrder.restore(o, count: d, into: destination(v))
        } else {
          destination(v).update(from: o, count: d)
        }
      }
    }
  }

  /// Advances the online softmax of `vectors` (of the tile's KV head `kvHead`) over `segments`
  /// in blocks of `tileTokens`: vector `v` sees the first `visibleBase + (v − vectors.lowerBound)
  /// / group` tokens of the list when `causal` (rows of a prompt), else the first `visibleBase`.
  @inline(__always)
  static func walk<W: Widening>(
    _: W.Type, _ state: TileState, _ segments: UnsafeBufferPointer<KVSegment>, vectors: Range<Int>, kvHead: Int,
    shape: AttentionShape, visibleBase: Int, causal: Bool, bf16: Bool
  ) {
    let group = shape.groupSize
    let d = shape.headDim
    let blockTokens = tileTokens
    let first = vectors.lowerBound
    let last = vectors.upperBound - 1
    let visibleLast = causal ? visibleBase + (last - first) / group : visibleBase  // tokens the last vector sees
    var seen = 0
    for segment in segments {
      if seen >= visibleLast { break }
      let count = min(segment.tokens, visibleLast - seen)
      if let quantized = segment.quantized {
        quantizedQuerySums(quantized, queries: state.queries + first * d, heads: vectors.count, d: d, into: state.querySums)
      }
      var start = 0
      while start < count {
        let tokens = min(blockTokens, count - start)
        // Logits of every query vector against the block.
        if bf16 && segment.quantized == nil {
          bf16Logits(state, segment, kvHead: kvHead, start: start, tokens: tokens, vectors: vectors, scale: shape.scale)
        } else if let quantized = segment.quantized {
          quantizedLogits(
            quantized, kvHead: kvHead, start: start, count: tokens, queries: state.queries + first * d,
            group: vectors.count, d: d, scale: shape.scale, scores: state.scores + first * blockTokens,
            scoresStride: blockTokens, querySums: state.querySums)
        } else {
          let keys = segment.keys + (kvHead * d * segment.capacity + start) * W.byteCount
          var v = first
          while v <= last {
            let heads = passWidth(last + 1 - v)
            var t = 0
            while t < tokens {
              let k = keys + t * W.byteCount
              let q = state.queries + v * d
              let s = state.scores + v * blockTokens + t
              let valid = min(32, tokens - t)
              switch heads {
              case 8: logits8(W.self, k, segment.capacity, q, d, shape.scale, s, blockTokens, valid)
              case 4: logits4(W.self, k, segment.capacity, q, d, shape.scale, s, blockTokens, valid)
              case 2: logits2(W.self, k, segment.capacity, q, d, shape.scale, s, blockTokens, valid)
              default: logits1(W.self, k, segment.capacity, q, d, shape.scale, s, valid)
              }
              t += 32
            }
            v += heads
          }
        }
        // Online softmax: scores become weights relative to each vector's running maximum.
        let blockStart = seen + start
        for v in vectors {
          let visible = min(tokens, (causal ? visibleBase + (v - first) / group : visibleBase) - blockStart)
          onlineSoftmaxStep(
            state.scores + v * blockTokens, visible: visible, tokens: tokens, maximum: &state.maxima[v],
            sum: &state.sums[v], output: state.outputs + v * d, d: d)
        }
        // Weighted values, in `W`'s lane order.
        let p = state.scores + first * blockTokens
        let outputs = state.outputs + first * d
        if bf16 && segment.quantized == nil {
          bf16Values(state, segment, kvHead: kvHead, start: start, tokens: tokens, vectors: vectors)
        } else if let quantized = segment.quantized {
          // Unpacked rows are in natural order: summed apart, then added in `W`'s order.
          for i in 0..<tokens {
            quantized.dequantizeValue(kvHead: kvHead, token: start + i, into: state.unpackedValues + i * d)
          }
          let sums = state.blockOutputs + first * d
          sums.update(repeating: 0, count: vectors.count * d)
          accumulateTile(F32Widening.self, vectors.count, p, blockTokens, UnsafeRawPointer(state.unpackedValues), tokens, d, sums)
          for v in 0..<vectors.count {
            if W.usesPairOrder {
              PairOrder.permute(sums + v * d, count: d, into: state.valueRow)
              Elementwise.add(state.valueRow, into: outputs + v * d, count: d)
            } else {
              Elementwise.add(sums + v * d, into: outputs + v * d, count: d)
            }
          }
        } else {
          let values = segment.values + (kvHead * segment.capacity + start) * d * W.byteCount
          accumulateTile(W.self, vectors.count, p, blockTokens, values, tokens, d, outputs)
        }
        start += tokens
      }
      seen += count
    }
  }

  /// Vectors handled by one register-blocked pass: 8, 4, 2 or 1.
  @inline(__always)
  static func passWidth(_ remaining: Int) -> Int {
    remaining >= 8 ? 8 : remaining >= 4 ? 4 : remaining >= 2 ? 2 : 1
  }

  @inline(__always)
  static func accumulateTile<W: Widening>(
    _: W.Type, _ vectors: Int, _ p: UnsafePointer<Float>, _ pStride: Int, _ values: UnsafeRawPointer,
    _ tokens: Int, _ d: Int, _ outputs: UnsafeMutablePointer<Float>
  ) {
    var v = 0
    while v < vectors {
      let heads = passWidth(vectors - v)
      accumulate(W.self, heads, p + v * pStride, pStride, values, tokens, d, outputs + v * d)
      v += heads
    }
  }

  /// One block of online softmax for one query vector: the first `visible` of `tokens` scores in
  /// `s` become `e^(score − m)` with `m` the running maximum including them (later ones, masked by
  /// causality, become 0); `sum` and the `d` outputs, both relative to the previous maximum, are
  /// rescaled to `m`. Reads whole vectors of 16 up to the block's padded length.
  @inline(__always)
  static func onlineSoftmaxStep(
    _ s: UnsafeMutablePointer<Float>, visible: Int, tokens: Int, maximum: inout Float, sum: inout Float,
    output: UnsafeMutablePointer<Float>, d: Int
  ) {
    let padded = (tokens + 15) / 16 * 16
    guard visible > 0 else {
      s.update(repeating: 0, count: padded)
      return
    }
    // Lanes at or past `visible` are masked; whole blocks (the common case) need no mask.
    let masked = visible < padded
    let lanes = SIMD16<Float>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    let limit = SIMD16<Float>(repeating: Float(visible))
    var maxima = SIMD16<Float>(repeating: -.infinity)
    var j = 0
    while j < padded {
      var x = UnsafeRawPointer(s + j).loadUnaligned(as: SIMD16<Float>.self)
      if masked { x.replace(with: -.infinity, where: lanes + Float(j) .>= limit) }
      maxima.replace(with: x, where: x .> maxima)
      j += 16
    }
    let newMaximum = Swift.max(maximum, horizontalMax(maxima))
    let m = SIMD16<Float>(repeating: newMaximum)
    var total = SIMD16<Float>()
    j = 0
    while j < padded {
      var e = Elementwise.exp(UnsafeRawPointer(s + j).loadUnaligned(as: SIMD16<Float>.self) - m)
      if masked { e.replace(with: 0, where: lanes + Float(j) .>= limit) }
      UnsafeMutableRawPointer(s + j).storeBytes(of: e, as: SIMD16<Float>.self)
      total += e
      j += 16
    }
    // The first block's factor is e^(−∞) = 0 on a zero sum and zero outputs.
    if newMaximum != maximum {
      let factor = Foundation.exp(maximum - newMaximum)
      if sum != 0 {
        let f = SIMD16<Float>(repeating: factor)
        var x = 0
        while x + 16 <= d {
          let o = UnsafeMutableRawPointer(output + x)
          o.storeBytes(of: o.loadUnaligned(as: SIMD16<Float>.self) * f, as: SIMD16<Float>.self)
          x += 16
        }
        while x < d {
          output[x] *= factor
          x += 1
        }
      }
      sum *= factor
    }
    sum += horizontalSum(total)
    maximum = newMaximum
  }

  /// The largest of the 16 lanes, as a balanced tree of masked replacements (`SIMD.max()` and
  /// `pointwiseMax` are out-of-line generic calls).
  @inline(__always)
  static func horizontalMax(_ v: SIMD16<Float>) -> Float {
    var a = v.lowHalf
    a.replace(with: v.highHalf, where: v.highHalf .> a)
    var b = a.lowHalf
    b.replace(with: a.highHalf, where: a.highHalf .> b)
    var c = b.lowHalf
    c.replace(with: b.highHalf, where: b.highHalf .> c)
    return Swift.max(c[0], c[1])
  }
}
