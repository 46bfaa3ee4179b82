import Foundation

/// Causal grouped-query attention of new query rows over the tokens of a KV cache,
/// flash-attention style (`Attention+Tiled.swift`).
///
/// Work is split over (tile of query rows, KV head) pairs: a tile holds up to 32 query vectors
/// (rows × the group's query heads — 2 for Qwen3-0.6B, 4 for 4B/8B) and reads each block of 64
/// cached tokens' keys and values once for all of them, with an online softmax. Logits are
/// computed 32 tokens at a time from the dimension-major keys (`KVSegment`): per dimension one key
/// load, one widening and two FMAs per query vector (up to 8 per pass), no horizontal sums.
/// Values are accumulated 32 dimensions at a time in registers for up to 8 vectors. With
/// `AttentionScratch.roundsToBF16`, dense bf16 blocks meet bf16-rounded queries and weights in
/// `vdpbf16ps` instead, two products per lane (`Attention+BF16.swift`). Cost per row
/// and KV head: `2 · visible · headDim · groupSize` FMAs and `visible · groupSize` exponentials;
/// bytes read per tile: the visible keys and values of one head once. Decode (one row) reads
/// every visible token once per step; a prompt of T rows reads it ⌈T / tile rows⌉ times.
public enum Attention {
  /// For each query row `i` in `0..<rows` and each query head: softmax(q·Kᵀ·scale) · V over the
  /// first `visibleBefore + i + 1` tokens of `segments` (the cache holds `visibleBefore` older
  /// tokens followed by this call's `rows` new ones). `queries` and `output` are `[rows,
  /// queryHeads·headDim]`. All segments store the same element type.
  public static func attend(
    queries: UnsafePointer<Float>, rows: Int, visibleBefore: Int,
    segments: UnsafeBufferPointer<KVSegment>, shape: AttentionShape,
    output: UnsafeMutablePointer<Float>, pool: ThreadPool, scratch: AttentionScratch
  ) {
    // Dense segments share one type (quantized ones report their scale type, read separately).
    guard rows > 0, let elementType = (segments.first { $0.quantized == nil } ?? segments.first)?.elementType else { return }
    precondition(scratch.threadCount >= pool.threadCount, "AttentionScratch has fewer threads than the pool")
    scratch.reserve(scratchFloats(shape: shape))
    switch elementType {
    case .bf16: attendTiled(BF16Widening.self, queries, rows, visibleBefore, segments, shape, output, pool, scratch)
    case .f16: attendTiled(F16Widening.self, queries, rows, visibleBefore, segments, shape, output, pool, scratch)
    case .f32: attendTiled(F32Widening.self, queries, rows, visibleBefore, segments, shape, output, pool, scratch)
    }
  }

  /// Per-thread scratch floats of the kernel: a fixed amount for one tile, whatever the context
  /// length (`tileScratchFloats`).
  public static func scratchFloats(shape: AttentionShape) -> Int {
    tileScratchFloats(shape: shape)
  }

  /// The scalar definition, accumulated in `Double`, for tests.
  public static func reference(
    queries: UnsafePointer<Float>, rows: Int, visibleBefore: Int,
    segments: UnsafeBufferPointer<KVSegment>, shape: AttentionShape,
    output: UnsafeMutablePointer<Float>
  ) {
    let d = shape.headDim
    for row in 0..<rows {
      let visible = visibleBefore + row + 1
      for head in 0..<shape.queryHeads {
        let kvHead = head / shape.groupSize
        let q = queries + (row * shape.queryHeads + head) * d
        var keys: [[Double]] = []
        var values: [[Double]] = []
        for segment in segments where keys.count < visible {
          for t in 0..<segment.tokens where keys.count < visible {
            keys.append((0..<d).map { Double(segment.key(kvHead: kvHead, token: t, dimension: $0, headDim: d)) })
            values.append((0..<d).map { Double(segment.value(kvHead: kvHead, token: t, dimension: $0, headDim: d)) })
          }
        }
        let logits = keys.map { k in
          (0..<d).reduce(0.0) { $0 + Double(q[$1]) * k[$1] } * Double(shape.scale)
        }
        let top = logits.max() ?? 0
        let weights = logits.map { Foundation.exp($0 - top) }
        let total = weights.reduce(0, +)
        for j in 0..<d {
          var sum = 0.0
          for (w, v) in zip(weights, values) { sum += w * v[j] }
          output[(row * shape.queryHeads + head) * d + j] = Float(sum / total)
        }
      }
    }
  }

