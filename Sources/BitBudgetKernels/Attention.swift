import Foundation

/// A run of cached tokens whose keys and values are stored densely (f32, f16 or bf16), laid out
/// `[kvHeads][tokens][headDim]` with `headStride` elements between the heads. A KV cache hands the
/// attention kernel its tokens as a list of such segments, in cache order.
public struct KVSegment: @unchecked Sendable {
  public let keys: UnsafeRawPointer
  public let values: UnsafeRawPointer
  public let tokens: Int
  /// Elements from the start of one KV head's rows to the next head's.
  public let headStride: Int
  public let elementType: ElementType

  public init(
    keys: UnsafeRawPointer, values: UnsafeRawPointer, tokens: Int, headStride: Int,
    elementType: ElementType
  ) {
    self.keys = keys
    self.values = values
    self.tokens = tokens
    self.headStride = headStride
    self.elementType = elementType
  }
}

/// The geometry of grouped-query attention.
public struct AttentionShape: Sendable, Equatable {
  public let queryHeads: Int
  public let kvHeads: Int
  public let headDim: Int

  public init(queryHeads: Int, kvHeads: Int, headDim: Int) {
    self.queryHeads = queryHeads
    self.kvHeads = kvHeads
    self.headDim = headDim
  }

  /// Query heads per KV head; query head `h` reads KV head `h / groupSize`.
  public var groupSize: Int { queryHeads / kvHeads }
  /// `1/√D`.
  public var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// Per-thread f32 scratch of the attention kernel: the scores of one query group against every
/// visible token (`groupSize × tokens` floats per thread). Grows on demand, never shrinks;
/// `byteCount` reports what it holds.
public final class AttentionScratch: @unchecked Sendable {
  private var buffers: [UnsafeMutablePointer<Float>]
  private var capacity = 0

  public init(threadCount: Int) {
    buffers = Array(repeating: UnsafeMutablePointer<Float>.allocate(capacity: 1), count: 0)
    for _ in 0..<max(1, threadCount) { buffers.append(.allocate(capacity: 1)) }
    capacity = 1
  }

  deinit {
    for buffer in buffers { buffer.deallocate() }
  }

  /// Bytes held by all threads' buffers.
  public var byteCount: Int { buffers.count * capacity * 4 }

  /// Makes every thread's buffer hold at least `floats` values (call before a parallel loop).
  public func reserve(_ floats: Int) {
    guard floats > capacity else { return }
    let newCapacity = max(floats, capacity * 2)
    for i in buffers.indices {
      buffers[i].deallocate()
      buffers[i] = .allocate(capacity: newCapacity)
    }
    capacity = newCapacity
  }

  func buffer(thread: Int) -> UnsafeMutablePointer<Float> { buffers[thread] }
}

/// Causal grouped-query attention of new query rows over the tokens of a KV cache.
public enum Attention {
  /// For each query row `i` in `0..<rows` and each query head: softmax(q·Kᵀ·scale) · V over the
  /// first `visibleBefore + i + 1` tokens of `segments` (the cache holds `visibleBefore` older
  /// tokens followed by this call's `rows` new ones). `queries` and `output` are `[rows,
  /// queryHeads·headDim]`. Work is split over (row, KV head) pairs; each reads its KV head's keys
  /// and values once for the whole query group. Cost per row: `2·visible·queryHeads·headDim` FMAs.
  public static func attend(
    queries: UnsafePointer<Float>, rows: Int, visibleBefore: Int,
    segments: UnsafeBufferPointer<KVSegment>, shape: AttentionShape,
    output: UnsafeMutablePointer<Float>, pool: ThreadPool, scratch: AttentionScratch
  ) {
    guard let elementType = segments.first?.elementType else { return }
    switch elementType {
    case .bf16: attend(BF16Widening.self, queries, rows, visibleBefore, segments, shape, output, pool, scratch)
    case .f16: attend(F16Widening.self, queries, rows, visibleBefore, segments, shape, output, pool, scratch)
    case .f32: attend(F32Widening.self, queries, rows, visibleBefore, segments, shape, output, pool, scratch)
    }
  }

