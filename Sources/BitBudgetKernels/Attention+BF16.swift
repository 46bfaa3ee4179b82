#if canImport(CAVX512BF16) && canImport(CAVX512VNNI)
internal import _Builtin_intrinsics.intel
internal import CBF16

/// The bf16 products of the attention tile (`AttentionScratch.roundsToBF16`): dense bf16 keys and
/// values meet bf16-rounded queries and softmax weights in `vdpbf16ps` (two products per lane,
/// f32 sums; the micro-kernels are in `CBF16Attention.h`). The online softmax itself — maxima,
/// exponentials, sums, rescaling — stays f32, and quantized segments keep their f32 kernels (with
/// the rounded queries), so only the two roundings (and the instruction's flushing of subnormal
/// products to zero) separate this from the f32 tile. Calls whose segments are all quantized keep
/// unrounded queries.
///
/// Prefill attention at 16k tokens is compute bound (per tile and block: 2 · vectors · tokens ·
/// headDim multiply-adds against 4 · tokens · headDim bytes of bf16 keys and values read); this
/// doubles the multiply-adds per instruction. Per vector the lane arithmetic does not depend on
/// the pass width, so rows still get bit-identical outputs alone, in a prompt or in a shared batch.
extension Attention {
  /// Whether a call whose dense segments store `W` takes the bf16 products.
  @inline(__always)
  static func usesBF16Products<W: Widening>(_: W.Type, scratch: AttentionScratch, shape: AttentionShape) -> Bool {
    scratch.roundsToBF16 && W.self == BF16Widening.self && shape.headDim % 32 == 0
  }

  /// Scores of `vectors` against tokens `start..<start+tokens` of a dense bf16 segment, into
  /// `state.scores` (one block row per vector; lanes up to the next multiple of 32 written).
  @inline(__always)
  static func bf16Logits(
    _ state: TileState, _ segment: KVSegment, kvHead: Int, start: Int, tokens: Int, vectors: Range<Int>, scale: Float
  ) {
    let d = state.d
    let pairs = d / 2
    let keys = (segment.keys + (kvHead * d * segment.capacity + start) * 2).assumingMemoryBound(to: UInt16.self)
    var v = vectors.lowerBound
    while v < vectors.upperBound {
      let heads = passWidth(vectors.upperBound - v)
      let q = UnsafePointer((state.queryWords + v * pairs * 4).assumingMemoryBound(to: UInt32.self))
      let s = state.scores + v * tileTokens
      var t = 0
      while t < tokens {
        switch heads {
        case 8: bitbudget_bf16_logits8(keys + t, segment.capacity, q, pairs, pairs, scale, s + t, tileTokens)
        case 4: bitbudget_bf16_logits4(keys + t, segment.capacity, q, pairs, pairs, scale, s + t, tileTokens)
        case 2: bitbudget_bf16_logits2(keys + t, segment.capacity, q, pairs, pairs, scale, s + t, tileTokens)
        default: bitbudget_bf16_logits1(keys + t, segment.capacity, q, pairs, pairs, scale, s + t, tileTokens)
        }
        t += 32
      }
      v += heads
    }
  }

  /// Adds the weighted values of tokens `start..<start+tokens` to the vectors' outputs (pair
  /// order, as the f32 tile keeps bf16 outputs), the weights — the block's softmax numerators in
  /// `state.scores` — rounded to bf16 first.
  @inline(__always)
  static func bf16Values(
    _ state: TileState, _ segment: KVSegment, kvHead: Int, start: Int, tokens: Int, vectors: Range<Int>
  ) {
    let d = state.d
    let wordsPerVector = tileTokens / 2
    for v in vectors {
      let scores = state.scores + v * tileTokens
      let words = state.weightWords + v * wordsPerVector * 4
      var c = 0
      while c < tokens {
        let low = UnsafeRawPointer(scores + c).loadUnaligned(as: SIMD16<Float>.self)
        let high = UnsafeRawPointer(scores + c + 16).loadUnaligned(as: SIMD16<Float>.self)
        (words + c / 2 * 4).storeBytes(of: bitbudget_bf16_round(low, high), as: __m512i.self)
        c += 32
      }
    }
    let values = (segment.values + (kvHead * segment.capacity + start) * d * 2).assumingMemoryBound(to: UInt16.self)
    var v = vectors.lowerBound
    while v < vectors.upperBound {
      let heads = passWidth(vectors.upperBound - v)
      let w = UnsafePointer((state.weightWords + v * wordsPerVector * 4).assumingMemoryBound(to: UInt32.self))
      let o = state.outputs + v * d
      switch heads {
      case 8: bitbudget_bf16_values8(w, wordsPerVector, values, tokens, d, o)
      case 4: bitbudget_bf16_values4(w, wordsPerVector, values, tokens, d, o)
      case 2: bitbudget_bf16_values2(w, wordsPerVector, values, tokens, d, o)
      default: bitbudget_bf16_values1(w, wordsPerVector, values, tokens, d, o)
      }
      v += heads
    }
  }
}

extension Attention.TileState {
  /// Rounds each vector's query (`d` a multiple of 32) to bf16 pairs in `queryWords` — word `p`
  /// holds dimensions `2p` (low half) and `2p + 1`, nearest with ties to even — and puts the
  /// rounded values back in `queries`, so quantized segments' f32 kernels multiply the same query.
  @inline(__always)
  func roundQueries() {
    for v in 0..<vectors {
      let q = queries + v * d
      let words = queryWords + v * (d / 2) * 4
      var c = 0
      while c < d {
        let low = UnsafeRawPointer(q + c).loadUnaligned(as: SIMD16<Float>.self)
        let high = UnsafeRawPointer(q + c + 16).loadUnaligned(as: SIMD16<Float>.self)
        (words + c * 2).storeBytes(of: bitbudget_bf16_round(low, high), as: __m512i.self)
        c += 32
      }
      for x in 0..<d { q[x] = bf16ToFloat(words.loadUnaligned(fromByteOffset: 2 * x, as: UInt16.self)) }
    }
  }
}
#else
// Builds without AVX512-BF16 never take the bf16 products; these keep the tile's calls compiling.
extension Attention {
  @inline(__always)
  static func usesBF16Products<W: Widening>(_: W.Type, scratch: AttentionScratch, shape: AttentionShape) -> Bool {
    false
  }

  static func bf16Logits(
    _ state: TileState, _ segment: KVSegment, kvHead: Int, start: Int, tokens: Int, vectors: Range<Int>, scale: Float
  ) {
    preconditionFailure("bf16 products are not in this build")
  }

  static func bf16Values(
    _ state: TileState, _ segment: KVSegment, kvHead: Int, start: Int, tokens: Int, vectors: Range<Int>
  ) {
    preconditionFailure("bf16 products are not in this build")
  }
}

extension Attention.TileState {
  func roundQueries() {
    preconditionFailure("bf16 products are not in this build")
  }
}
#endif