  /// Per query head (`heads` rows of `d` floats) and quantization group of `rows`, the sum of
  /// the head's query over the group's dimensions: `heads · groups` floats for `quantizedLogits`.
  @inline(__always)
  static func quantizedQuerySums(
    _ rows: QuantizedKVRows, queries: UnsafePointer<Float>, heads: Int, d: Int, into querySums: UnsafeMutablePointer<Float>
  ) {
    let groups = rows.groups
    let size = rows.groupSize
    for h in 0..<heads {
      for g in 0..<groups {
        var sum: Float = 0
        for x in (g * size)..<((g + 1) * size) { sum += queries[h * d + x] }
        querySums[h * groups + g] = sum
      }
    }
  }

  /// Logits of `group` query heads (rows of `d` floats) against the quantized keys
  /// `start..<start+count` of `kvHead` (`start` a multiple of 16), 16 tokens per pass: per
  /// dimension one code unpack and one FMA per head into raw sums `Σ q·code` per quantization
  /// group, then `logit += scale ⊙ (sum − zero ⊙ Σq)` with per-token scales and zeros.
  /// `querySums` holds the heads' per-group query sums (`quantizedQuerySums`); scores are written
  /// from `scores[0]` for token `start`.
  @inline(__always)
  static func quantizedLogits(
    _ rows: QuantizedKVRows, kvHead: Int, start: Int, count: Int, queries: UnsafePointer<Float>, group: Int, d: Int,
    scale: Float, scores: UnsafeMutablePointer<Float>, scoresStride: Int, querySums: UnsafePointer<Float>
  ) {
    let groups = rows.groups
    let size = rows.groupSize
    var first = start
    while first < start + count {
      let valid = min(16, start + count - first)
      var h = 0
      while h < group {
        let heads = min(4, group - h)
        if heads <= 2 {
          // One or two heads: two accumulators (the second repeats the first for one head).
          let q0 = queries + h * d
          let q1 = queries + (h + heads - 1) * d
          var l0 = SIMD16<Float>(), l1 = SIMD16<Float>()
          for g in 0..<groups {
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
            for x in (g * size)..<((g + 1) * size) {
              let codes = rows.keyCodes16(kvHead: kvHead, dimension: x, first: first)
              a0.addProduct(codes, SIMD16(repeating: q0[x]))
              a1.addProduct(codes, SIMD16(repeating: q1[x]))
            }
            let (s, z) = rows.keyMeta16(kvHead: kvHead, group: g, first: first)
            let sums = querySums + h * groups + g
            l0 += s * (a0 - z * sums[0])
            l1 += s * (a1 - z * sums[(heads - 1) * groups])
          }
          for k in 0..<heads {
            let out = scores + (h + k) * scoresStride + first - start
            let lanes = (k == 0 ? l0 : l1) * scale
            if valid == 16 {
              UnsafeMutableRawPointer(out).storeBytes(of: lanes, as: SIMD16<Float>.self)
            } else {
              for lane in 0..<valid { out[lane] = lanes[lane] }
            }
          }
          h += heads
          continue
        }
        // Three or four heads; a fourth beyond `heads` repeats the last one (computed, not stored).
        let q0 = queries + h * d
        let q1 = queries + (h + min(1, heads - 1)) * d
        let q2 = queries + (h + min(2, heads - 1)) * d
        let q3 = queries + (h + min(3, heads - 1)) * d
        var l0 = SIMD16<Float>(), l1 = SIMD16<Float>(), l2 = SIMD16<Float>(), l3 = SIMD16<Float>()
        for g in 0..<groups {
          var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
          for x in (g * size)..<((g + 1) * size) {
            let codes = rows.keyCodes16(kvHead: kvHead, dimension: x, first: first)
            a0.addProduct(codes, SIMD16(repeating: q0[x]))
            a1.addProduct(codes, SIMD16(repeating: q1[x]))
            a2.addProduct(codes, SIMD16(repeating: q2[x]))
            a3.addProduct(codes, SIMD16(repeating: q3[x]))
          }
          let (s, z) = rows.keyMeta16(kvHead: kvHead, group: g, first: first)
          let sums = querySums + h * groups + g
          l0 += s * (a0 - z * sums[0])
          l1 += s * (a1 - z * sums[min(1, heads - 1) * groups])
          l2 += s * (a2 - z * sums[min(2, heads - 1) * groups])
          l3 += s * (a3 - z * sums[min(3, heads - 1) * groups])
        }
        for k in 0..<heads {
          let out = scores + (h + k) * scoresStride + first - start
          let lanes = (k == 0 ? l0 : k == 1 ? l1 : k == 2 ? l2 : l3) * scale
          if valid == 16 {
            UnsafeMutableRawPointer(out).storeBytes(of: lanes, as: SIMD16<Float>.self)
          } else {
            for lane in 0..<valid { out[lane] = lanes[lane] }
          }
        }
        h += heads
      }
      first += 16
    }
  }

