import BitBudgetTestSupport
import Testing

import BitBudgetKernels

@Suite struct AttentionTests {
  /// Causal GQA attention over several segments (as a paged cache hands them over) against the
  /// Double-precision definition.
  @Test(arguments: ElementType.allCases, [
    (heads: 4, kvHeads: 2, dim: 16), (heads: 6, kvHeads: 3, dim: 24), (heads: 8, kvHeads: 2, dim: 128),
    (heads: 2, kvHeads: 2, dim: 64), (heads: 14, kvHeads: 2, dim: 48), (heads: 3, kvHeads: 1, dim: 96),
  ])
  func matchesReference(type: ElementType, shape: (heads: Int, kvHeads: Int, dim: Int)) {
    let geometry = AttentionShape(queryHeads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.dim)
    var random = TestRandom(seed: UInt64(shape.dim))
    let segmentTokens = [5, 64, 3, 20]
    let total = segmentTokens.reduce(0, +)
    let rows = 7
    var storages: [UnsafeMutableRawPointer] = []
    defer { storages.forEach { $0.deallocate() } }
    var segments: [KVSegment] = []
    for tokens in segmentTokens {
      // Storage for whole 32-token groups; the slots past `tokens` hold garbage the kernel must
      // ignore.
      let capacity = (tokens + 31) / 32 * 32
      let count = capacity * shape.dim * shape.kvHeads
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
          Attention.attend(queries: q.baseAddress!, rows: rows, visibleBefore: total - rows, segments: segs, shape: geometry, output: $0.baseAddress!, pool: pool, scratch: scratch)
        }
        slow.withUnsafeMutableBufferPointer {
          Attention.reference(queries: q.baseAddress!, rows: rows, visibleBefore: total - rows, segments: segs, shape: geometry, output: $0.baseAddress!)
        }
      }
    }
    let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? .nan
    // Outputs are convex combinations of values in [−1, 1]; f32 softmax and sums over ≤ 92 tokens.
    #expect(worst < 2e-6, "max |Δ| \(worst)")
  }
}
