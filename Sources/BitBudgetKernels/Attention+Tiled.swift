import Foundation

/// Attention of many query rows at once (prefill), flash-attention style.
///
/// The one-row kernel reads every visible key and value of a head once per query row, so a
/// prefill of T tokens moves ~T²/2 rows of keys and values through memory (at 16k tokens, 8 MiB
/// per head and row for Qwen3-0.6B: bandwidth bound). Here a task owns a tile of up to 32 query
/// vectors — `tileRows` rows × the group's query heads — and walks the cache in blocks of
/// `tileTokens` tokens: each block is read from memory once for the whole tile and stays in L1
/// while all its query vectors use it. Softmax is online: per query vector a running maximum and
/// sum, the outputs rescaled by `e^(old max − new max)` when the maximum grows, so no score
/// matrix longer than one block exists.
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

  /// Per-thread scratch floats of one tile: its queries and outputs (`vectors · headDim` each),
  /// scores of one block, running maxima and sums, per-group query sums for quantized keys, one
  /// unpacked value row and the block's unpacked values.
  static func tileScratchFloats(shape: AttentionShape) -> Int {
    let vectors = tileRows(group: shape.groupSize) * shape.groupSize
    let d = shape.headDim
    return 3 * vectors * d + vectors * tileTokens + 2 * vectors + d + tileTokens * d
  }

  static func attendTiled<W: Widening>(
    _: W.Type, _ queries: UnsafePointer<Float>, _ rows: Int, _ visibleBefore: Int,
    _ segments: UnsafeBufferPointer<KVSegment>, _ shape: AttentionShape,
    _ output: UnsafeMutablePointer<Float>, _ pool: ThreadPool, _ scratch: AttentionScratch
  ) {
    let tileRows = tileRows(group: shape.groupSize)
    let tiles = (rows + tileRows - 1) / tileRows
    pool.parallelFor(tiles * shape.kvHeads) { task, thread in
      // Later tiles see more tokens: handing them out first keeps the end of the loop short.
      let tile = tiles - 1 - task / shape.kvHeads
      let firstRow = tile * tileRows
      attendTile(
        W.self, queries: queries, firstRow: firstRow, rows: min(tileRows, rows - firstRow),
        visibleBefore: visibleBefore, kvHead: task % shape.kvHeads, segments: segments, shape: shape,
        scratch: scratch.buffer(thread: thread), output: output)
    }
  }

  /// Rows `firstRow..<firstRow+rows` of `queries`, the query heads of `kvHead`'s group.
  static func attendTile<W: Widening>(
    _: W.Type, queries: UnsafePointer<Float>, firstRow: Int, rows: Int, visibleBefore: Int, kvHead: Int,
    segments: UnsafeBufferPointer<KVSegment>, shape: AttentionShape, scratch: UnsafeMutablePointer<Float>,
    output: UnsafeMutablePointer<Float>
  ) {
    let group = shape.groupSize
    let d = shape.headDim
    let width = shape.queryHeads * d
    let blockTokens = tileTokens
    let vectors = rows * group
    // Query vector `v` is row `firstRow + v / group`, head `v % group` of the group.
    let tileQueries = scratch
    let outputs = tileQueries + vectors * d
    let scores = outputs + vectors * d
    let maxima = scores + vectors * blockTokens
    let sums = maxima + vectors
    let querySums = sums + vectors
    let valueRow = querySums + vectors * d
    let unpackedValues = valueRow + d
    for r in 0..<rows {
      (tileQueries + r * group * d).update(from: queries + (firstRow + r) * width + kvHead * group * d, count: group * d)
    }
    outputs.update(repeating: 0, count: vectors * d)
    maxima.update(repeating: -.infinity, count: vectors)
    sums.update(repeating: 0, count: vectors)

    let tileVisible = visibleBefore + firstRow + rows  // tokens the tile's last row sees
    var seen = 0
    for segment in segments {
      if seen >= tileVisible { break }
      let count = min(segment.tokens, tileVisible - seen)
      if let quantized = segment.quantized {
        quantizedQuerySums(quantized, queries: tileQueries, heads: vectors, d: d, into: querySums)
      }
      var start = 0
      while start < count {
        let tokens = min(blockTokens, count - start)
        // Logits of every query vector against the block.
        if let quantized = segment.quantized {
          quantizedLogits(
            quantized, kvHead: kvHead, start: start, count: tokens, queries: tileQueries, group: vectors, d: d,
            scale: shape.scale, scores: scores, scoresStride: blockTokens, querySums: querySums)
        } else {
          let keys = segment.keys + (kvHead * d * segment.capacity + start) * W.byteCount
          var v = 0
          while v < vectors {
            let heads = passWidth(vectors - v)
            var t = 0
            while t < tokens {
              let k = keys + t * W.byteCount
              let q = tileQueries + v * d
              let s = scores + v * blockTokens + t
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
        for v in 0..<vectors {
          let visible = min(tokens, visibleBefore + firstRow + v / group + 1 - blockStart)
          onlineSoftmaxStep(
            scores + v * blockTokens, visible: visible, tokens: tokens, maximum: &maxima[v], sum: &sums[v],
            output: outputs + v * d, d: d)
        }
        // Weighted values, in `W`'s lane order.
        if let quantized = segment.quantized {
          for i in 0..<tokens {
            if W.usesPairOrder {
              quantized.dequantizeValue(kvHead: kvHead, token: start + i, into: valueRow)
              PairOrder.permute(valueRow, count: d, into: unpackedValues + i * d)
            } else {
              quantized.dequantizeValue(kvHead: kvHead, token: start + i, into: unpackedValues + i * d)
            }
          }
          accumulateTile(F32Widening.self, vectors, scores, blockTokens, UnsafeRawPointer(unpackedValues), tokens, d, outputs)
        } else {
          let values = segment.values + (kvHead * segment.capacity + start) * d * W.byteCount
          accumulateTile(W.self, vectors, scores, blockTokens, values, tokens, d, outputs)
        }
        start += tokens
      }
      seen += count
    }

    for v in 0..<vectors {
      let o = outputs + v * d
      let inverse = 1 / sums[v]
      for j in 0..<d { o[j] *= inverse }
      let destination = output + (firstRow + v / group) * width + (kvHead * group + v % group) * d
      if W.usesPairOrder {
        PairOrder.restore(o, count: d, into: destination)
      } else {
        destination.update(from: o, count: d)
      }
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
    var lanes = SIMD16<Float>()
    for i in 0..<16 { lanes[i] = Float(i) }
    let limit = SIMD16<Float>(repeating: Float(visible))
    var maxima = SIMD16<Float>(repeating: -.infinity)
    var j = 0
    while j < padded {
      let x = UnsafeRawPointer(s + j).loadUnaligned(as: SIMD16<Float>.self)
      let index = lanes + Float(j)
      maxima.replace(with: x, where: (index .< limit) .& (x .> maxima))
      j += 16
    }
    let newMaximum = Swift.max(maximum, maxima.max())
    let m = SIMD16<Float>(repeating: newMaximum)
    var total = SIMD16<Float>()
    j = 0
    while j < padded {
      let index = lanes + Float(j)
      var e = Elementwise.exp(UnsafeRawPointer(s + j).loadUnaligned(as: SIMD16<Float>.self) - m)
      e.replace(with: 0, where: index .>= limit)
      UnsafeMutableRawPointer(s + j).storeBytes(of: e, as: SIMD16<Float>.self)
      total += e
      j += 16
    }
    // The first block's factor is e^(−∞) = 0 on a zero sum and zero outputs.
    let factor = Foundation.exp(maximum - newMaximum)
    if factor != 1 && sum != 0 {
      for x in 0..<d { output[x] *= factor }
    }
    sum = sum * factor + horizontalSum(total)
    maximum = newMaximum
  }
}