  // MARK: Logits, 32 tokens at a time

  /// Writes the first `valid` of the 32 lanes (in `W`'s load order) to `s` in token order.
  @inline(__always)
  static func store<W: Widening>(
    _: W.Type, _ a: SIMD16<Float>, _ b: SIMD16<Float>, _ s: UnsafeMutablePointer<Float>, _ valid: Int
  ) {
    if valid == 32 && !W.usesPairOrder {
      UnsafeMutableRawPointer(s).storeBytes(of: a, as: SIMD16<Float>.self)
      UnsafeMutableRawPointer(s).storeBytes(of: b, toByteOffset: 64, as: SIMD16<Float>.self)
      return
    }
    for j in 0..<16 {
      let (first, second) = W.usesPairOrder ? (2 * j, 2 * j + 1) : (j, 16 + j)
      if first < valid { s[first] = a[j] }
      if second < valid { s[second] = b[j] }
    }
  }

  @inline(__always)
  static func logits1<W: Widening>(
    _: W.Type, _ k: UnsafeRawPointer, _ capacity: Int, _ q: UnsafePointer<Float>, _ d: Int,
    _ scale: Float, _ s: UnsafeMutablePointer<Float>, _ valid: Int
  ) {
    var a0 = SIMD16<Float>(), b0 = SIMD16<Float>()
    for dim in 0..<d {
      let (ka, kb) = W.load32(k, dim * capacity)
      let q0 = SIMD16<Float>(repeating: q[dim])
      a0.addProduct(ka, q0); b0.addProduct(kb, q0)
    }
    store(W.self, a0 * scale, b0 * scale, s, valid)
  }

  @inline(__always)
  static func logits2<W: Widening>(
    _: W.Type, _ k: UnsafeRawPointer, _ capacity: Int, _ q: UnsafePointer<Float>, _ d: Int,
    _ scale: Float, _ s: UnsafeMutablePointer<Float>, _ stride: Int, _ valid: Int
  ) {
    var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
    let q1p = q + d
    for dim in 0..<d {
      let (ka, kb) = W.load32(k, dim * capacity)
      let q0 = SIMD16<Float>(repeating: q[dim]), q1 = SIMD16<Float>(repeating: q1p[dim])
      a0.addProduct(ka, q0); b0.addProduct(kb, q0)
      a1.addProduct(ka, q1); b1.addProduct(kb, q1)
    }
    store(W.self, a0 * scale, b0 * scale, s, valid)
    store(W.self, a1 * scale, b1 * scale, s + stride, valid)
  }