  static func attend<W: Widening>(
    _: W.Type, _ queries: UnsafePointer<Float>, _ rows: Int, _ visibleBefore: Int,
    _ segments: UnsafeBufferPointer<KVSegment>, _ shape: AttentionShape,
    _ output: UnsafeMutablePointer<Float>, _ pool: ThreadPool, _ scratch: AttentionScratch
  ) {
    let group = shape.groupSize
    let d = shape.headDim
    scratch.reserve(group * (visibleBefore + rows + 1 + 2 * d))
    pool.parallelFor(rows * shape.kvHeads) { task, thread in
      let row = task / shape.kvHeads
      let kvHead = task % shape.kvHeads
      let width = shape.queryHeads * d
      attendGroup(
        W.self, queries: queries + row * width + kvHead * group * d,
        visible: visibleBefore + row + 1, kvHead: kvHead, segments: segments, shape: shape,
        scratch: scratch.buffer(thread: thread),
        output: output + row * width + kvHead * group * d)
    }
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
            let offset = kvHead * segment.headStride + t * d
            keys.append((0..<d).map { Double(load1(segment.keys, offset + $0, segment.elementType)) })
            values.append((0..<d).map { Double(load1(segment.values, offset + $0, segment.elementType)) })
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

  /// Attention of the `groupSize` query heads sharing `kvHead`, for one query row. All segments
  /// must store `W`'s element type. `scratch` holds `group × (visible + 1 + 2·headDim)` floats:
  /// the scores, 1/Σ per head, and the queries and outputs in `W`'s load order.
  @inline(__always)
  static func attendGroup<W: Widening>(
    _: W.Type, queries: UnsafePointer<Float>, visible: Int, kvHead: Int,
    segments: UnsafeBufferPointer<KVSegment>, shape: AttentionShape,
    scratch: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>
  ) {
    let d = shape.headDim
    let group = shape.groupSize
    let scores = scratch
    let inverseSums = scores + group * visible
    let orderedQueries = inverseSums + group
    let orderedOutputs = orderedQueries + group * d
    for g in 0..<group {
      if W.usesPairOrder {
        PairOrder.permute(queries + g * d, count: d, into: orderedQueries + g * d)
      } else {
        (orderedQueries + g * d).update(from: queries + g * d, count: d)
      }
    }
    // Pass 1: scaled logits, [group][visible].
    var seen = 0
    for segment in segments {
      if seen >= visible { break }
      let count = min(segment.tokens, visible - seen)
      let base = kvHead * segment.headStride
      for g in 0..<group {
        logits(W.self, orderedQueries + g * d, segment.keys, base, count, d, shape.scale, scores + g * visible + seen)
      }
      seen += count
    }
    // Softmax numerators per query head; 1/Σ is applied at the end.
    for g in 0..<group {
      inverseSums[g] = 1 / exponentiate(scores + g * visible, count: visible)
    }
    (orderedOutputs).update(repeating: 0, count: group * d)
    // Pass 2: weighted sum of values.
    seen = 0
    for segment in segments {
      if seen >= visible { break }
      let count = min(segment.tokens, visible - seen)
      let base = kvHead * segment.headStride
      for g in 0..<group {
        accumulate(W.self, scores + g * visible + seen, segment.values, base, count, d, orderedOutputs + g * d)
      }
      seen += count
    }
    for g in 0..<group {
      let o = orderedOutputs + g * d
      let inverse = inverseSums[g]
      for j in 0..<d { o[j] *= inverse }
      if W.usesPairOrder {
        PairOrder.restore(o, count: d, into: output + g * d)
      } else {
        (output + g * d).update(from: o, count: d)
      }
    }
  }

  /// Replaces `s[j]` by `e^(s[j] − max s)` and returns their sum.
  @inline(__always)
  static func exponentiate(_ s: UnsafeMutablePointer<Float>, count: Int) -> Float {
    var maxValue = -Float.infinity
    for j in 0..<count { maxValue = max(maxValue, s[j]) }
    let m = SIMD16<Float>(repeating: maxValue)
    var acc = SIMD16<Float>()
    var j = 0
    while j + 16 <= count {
      let e = Elementwise.exp(UnsafeRawPointer(s + j).loadUnaligned(as: SIMD16<Float>.self) - m)
      UnsafeMutableRawPointer(s + j).storeBytes(of: e, as: SIMD16<Float>.self)
      acc += e
      j += 16
    }
    var total = acc.sum()
    while j < count {
      let e = Elementwise.exp(SIMD16<Float>(repeating: s[j] - maxValue))[0]
      s[j] = e
      total += e
      j += 1
    }
    return total
  }

  /// `out[t] = scale · q·k_t` for `count` keys; `q` is in `W`'s load order.
  @inline(__always)
  static func logits<W: Widening>(
    _: W.Type, _ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ base: Int, _ count: Int,
    _ d: Int, _ scale: Float, _ out: UnsafeMutablePointer<Float>
  ) {
    let blocks = d / 32 * 32
    for t in 0..<count {
      let k = base + t * d
      var acc = SIMD16<Float>()
      var i = 0
      while i < blocks {
        let (lo, hi) = W.load32(keys, k + i)
        let raw = UnsafeRawPointer(q + i)
        acc.addProduct(lo, raw.loadUnaligned(as: SIMD16<Float>.self))
        acc.addProduct(hi, raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
        i += 32
      }
      var sum = acc.sum()
      while i < d {
        sum += W.load1(keys, k + i) * q[i]
        i += 1
      }
      out[t] = sum * scale
    }
  }

  /// `out += Σ_t p[t] · v_t` over `count` value rows (`out` in `W`'s load order), in tiles of 64
  /// tokens so that a tile stays in L1 while each 32-value slice of the head is accumulated in
  /// registers.
  @inline(__always)
  static func accumulate<W: Widening>(
    _: W.Type, _ p: UnsafePointer<Float>, _ values: UnsafeRawPointer, _ base: Int, _ count: Int,
    _ d: Int, _ out: UnsafeMutablePointer<Float>
  ) {
    let blocks = d / 32 * 32
    var tileStart = 0
    while tileStart < count {
      let tileEnd = min(count, tileStart + 64)
      var i = 0
      while i < blocks {
        let raw = UnsafeMutableRawPointer(out + i)
        var lo = raw.loadUnaligned(as: SIMD16<Float>.self)
        var hi = raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        for t in tileStart..<tileEnd {
          let (vl, vh) = W.load32(values, base + t * d + i)
          let weight = SIMD16<Float>(repeating: p[t])
          lo.addProduct(vl, weight)
          hi.addProduct(vh, weight)
        }
        raw.storeBytes(of: lo, as: SIMD16<Float>.self)
        raw.storeBytes(of: hi, toByteOffset: 64, as: SIMD16<Float>.self)
        i += 32
      }
      if blocks < d {
        for t in tileStart..<tileEnd {
          let v = base + t * d
          let weight = p[t]
          for j in blocks..<d { out[j] += weight * W.load1(values, v + j) }
        }
      }
      tileStart = tileEnd
    }
  }
}
