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
    let group = shape.groupSize
    scratch.reserve(group * (visibleBefore + rows + 1))
    pool.parallelFor(rows * shape.kvHeads) { task, thread in
      let row = task / shape.kvHeads
      let kvHead = task % shape.kvHeads
      let width = shape.queryHeads * shape.headDim
      attendGroup(
        queries: queries + row * width + kvHead * group * shape.headDim,
        visible: visibleBefore + row + 1, kvHead: kvHead, segments: segments, shape: shape,
        scores: scratch.buffer(thread: thread),
        output: output + row * width + kvHead * group * shape.headDim)
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

  /// Attention of the `groupSize` query heads sharing `kvHead`, for one query row.
  @inline(__always)
  static func attendGroup(
    queries: UnsafePointer<Float>, visible: Int, kvHead: Int,
    segments: UnsafeBufferPointer<KVSegment>, shape: AttentionShape,
    scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>
  ) {
    let d = shape.headDim
    let group = shape.groupSize
    let scale = shape.scale
    // Pass 1: scaled logits, [group][visible].
    var seen = 0
    for segment in segments {
      if seen >= visible { break }
      let count = min(segment.tokens, visible - seen)
      let keys = segment.keys
      let base = kvHead * segment.headStride
      for g in 0..<group {
        let q = queries + g * d
        let out = scores + g * visible + seen
        switch segment.elementType {
        case .bf16: logits(BF16Widening.self, q, keys, base, count, d, scale, out)
        case .f16: logits(F16Widening.self, q, keys, base, count, d, scale, out)
        case .f32: logits(F32Widening.self, q, keys, base, count, d, scale, out)
        }
      }
      seen += count
    }
    // Softmax numerators per query head; 1/Σ is stored after the scores and applied at the end.
    let inverseSums = scores + group * visible
    for g in 0..<group {
      inverseSums[g] = 1 / exponentiate(scores + g * visible, count: visible)
      (output + g * d).update(repeating: 0, count: d)
    }
    // Pass 2: weighted sum of values.
    seen = 0
    for segment in segments {
      if seen >= visible { break }
      let count = min(segment.tokens, visible - seen)
      let base = kvHead * segment.headStride
      for g in 0..<group {
        let p = scores + g * visible + seen
        switch segment.elementType {
        case .bf16: accumulate(BF16Widening.self, p, segment.values, base, count, d, output + g * d)
        case .f16: accumulate(F16Widening.self, p, segment.values, base, count, d, output + g * d)
        case .f32: accumulate(F32Widening.self, p, segment.values, base, count, d, output + g * d)
        }
      }
      seen += count
    }
    for g in 0..<group {
      let o = output + g * d
      let inverse = inverseSums[g]
      for j in 0..<d { o[j] *= inverse }
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

  @inline(__always)
  static func logits<W: Widening>(
    _: W.Type, _ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ base: Int, _ count: Int,
    _ d: Int, _ scale: Float, _ out: UnsafeMutablePointer<Float>
  ) {
    if d % 16 == 0 {
      for t in 0..<count {
        let k = base + t * d
        var acc = SIMD16<Float>()
        var i = 0
        while i < d {
          acc.addProduct(W.load16(keys, k + i), UnsafeRawPointer(q + i).loadUnaligned(as: SIMD16<Float>.self))
          i += 16
        }
        out[t] = acc.sum() * scale
      }
    } else {
      for t in 0..<count {
        let k = base + t * d
        var sum: Float = 0
        for i in 0..<d { sum += W.load1(keys, k + i) * q[i] }
        out[t] = sum * scale
      }
    }
  }

  /// `out += Σ_t p[t] · v_t` over `count` value rows, in tiles of 64 tokens so that a tile stays
  /// in L1 while each 16-lane slice of the head is accumulated in a register.
  @inline(__always)
  static func accumulate<W: Widening>(
    _: W.Type, _ p: UnsafePointer<Float>, _ values: UnsafeRawPointer, _ base: Int, _ count: Int,
    _ d: Int, _ out: UnsafeMutablePointer<Float>
  ) {
    guard d % 16 == 0 else {
      for t in 0..<count {
        let v = base + t * d
        let w = p[t]
        for i in 0..<d { out[i] += w * W.load1(values, v + i) }
      }
      return
    }
    var tileStart = 0
    while tileStart < count {
      let tileEnd = min(count, tileStart + 64)
      var i = 0
      while i < d {
        var acc = UnsafeRawPointer(out + i).loadUnaligned(as: SIMD16<Float>.self)
        for t in tileStart..<tileEnd {
          acc.addProduct(W.load16(values, base + t * d + i), SIMD16<Float>(repeating: p[t]))
        }
        UnsafeMutableRawPointer(out + i).storeBytes(of: acc, as: SIMD16<Float>.self)
        i += 16
      }
      tileStart = tileEnd
    }
  }
}