  @inline(__always)
  static func logits4<W: Widening>(
    _: W.Type, _ k: UnsafeRawPointer, _ capacity: Int, _ q: UnsafePointer<Float>, _ d: Int,
    _ scale: Float, _ s: UnsafeMutablePointer<Float>, _ stride: Int, _ valid: Int
  ) {
    var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
    var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
    let q1p = q + d, q2p = q + 2 * d, q3p = q + 3 * d
    for dim in 0..<d {
      let (ka, kb) = W.load32(k, dim * capacity)
      let q0 = SIMD16<Float>(repeating: q[dim]), q1 = SIMD16<Float>(repeating: q1p[dim])
      let q2 = SIMD16<Float>(repeating: q2p[dim]), q3 = SIMD16<Float>(repeating: q3p[dim])
      a0.addProduct(ka, q0); b0.addProduct(kb, q0)
      a1.addProduct(ka, q1); b1.addProduct(kb, q1)
      a2.addProduct(ka, q2); b2.addProduct(kb, q2)
      a3.addProduct(ka, q3); b3.addProduct(kb, q3)
    }
    store(W.self, a0 * scale, b0 * scale, s, valid)
    store(W.self, a1 * scale, b1 * scale, s + stride, valid)
    store(W.self, a2 * scale, b2 * scale, s + 2 * stride, valid)
    store(W.self, a3 * scale, b3 * scale, s + 3 * stride, valid)
  }

