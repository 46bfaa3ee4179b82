import BitBudgetTestSupport
import Foundation
import Testing

import BitBudgetKernels

@Suite struct AttentionTests {
  static let shapes = [
    (heads: 4, kvHeads: 2, dim: 16), (heads: 6, kvHeads: 3, dim: 24), (heads: 8, kvHeads: 2, dim: 128),
    (heads: 2, kvHeads: 2, dim: 64), (heads: 14, kvHeads: 2, dim: 48), (heads: 3, kvHeads: 1, dim: 96),
  ]

  /// Causal GQA attention over several segments (as a paged cache hands them over) against the
  /// Double-precision definition: one row (the decode kernel) and 7 or 45 rows (the tiled prefill
  /// kernel: 45 rows span several tiles, the 150-token segment several key blocks, and rows see
  /// different numbers of tokens of the last blocks).
  @Test(arguments: ElementType.allCases, shapes)
  func matchesReference(type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int)) {
    for rows in [1, 7, 45] {
      let worst = Self.worstDifference(
        type: type, shape: shape, segmentTokens: [5, 64, 3, 150, 20], quantized: [], rows: rows, seed: UInt64(shape.dim + rows))
      // Outputs are convex combinations of values in [−1, 1]; f32 softmax and sums over ≤ 242 tokens.
      #expect(worst < 2e-6, "\(rows) rows: max |Δ| \(worst)")
    }
  }

  /// The bf16 products (`AttentionScratch.roundsToBF16`) against the definition with the queries
  /// rounded to bf16 as the kernel rounds them, over dense and quantized segments: what is left is
  /// the rounding of the dense segments' softmax weights, each by at most 2⁻⁸ of itself (bf16
  /// keeps 8 significant bits), so an output moves by at most 2⁻⁸ of the largest |value| (values
  /// in [−1, 1]) plus f32 noise. The rounding must show: outputs differ from the f32 products.
  /// Elsewhere (f32/f16 caches, head dimensions not a multiple of 32, builds without
  /// AVX512-BF16) the f32 products run and the f32 bounds hold.
  @Test(arguments: ElementType.allCases, shapes)
  func bf16ProductsMatchReference(type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int)) {
    let rounded = LinearActivations.bf16Available && type == .bf16 && shape.dim % 32 == 0
    for rows in [1, 7, 45] {
      for quantized in [[], [0, 2]] as [Set<Int>] {
        let seed = UInt64(shape.dim + rows + quantized.count)
        let worst = Self.worstDifference(
          type: type, shape: shape, segmentTokens: [70, 9, 96, 33], quantized: quantized, rows: rows, seed: seed,
          roundsToBF16: true)
        #expect(worst < (rounded ? 0x1p-8 + 1e-5 : 1e-5), "\(rows) rows, quantized \(quantized): max |Δ| \(worst)")
        if rounded {
          let exact = Self.worstDifference(
            type: type, shape: shape, segmentTokens: [70, 9, 96, 33], quantized: quantized, rows: rows, seed: seed,
            roundsToBF16: true, roundReferenceQueries: false)
          #expect(exact > 1e-4, "\(rows) rows, quantized \(quantized): outputs as exact as f32 (max |Δ| \(exact))")
        }
      }
    }
  }

  /// A call whose segments are all quantized has no bf16 products to take: its queries stay f32
  /// (the f32 bound of `quantizedSegmentsMatchReference`) with `roundsToBF16` on.
  @Test(arguments: ElementType.allCases)
  func quantizedOnlyCallsKeepExactQueries(type: ElementType) {
    for rows in [1, 7] {
      let worst = Self.worstDifference(
        type: type, shape: (heads: 8, kvHeads: 2, dim: 128), segmentTokens: [70, 9, 96], quantized: [0, 1, 2], rows: rows,
        seed: UInt64(rows), roundsToBF16: true, roundReferenceQueries: false)
      #expect(worst < 1e-5, "\(rows) rows: max |Δ| \(worst)")
    }
  }

  /// H2O's accumulated weights (`Attention.addWeights`) against the Double definition over dense
  /// and quantized segments: the softmax weights of 1, 7 and 45 causal rows, summed over the
  /// rows and each KV head's query heads, added to totals that already hold something; tokens
  /// past the last row's view untouched. Weights are in [0, 1] and sum to one per row and head, so
  /// f32 exponentials and sums stay within 1e-5 of each total.
  @Test(arguments: ElementType.allCases, shapes)
  func accumulatedWeightsMatchTheDefinition(type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int)) {
    let geometry = AttentionShape(queryHeads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.dim)
    let segmentTokens = [70, 9, 96, 30]
    let total = segmentTokens.reduce(0, +)
    for rows in [1, 7, 45] {
      var random = TestRandom(seed: UInt64(shape.dim * 3 + rows))
      var storages: [UnsafeMutableRawPointer] = []
      defer { storages.forEach { $0.deallocate() } }
      let segments = Self.makeSegments(
        type: type, kvHeads: shape.kvHeads, dim: shape.dim, segmentTokens: segmentTokens, quantized: [0, 2], bits: 4,
        random: &random, storages: &storages)
      let queries = (0..<(rows * shape.heads * shape.dim)).map { _ in random.signedUnit() }
      let stride = total + 5
      let start = (0..<(shape.kvHeads * stride)).map { _ in random.signedUnit() }
      var totals = start
      segments.withUnsafeBufferPointer { segments in
        Attention.addWeights(
          queries: queries, rows: rows, visibleBefore: total - rows, segments: segments, shape: geometry, totals: &totals,
          stride: stride, pool: ThreadPool(threadCount: 2))
      }
      var expected = start.map(Double.init)
      for row in 0..<rows {
        let visible = total - rows + row + 1
        for head in 0..<shape.heads {
          let kvHead = head / geometry.groupSize
          var keys: [[Double]] = []
          for segment in segments {
            for t in 0..<segment.tokens {
              keys.append((0..<shape.dim).map { Double(segment.key(kvHead: kvHead, token: t, dimension: $0, headDim: shape.dim)) })
            }
          }
          let q = (0..<shape.dim).map { Double(queries[(row * shape.heads + head) * shape.dim + $0]) }
          let logits = keys.prefix(visible).map { k in zip(q, k).reduce(0) { $0 + $1.0 * $1.1 } * Double(geometry.scale) }
          let top = logits.max() ?? 0
          let weights = logits.map { Foundation.exp($0 - top) }
          let sum = weights.reduce(0, +)
          for (t, w) in weights.enumerated() { expected[kvHead * stride + t] += w / sum }
        }
      }
      let worst = zip(totals, expected).map { Double(abs(Double($0) - $1)) }.max() ?? .infinity
      #expect(worst < 1e-5, "\(rows) rows: max |Δ| \(worst)")
    }
  }

  /// Segments of HQQ-quantized rows between dense ones, as the quantized caches hand them over.
  @Test(arguments: ElementType.allCases, shapes)
  func quantizedSegmentsMatchReference(type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int)) {
    for rows in [1, 7, 45] {
      for bits in [2, 4, 8] {
        let worst = Self.worstDifference(
          type: type, shape: shape, segmentTokens: [70, 9, 96, 30], quantized: [0, 2], bits: bits, rows: rows,
          seed: UInt64(shape.dim + rows + bits))
        // Values (code − zero)·scale stay within a few units: f32 sums over ≤ 205 tokens.
        #expect(worst < 1e-5, "\(rows) rows, \(bits) bits: max |Δ| \(worst)")
      }
    }
  }

  /// Several sequences' single new rows over shared leading segments and their own (forks of one
  /// prompt), against the definition on each sequence's whole list and bit for bit against each
  /// row attending alone: 1, 3 and 17 rows (17 rows of 2–7 heads per group span several tiles),
  /// query rows out of order in the buffer, rows not listed left untouched.
  /// With `roundsToBF16`, the bf16 products against the definition on rounded queries (the bound
  /// of `bf16ProductsMatchReference`), and still bit for bit against each row alone.
  @Test(arguments: ElementType.allCases, shapes)
  func sharedSegmentsMatchReference(type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int)) {
    for roundsToBF16 in [false, true] {
      sharedSegmentsMatchReference(type: type, shape: shape, roundsToBF16: roundsToBF16)
    }
  }

  func sharedSegmentsMatchReference(type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int), roundsToBF16: Bool) {
    let geometry = AttentionShape(queryHeads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.dim)
    let width = shape.heads * shape.dim
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    scratch.roundsToBF16 = roundsToBF16
    let rounded = roundsToBF16 && LinearActivations.bf16Available && type == .bf16 && shape.dim % 32 == 0
    for count in [1, 3, 17] {
      var random = TestRandom(seed: UInt64(shape.dim * 100 + count))
      var storages: [UnsafeMutableRawPointer] = []
      defer { storages.forEach { $0.deallocate() } }
      let shared = Self.makeSegments(
        type: type, kvHeads: shape.kvHeads, dim: shape.dim, segmentTokens: [64, 130, 64, 7], quantized: [1], bits: 4,
        random: &random, storages: &storages)
      let own = (0..<count).map { r in
        Self.makeSegments(
          type: type, kvHeads: shape.kvHeads, dim: shape.dim, segmentTokens: r % 2 == 0 ? [1] : [64, 70, 9], quantized: [],
          bits: 4, random: &random, storages: &storages)
      }
      // Row r of the batch is buffer row `rows[r]`; one buffer row is nobody's.
      let rows = (0..<count).map { ($0 * 5 + 1) % (count + 1) }
      let queries = (0..<((count + 1) * width)).map { _ in random.signedUnit() * 2 }
      var fast = [Float](repeating: .nan, count: (count + 1) * width)
      shared.withUnsafeBufferPointer { s in
        queries.withUnsafeBufferPointer { q in
          fast.withUnsafeMutableBufferPointer {
            Attention.attendSharing(
              queries: q.baseAddress!, rows: rows, shared: s, own: own, shape: geometry, output: $0.baseAddress!, pool: pool,
              scratch: scratch)
          }
        }
      }
      let referenceQueries = rounded ? Self.roundedToBF16(queries) : queries
      for (r, row) in rows.enumerated() {
        let segments = shared + own[r]
        var slow = [Float](repeating: .nan, count: width)
        segments.withUnsafeBufferPointer { s in
          referenceQueries.withUnsafeBufferPointer { q in
            slow.withUnsafeMutableBufferPointer {
              Attention.reference(
                queries: q.baseAddress! + row * width, rows: 1, visibleBefore: segments.reduce(0) { $0 + $1.tokens } - 1,
                segments: s, shape: geometry, output: $0.baseAddress!)
            }
          }
        }
        let difference = Self.worst(Array(fast[(row * width)..<((row + 1) * width)]), slow)
        #expect(difference < (rounded ? 0x1p-8 + 1e-5 : 1e-5), "\(count) rows, row \(r): max |Δ| \(difference)")
        // And exactly what the row gets attending alone over the same segments.
        var alone = [Float](repeating: .nan, count: width)
        segments.withUnsafeBufferPointer { s in
          queries.withUnsafeBufferPointer { q in
            alone.withUnsafeMutableBufferPointer {
              Attention.attend(
                queries: q.baseAddress! + row * width, rows: 1, visibleBefore: segments.reduce(0) { $0 + $1.tokens } - 1,
                segments: s, shape: geometry, output: $0.baseAddress!, pool: pool, scratch: scratch)
            }
          }
        }
        #expect(Array(fast[(row * width)..<((row + 1) * width)]) == alone, "\(count) rows, row \(r): not bit-identical alone")
      }
      let untouched = Set(0...count).subtracting(rows)
      #expect(untouched.allSatisfy { row in fast[(row * width)..<((row + 1) * width)].allSatisfy(\.isNaN) })
    }
  }

  /// Segments of random keys and values (`tokens` each); those at the indices in `quantized`
  /// hold random HQQ codes, scales and zeros (groups of 32 dimensions, or 8 where the head
  /// dimension is not a multiple of 32, which takes the kernel's one-value-at-a-time unpacking).
  /// The caller deallocates `storages`.
  static func makeSegments(
    type: ElementType, kvHeads: Int, dim: Int, segmentTokens: [Int], quantized: Set<Int>, bits: Int,
    random: inout TestRandom, storages: inout [UnsafeMutableRawPointer]
  ) -> [KVSegment] {
    var segments: [KVSegment] = []
    for (index, tokens) in segmentTokens.enumerated() {
      // Storage for whole 32-token groups; the slots past `tokens` hold garbage the kernel must
      // ignore.
      let capacity = (tokens + 31) / 32 * 32
      let count = capacity * dim * kvHeads
      if quantized.contains(index) {
        let groupSize = dim % 32 == 0 ? 32 : 8
        let byteCount = QuantizedKVRows.byteCount(
          kvHeads: kvHeads, headDim: dim, capacity: capacity, bits: bits, groupSize: groupSize, metaType: type)
        let base = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        storages.append(base)
        let rowsLayout = QuantizedKVRows(
          base: base, kvHeads: kvHeads, headDim: dim, capacity: capacity, bits: bits, groupSize: groupSize, metaType: type)
        for i in 0..<(2 * rowsLayout.codeBytes) { base.storeBytes(of: UInt8.random(in: 0...255, using: &random), toByteOffset: i, as: UInt8.self) }
        let metaCount = rowsLayout.metaBytes / type.byteCount
        let levels = Float((1 << bits) - 1)
        // Key scales, key zeros, value scales, value zeros: values (code − zero)·scale within ±1.
        for kind in 0..<4 {
          let meta = (0..<metaCount).map { _ in
            kind % 2 == 0 ? 0.5 / levels * (1.5 + random.signedUnit()) : levels * (0.5 + 0.5 * random.signedUnit())
          }
          meta.withUnsafeBufferPointer {
            storeConverted($0.baseAddress!, count: metaCount, to: base + 2 * rowsLayout.codeBytes + kind * rowsLayout.metaBytes, at: 0, as: type)
          }
        }
        segments.append(KVSegment(quantized: rowsLayout, tokens: tokens))
        continue
      }
      let keys = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
      let values = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
      storages += [keys, values]
      var k = (0..<count).map { _ in random.signedUnit() * 2 }
      var v = (0..<count).map { _ in random.signedUnit() }
      // Unwritten slots may hold anything, NaN included: no weight, not even 0, may meet them.
      for h in 0..<kvHeads {
        for t in tokens..<capacity {
          for x in 0..<dim {
            k[(h * dim + x) * capacity + t] = .nan
            v[(h * capacity + t) * dim + x] = .nan
          }
        }
      }
      k.withUnsafeBufferPointer { storeConverted($0.baseAddress!, count: count, to: keys, at: 0, as: type) }
      v.withUnsafeBufferPointer { storeConverted($0.baseAddress!, count: count, to: values, at: 0, as: type) }
      segments.append(KVSegment(keys: keys, values: values, tokens: tokens, capacity: capacity, elementType: type))
    }
    return segments
  }

  /// `values` rounded to bf16 (nearest, ties to even) and widened back.
  static func roundedToBF16(_ values: [Float]) -> [Float] {
    values.map { bf16ToFloat(floatToBF16($0)) }
  }

  /// The largest |a − b|; NaN anywhere (an unwritten output, a NaN weight) gives NaN.
  static func worst(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(Float(0)) { worst, pair in
      let difference = abs(pair.0 - pair.1)
      return worst.isNaN || difference.isNaN ? .nan : max(worst, difference)
    }
  }

  /// Max |fast − reference| over all outputs.
  static func worstDifference(
    type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int), segmentTokens: [Int], quantized: Set<Int>,
    bits: Int = 4, rows: Int, seed: UInt64, roundsToBF16: Bool = false, roundReferenceQueries: Bool = true
  ) -> Float {
    let geometry = AttentionShape(queryHeads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.dim)
    var random = TestRandom(seed: seed)
    let total = segmentTokens.reduce(0, +)
    var storages: [UnsafeMutableRawPointer] = []
    defer { storages.forEach { $0.deallocate() } }
    let segments = makeSegments(
      type: type, kvHeads: shape.kvHeads, dim: shape.dim, segmentTokens: segmentTokens, quantized: quantized, bits: bits,
      random: &random, storages: &storages)
    let width = shape.heads * shape.dim
    let queries = (0..<(rows * width)).map { _ in random.signedUnit() * 2 }
    var fast = [Float](repeating: .nan, count: rows * width)
    var slow = fast
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    scratch.roundsToBF16 = roundsToBF16
    // The queries the bf16 products multiply.
    let rounded = roundsToBF16 && roundReferenceQueries && LinearActivations.bf16Available && type == .bf16 && shape.dim % 32 == 0
    let referenceQueries = rounded ? roundedToBF16(queries) : queries
    segments.withUnsafeBufferPointer { segs in
      queries.withUnsafeBufferPointer { q in
        fast.withUnsafeMutableBufferPointer {
          Attention.attend(
            queries: q.baseAddress!, rows: rows, visibleBefore: total - rows, segments: segs, shape: geometry,
            output: $0.baseAddress!, pool: pool, scratch: scratch)
        }
      }
      referenceQueries.withUnsafeBufferPointer { q in
        slow.withUnsafeMutableBufferPointer {
          Attention.reference(
            queries: q.baseAddress!, rows: rows, visibleBefore: total - rows, segments: segs, shape: geometry,
            output: $0.baseAddress!)
        }
      }
    }
    return worst(fast, slow)
  }
}
