import BitBudgetTestSupport
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

  /// Max |fast − reference| over all outputs. Segments at the indices in `quantized` hold random
  /// HQQ codes, scales and zeros (groups of 32 dimensions, or 8 where the head dimension is not a
  /// multiple of 32, which takes the kernel's one-value-at-a-time unpacking).
  static func worstDifference(
    type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int), segmentTokens: [Int], quantized: Set<Int>,
    bits: Int = 4, rows: Int, seed: UInt64
  ) -> Float {
    let geometry = AttentionShape(queryHeads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.dim)
    var random = TestRandom(seed: seed)
    let total = segmentTokens.reduce(0, +)
    var storages: [UnsafeMutableRawPointer] = []
    defer { storages.forEach { $0.deallocate() } }
    var segments: [KVSegment] = []
    for (index, tokens) in segmentTokens.enumerated() {
      // Storage for whole 32-token groups; the slots past `tokens` hold garbage the kernel must
      // ignore.
      let capacity = (tokens + 31) / 32 * 32
      let count = capacity * shape.dim * shape.kvHeads
      if quantized.contains(index) {
        let groupSize = shape.dim % 32 == 0 ? 32 : 8
        let byteCount = QuantizedKVRows.byteCount(
          kvHeads: shape.kvHeads, headDim: shape.dim, capacity: capacity, bits: bits, groupSize: groupSize, metaType: type)
        let base = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        storages.append(base)
        let rowsLayout = QuantizedKVRows(
          base: base, kvHeads: shape.kvHeads, headDim: shape.dim, capacity: capacity, bits: bits, groupSize: groupSize,
          metaType: type)
        for i in 0..<(2 * rowsLayout.codeBytes) { base.storeBytes(of: UInt8.random(in: 0...255, using: &random), toByteOffset: i, as: UInt8.self) }
        let metaCount = rowsLayout.metaBytes / type.byteCount
        let levels = Float((1 << bits) - 1)
        for (offset, make) in [
          (2 * rowsLayout.codeBytes, { (r: inout TestRandom) in 0.5 / levels * (1.5 + r.signedUnit()) }),
          (2 * rowsLayout.codeBytes + rowsLayout.metaBytes, { (r: inout TestRandom) in levels * (0.5 + 0.5 * r.signedUnit()) }),
          (2 * rowsLayout.codeBytes + 2 * rowsLayout.metaBytes, { (r: inout TestRandom) in 0.5 / levels * (1.5 + r.signedUnit()) }),
          (2 * rowsLayout.codeBytes + 3 * rowsLayout.metaBytes, { (r: inout TestRandom) in levels * (0.5 + 0.5 * r.signedUnit()) }),
        ] {
          let meta = (0..<metaCount).map { _ in make(&random) }
          meta.withUnsafeBufferPointer { storeConverted($0.baseAddress!, count: metaCount, to: base + offset, at: 0, as: type) }
        }
        segments.append(KVSegment(quantized: rowsLayout, tokens: tokens))
        continue
      }
      let keys = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
      let values = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
      storages += [keys, values]
      let k = (0..<count).map { _ in random.signedUnit() * 2 }
      let v = (0..<count).map { _ in random.signedUnit() }
      k.withUnsafeBufferPointer { storeConverted($0.baseAddress!, count: count, to: keys, at: 0, as: type) }
      v.withUnsafeBufferPointer { storeConverted($0.baseAddress!, count: count, to: values, at: 0, as: type) }
      segments.append(KVSegment(keys: keys, values: values, tokens: tokens, capacity: capacity, elementType: type))
    }
    let width = shape.heads * shape.dim
    let queries = (0..<(rows * width)).map { _ in random.signedUnit() * 2 }
    var fast = [Float](repeating: .nan, count: rows * width)
    var slow = fast
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    segments.withUnsafeBufferPointer { segs in
      queries.withUnsafeBufferPointer { q in
        fast.withUnsafeMutableBufferPointer {
          Attention.attend(
            queries: q.baseAddress!, rows: rows, visibleBefore: total - rows, segments: segs, shape: geometry,
            output: $0.baseAddress!, pool: pool, scratch: scratch)
        }
        slow.withUnsafeMutableBufferPointer {
          Attention.reference(
            queries: q.baseAddress!, rows: rows, visibleBefore: total - rows, segments: segs, shape: geometry,
            output: $0.baseAddress!)
        }
      }
    }
    // NaN anywhere (an unwritten output, a NaN weight) fails the comparison.
    return zip(fast, slow).reduce(Float(0)) { worst, pair in
      let difference = abs(pair.0 - pair.1)
      return worst.isNaN || difference.isNaN ? .nan : max(worst, difference)
    }
  }
}