  /// Eight query heads: 16 accumulators, one widened key load per 16 FMAs (the tiled kernel's
  /// query vectors).
  @inline(__always)
  static func logits8<W: Widening>(
    _: W.Type, _ k: UnsafeRawPointer, _ capacity: Int, _ q: UnsafePointer<Float>, _ d: Int,
    _ scale: Float, _ s: UnsafeMutablePointer<Float>, _ stride: Int, _ valid: Int
  ) {
    var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
    var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
    var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), a5 = SIMD16<Float>(), b5 = SIMD16<Float>()
    var a6 = SIMD16<Float>(), b6 = SIMD16<Float>(), a7 = SIMD16<Float>(), b7 = SIMD16<Float>()
    for dim in 0..<d {
      let (ka, kb) = W.load32(k, dim * capacity)
      let q0 = SIMD16<Float>(repeating: q[dim]), q1 = SIMD16<Float>(repeating: q[d + dim])
      let q2 = SIMD16<Float>(repeating: q[2 * d + dim]), q3 = SIMD16<Float>(repeating: q[3 * d + dim])
      a0.addProduct(ka, q0); b0.addProduct(kb, q0)
      a1.addProduct(ka, q1); b1.addProduct(kb, q1)
      a2.addProduct(ka, q2); b2.addProduct(kb, q2)
      a3.addProduct(ka, q3); b3.addProduct(kb, q3)
      let q4 = SIMD16<Float>(repeating: q[4 * d + dim]), q5 = SIMD16<Float>(repeating: q[5 * d + dim])
      let q6 = SIMD16<Float>(repeating: q[6 * d + dim]), q7 = SIMD16<Float>(repeating: q[7 * d + dim])
      a4.addProduct(ka, q4); b4.addProduct(kb, q4)
      a5.addProduct(ka, q5); b5.addProduct(kb, q5)
      a6.addProduct(ka, q6); b6.addProduct(kb, q6)
      a7.addProduct(ka, q7); b7.addProduct(kb, q7)
    }
    store(W.self, a0 * scale, b0 * scale, s, valid)
    store(W.self, a1 * scale, b1 * scale, s + stride, valid)
    store(W.self, a2 * scale, b2 * scale, s + 2 * stride, valid)
    store(W.self, a3 * scale, b3 * scale, s + 3 * stride, valid)
    store(W.self, a4 * scale, b4 * scale, s + 4 * stride, valid)
    store(W.self, a5 * scale, b5 * scale, s + 5 * stride, valid)
    store(W.self, a6 * scale, b6 * scale, s + 6 * stride, valid)
    store(W.self, a7 * scale, b7 * scale, s + 7 * stride, valid)
  }

  // MARK: Values

  /// `out_h += Σ_t p_h[t] · v_t` for `heads` (1, 2, 4 or 8) heads over `count` value rows. Outputs of
  /// whole 32-dimension blocks are kept in `W`'s load order (restored by the caller); a partial
  /// last block is accumulated in natural order.
  @inline(__always)
  static func accumulate<W: Widening>(
    _: W.Type, _ heads: Int, _ p: UnsafePointer<Float>, _ pStride: Int, _ values: UnsafeRawPointer,
    _ count: Int, _ d: Int, _ out: UnsafeMutablePointer<Float>
  ) {
    let blocks = d / 32 * 32
    var i = 0
    while i < blocks {
      switch heads {
      case 8: accumulate8(W.self, p, pStride, values, count, d, i, out)
      case 4: accumulate4(W.self, p, pStride, values, count, d, i, out)
      case 2: accumulate2(W.self, p, pStride, values, count, d, i, out)
      default: accumulate1(W.self, p, values, count, d, i, out)
      }
      i += 32
    }
    if blocks < d {
      for h in 0..<heads {
        let ph = p + h * pStride
        let o = out + h * d
        for t in 0..<count {
          let weight = ph[t]
          for j in blocks..<d { o[j] += weight * W.load1(values, t * d + j) }
        }
      }
    }
  }

  @inline(__always)
  static func load2(_ o: UnsafeMutablePointer<Float>) -> (SIMD16<Float>, SIMD16<Float>) {
    let raw = UnsafeRawPointer(o)
    return (raw.loadUnaligned(as: SIMD16<Float>.self), raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
  }

  @inline(__always)
  static func store2(_ o: UnsafeMutablePointer<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) {
    UnsafeMutableRawPointer(o).storeBytes(of: a, as: SIMD16<Float>.self)
    UnsafeMutableRawPointer(o).storeBytes(of: b, toByteOffset: 64, as: SIMD16<Float>.self)
  }

  @inline(__always)
  static func accumulate1<W: Widening>(
    _: W.Type, _ p: UnsafePointer<Float>, _ values: UnsafeRawPointer, _ count: Int, _ d: Int,
    _ i: Int, _ out: UnsafeMutablePointer<Float>
  ) {
    var (a0, b0) = load2(out + i)
    for t in 0..<count {
      let (va, vb) = W.load32(values, t * d + i)
      let w0 = SIMD16<Float>(repeating: p[t])
      a0.addProduct(va, w0); b0.addProduct(vb, w0)
    }
    store2(out + i, a0, b0)
  }

  @inline(__always)
  static func accumulate2<W: Widening>(
    _: W.Type, _ p: UnsafePointer<Float>, _ pStride: Int, _ values: UnsafeRawPointer, _ count: Int,
    _ d: Int, _ i: Int, _ out: UnsafeMutablePointer<Float>
  ) {
    var (a0, b0) = load2(out + i), (a1, b1) = load2(out + d + i)
    let p1 = p + pStride
    for t in 0..<count {
      let (va, vb) = W.load32(values, t * d + i)
      let w0 = SIMD16<Float>(repeating: p[t]), w1 = SIMD16<Float>(repeating: p1[t])
      a0.addProduct(va, w0); b0.addProduct(vb, w0)
      a1.addProduct(va, w1); b1.addProduct(vb, w1)
    }
    store2(out + i, a0, b0)
    store2(out + d + i, a1, b1)
  }

  @inline(__always)
  static func accumulate4<W: Widening>(
    _: W.Type, _ p: UnsafePointer<Float>, _ pStride: Int, _ values: UnsafeRawPointer, _ count: Int,
    _ d: Int, _ i: Int, _ out: UnsafeMutablePointer<Float>
  ) {
    var (a0, b0) = load2(out + i), (a1, b1) = load2(out + d + i)
    var (a2, b2) = load2(out + 2 * d + i), (a3, b3) = load2(out + 3 * d + i)
    let p1 = p + pStride, p2 = p + 2 * pStride, p3 = p + 3 * pStride
    for t in 0..<count {
      let (va, vb) = W.load32(values, t * d + i)
      let w0 = SIMD16<Float>(repeating: p[t]), w1 = SIMD16<Float>(repeating: p1[t])
      let w2 = SIMD16<Float>(repeating: p2[t]), w3 = SIMD16<Float>(repeating: p3[t])
      a0.addProduct(va, w0); b0.addProduct(vb, w0)
      a1.addProduct(va, w1); b1.addProduct(vb, w1)
      a2.addProduct(va, w2); b2.addProduct(vb, w2)
      a3.addProduct(va, w3); b3.addProduct(vb, w3)
    }
    store2(out + i, a0, b0)
    store2(out + d + i, a1, b1)
    store2(out + 2 * d + i, a2, b2)
    store2(out + 3 * d + i, a3, b3)
  }

  @inline(__always)
  static func accumulate8<W: Widening>(
    _: W.Type, _ p: UnsafePointer<Float>, _ pStride: Int, _ values: UnsafeRawPointer, _ count: Int,
    _ d: Int, _ i: Int, _ out: UnsafeMutablePointer<Float>
  ) {
    var (a0, b0) = load2(out + i), (a1, b1) = load2(out + d + i)
    var (a2, b2) = load2(out + 2 * d + i), (a3, b3) = load2(out + 3 * d + i)
    var (a4, b4) = load2(out + 4 * d + i), (a5, b5) = load2(out + 5 * d + i)
    var (a6, b6) = load2(out + 6 * d + i), (a7, b7) = load2(out + 7 * d + i)
    for t in 0..<count {
      let (va, vb) = W.load32(values, t * d + i)
      let w0 = SIMD16<Float>(repeating: p[t]), w1 = SIMD16<Float>(repeating: p[pStride + t])
      let w2 = SIMD16<Float>(repeating: p[2 * pStride + t]), w3 = SIMD16<Float>(repeating: p[3 * pStride + t])
      a0.addProduct(va, w0); b0.addProduct(vb, w0)
      a1.addProduct(va, w1); b1.addProduct(vb, w1)
      a2.addProduct(va, w2); b2.addProduct(vb, w2)
      a3.addProduct(va, w3); b3.addProduct(vb, w3)
      let w4 = SIMD16<Float>(repeating: p[4 * pStride + t]), w5 = SIMD16<Float>(repeating: p[5 * pStride + t])
      let w6 = SIMD16<Float>(repeating: p[6 * pStride + t]), w7 = SIMD16<Float>(repeating: p[7 * pStride + t])
      a4.addProduct(va, w4); b4.addProduct(vb, w4)
      a5.addProduct(va, w5); b5.addProduct(vb, w5)
      a6.addProduct(va, w6); b6.addProduct(vb, w6)
      a7.addProduct(va, w7); b7.addProduct(vb, w7)
    }
    store2(out + i, a0, b0)
    store2(out + d + i, a1, b1)
    store2(out + 2 * d + i, a2, b2)
    store2(out + 3 * d + i, a3, b3)
    store2(out + 4 * d + i, a4, b4)
    store2(out + 5 * d + i, a5, b5)
    store2(out + 6 * d + i, a6, b6)
    store2(out + 7 * d + i, a7, b7)
  }
}
