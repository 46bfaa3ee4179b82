extension Attention {
  /// Adds to `totals` the attention weight each of the `rows` new query rows gives every token it
  /// sees, summed over the query heads of each KV head's group: `totals[kvHead · stride + t] +=
  /// Σ_rows Σ_group softmax(q·Kᵀ·scale)[t]` over the first `visibleBefore + i + 1` tokens of
  /// `segments` for row `i` — what H2O accumulates. The weights are computed again, in f32 (also
  /// when `attend` multiplies in bf16), from the same stored keys. Cost per row and KV head: the
  /// logit half of `attend` (`visible · headDim · groupSize` multiply-adds) and as many
  /// exponentials; the KV heads run in parallel on `pool` when given.
  public static func addWeights(
    queries: UnsafePointer<Float>, rows: Int, visibleBefore: Int, segments: UnsafeBufferPointer<KVSegment>,
    shape: AttentionShape, totals: UnsafeMutablePointer<Float>, stride: Int, pool: ThreadPool?
  ) {
    guard rows > 0, let elementType = (segments.first { $0.quantized == nil } ?? segments.first)?.elementType else { return }
    let run = { (kvHead: Int) in
      switch elementType {
      case .bf16: addWeights(BF16Widening.self, queries, rows, visibleBefore, segments, shape, totals + kvHead * stride, kvHead)
      case .f16: addWeights(F16Widening.self, queries, rows, visibleBefore, segments, shape, totals + kvHead * stride, kvHead)
      case .f32: addWeights(F32Widening.self, queries, rows, visibleBefore, segments, shape, totals + kvHead * stride, kvHead)
      }
    }
    if let pool { pool.parallelFor(shape.kvHeads, run) } else { (0..<shape.kvHeads).forEach(run) }
  }

  private static func addWeights<W: Widening>(
    _: W.Type, _ queries: UnsafePointer<Float>, _ rows: Int, _ visibleBefore: Int,
    _ segments: UnsafeBufferPointer<KVSegment>, _ shape: AttentionShape, _ totals: UnsafeMutablePointer<Float>,
    _ kvHead: Int
  ) {
    let (d, group) = (shape.headDim, shape.groupSize)
    // Logits of the group's query vectors over every visible token, `[group][stride]`, computed
    // for all of them per key load as the tiled kernel does; the queries' per-group sums for
    // quantized keys.
    let stride = visibleBefore + rows
    let logits = UnsafeMutablePointer<Float>.allocate(capacity: group * stride)
    defer { logits.deallocate() }
    let querySums = UnsafeMutablePointer<Float>.allocate(capacity: group * d)
    defer { querySums.deallocate() }
    for row in 0..<rows {
      let visible = visibleBefore + row + 1
      // The group's query heads are adjacent in the row.
      let q = queries + (row * shape.queryHeads + kvHead * group) * d
      var seen = 0
      for segment in segments where seen < visible {
        let count = min(segment.tokens, visible - seen)
        if let quantized = segment.quantized {
          quantizedQuerySums(quantized, queries: q, heads: group, d: d, into: querySums)
          quantizedLogits(
            quantized, kvHead: kvHead, start: 0, count: count, queries: q, group: group, d: d, scale: shape.scale,
            scores: logits + seen, scoresStride: stride, querySums: querySums)
        } else {
          let keys = segment.keys + kvHead * d * segment.capacity * W.byteCount
          var v = 0
          while v < group {
            let heads = passWidth(group - v)
            var t = 0
            while t < count {
              let (k, s, valid) = (keys + t * W.byteCount, logits + v * stride + seen + t, min(32, count - t))
              switch heads {
              case 8: logits8(W.self, k, segment.capacity, q + v * d, d, shape.scale, s, stride, valid)
              case 4: logits4(W.self, k, segment.capacity, q + v * d, d, shape.scale, s, stride, valid)
              case 2: logits2(W.self, k, segment.capacity, q + v * d, d, shape.scale, s, stride, valid)
              default: logits1(W.self, k, segment.capacity, q + v * d, d, shape.scale, s, valid)
              }
              t += 32
            }
            v += heads
          }
        }
        seen += count
      }
      for member in 0..<group {
        let row = logits + member * stride
        let total = Elementwise.softmaxNumerators(row, count: visible)
        Elementwise.add(row, scaledBy: 1 / total, into: totals, count: visible)
      }
    }
  }
}
