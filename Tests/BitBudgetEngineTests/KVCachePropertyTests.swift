import BitBudgetKernels
import BitBudgetMemory
import BitBudgetTestSupport
import Foundation
import PropertyBased
import Testing

@testable import BitBudgetEngine

/// Properties of every KV-cache policy under random sequences of operations — passes of 1…24
/// tokens appended to every layer (each followed by attention with random queries and a commit,
/// as a forward pass does) and forks (as the generator forks the prompt's cache for G samples) —
/// over random policies, budgets, head shapes and storage types, with random keys (±2), values
/// (±1) and queries (±2):
///
/// - bytes: `residentBytes` equals a recount from the cache's contents by the documented formula
///   (`FullKVCache`: whole 64-token blocks per layer; `CompressedKVCache`:
///   `KVPolicyConformanceTests.recount`), the sum of its storage, and, for the generator's
///   schedule (chunked prefill, fork, decode), `KVMemory.engineUsage`'s replay, shared storage
///   counted once;
/// - tokens: `residentTokens` follows the documented compression schedule exactly (so it stays
///   within the policy's bounds: ≤ budget + interval after a pass), at most `residual − 1` rows
///   stay unquantized, and the rows are the ones the policy keeps, as stored;
/// - attention: each pass's attention output equals softmax(q·k/√d)·v written plainly here, over
///   the rows the cache holds (dense rows rounded to the storage type, quantized rows
///   dequantized), so the comparison tests the kernel and the cache's bookkeeping, not the
///   quantization error. Tolerance 1e-5 absolute: outputs are convex combinations of values in
///   [−1, 1], the reference sums in Double, and the kernel's f32 sums over ≤ 300 tokens of ≤ 32
///   dimensions (and the quantized path's `scale·(Σq·code − zero·Σq)` regrouping) stay near 1e-6;
///   a wrong row, a missing token or a stale mask moves outputs by ≥ 1e-3.
@Suite struct KVCachePropertyTests {
  // MARK: Inputs

  struct Shape: Sendable, CustomStringConvertible {
    let kvHeads: Int, queryHeads: Int, headDim: Int
    var geometry: KVCacheGeometry { KVCacheGeometry(layers: 2, kvHeads: kvHeads, headDim: headDim) }
    var attention: AttentionShape { AttentionShape(queryHeads: queryHeads, kvHeads: kvHeads, headDim: headDim) }
    var description: String { "\(queryHeads)q/\(kvHeads)kv×\(headDim)" }
  }

  /// Query groups of 1, 2, 3 and 4 heads (the kernel's 1-, 2- and 4-head passes), head dimensions
  /// of one and two 16-lane vectors.
  static let shapes = [
    Shape(kvHeads: 2, queryHeads: 4, headDim: 16), Shape(kvHeads: 1, queryHeads: 3, headDim: 16),
    Shape(kvHeads: 2, queryHeads: 2, headDim: 32), Shape(kvHeads: 2, queryHeads: 8, headDim: 32),
  ]

  /// Full, StreamingLLM, R-KV, SnapKV, H2O, HQQ 2/4/8 and compositions, with small budgets and
  /// intervals so that a few hundred tokens compress many times. Group 8 takes the quantized
  /// kernel's scalar value path, 16 and 32 its vector one.
  static let specs = zip(
    Gen.int(in: 0...9), Gen.int(in: 8...40), Gen.int(in: 0...7), Gen.int(in: 1...24), Gen.int(in: 0...2),
    Gen.int(in: 0...2), Gen.int(in: 1...40)
  ).map { policy, budget, small, interval, bitsIndex, groupIndex, residual -> String in
    let streaming = "streaming:\(budget),sinks=\(min(small, budget - 1) % 5)"
    let window = min(small + 1, budget - 1)
    let rkv = "rkv:\(budget),window=\(window),buffer=\(max(window, interval))"
    let snapkv = "snapkv:\(budget),window=\(window),kernel=\(2 * (small % 4) + 1),buffer=\(max(window, interval))"
    let hqq = "hqq:\([2, 4, 8][bitsIndex]),group=\([8, 16, 32][groupIndex]),residual=\(residual)"
    let h2o = "h2o:\(budget),recent=\(min(small, budget)),buffer=\(interval)"
    return ["full", streaming, rkv, hqq, rkv + "+" + hqq, streaming + "+" + hqq, snapkv, snapkv + "+" + hqq, h2o, h2o + "+" + hqq][policy]
  }

  /// A pass of 1 token (decode; most of them, so decode-time compressions happen) or of 2…24
  /// (a prefill chunk), or a fork; each on one of up to 4 live caches.
  enum Operation: Sendable, CustomStringConvertible {
    case pass(cache: Int, tokens: Int)
    case fork(cache: Int)
    var description: String {
      switch self {
      case .pass(let cache, let tokens): "pass(\(cache), \(tokens))"
      case .fork(let cache): "fork(\(cache))"
      }
    }
  }

  static let operations = zip(Gen.int(in: 0...19), Gen.int(in: 0...3), Gen.int(in: 2...24))
    .map { kind, cache, tokens -> Operation in
      kind == 0 ? .fork(cache: cache) : .pass(cache: cache, tokens: kind < 13 ? 1 : tokens)
    }
    .array(of: 1...40)

  static let elementTypes = Gen.int(in: 0...2).map { [ElementType.bf16, .f16, .f32][$0] }

  // MARK: A cache and what it should hold

  /// A cache with the rows appended to it (as stored: rounded to the storage type) and the
  /// schedule's prediction of what it holds.
  struct Tracked {
    var cache: any KVCache
    /// Per layer, every appended token's keys and values `[token][kvHeads·headDim]`, rounded.
    var keys: [[Float]]
    var values: [[Float]]
    /// Absolute positions of the rows held, in cache order, per KV head; nil once R-KV has chosen
    /// (its choice depends on scores this test does not recompute).
    var positions: [[Int]]?
    var resident = 0
    var dense = 0
  }

  static func stored(_ x: Float, _ type: ElementType) -> Float {
    switch type {
    case .f32: x
    case .bf16: bf16ToFloat(floatToBF16(x))
    case .f16: f16ToFloat(floatToF16(x))
    }
  }

  /// The documented schedule for one pass of `count` tokens ending at `commit`: eviction after a
  /// multi-token pass or a decode step whose preceding length is a multiple of `interval`, when
  /// the layer holds at least `budget`; quantization of every dense row after a prefill pass, a
  /// compression, or when the dense rows reach `residual`.
  static func predictCommit(_ t: inout Tracked, spec: KVCacheSpec, count: Int, before: Int) {
    let held = t.resident + count
    var compressed = false
    if let eviction = spec.eviction, count > 1 || before % eviction.interval == 0,
      before + count >= eviction.queryWindow, held >= eviction.budget
    {
      compressed = true
      t.resident = eviction.budget
      if let streaming = eviction as? StreamingLLMPolicy {
        t.positions = t.positions.map { $0.map { Array($0.prefix(streaming.sinks)) + Array($0.suffix(streaming.budget - streaming.sinks)) } }
      } else {
        t.positions = nil
      }
    } else {
      t.resident = held
    }
    if let quantization = spec.quantization {
      t.dense = compressed || count > 1 || t.dense + count >= quantization.residual ? 0 : t.dense + count
    } else {
      t.dense = t.resident
    }
  }

  // MARK: Checks

  /// Keys or values the cache holds for one layer, `[kvHeads][tokens][headDim]`, dequantized.
  static func heldRows(_ t: Tracked, layer: Int, values: Bool, shape: Shape) -> [Float] {
    if let compressed = t.cache as? CompressedKVCache { return compressed.rowsInCacheOrder(layer, values: values) }
    // A full cache holds every appended row, in order.
    let (d, heads) = (shape.headDim, shape.kvHeads)
    let source = values ? t.values[layer] : t.keys[layer]
    let tokens = source.count / (heads * d)
    var rows = [Float](repeating: 0, count: source.count)
    for h in 0..<heads { for p in 0..<tokens { for x in 0..<d { rows[(h * tokens + p) * d + x] = source[(p * heads + h) * d + x] } } }
    return rows
  }

  /// softmax(q·k/√d)·v for each of the `rows` newest query rows over the first `held − rows + i +
  /// 1` rows, in Double.
  static func referenceAttention(
    queries: [Float], rows: Int, keys: [Float], values: [Float], held: Int, shape: Shape
  ) -> [Float] {
    let (d, heads, group) = (shape.headDim, shape.queryHeads, shape.queryHeads / shape.kvHeads)
    var output = [Float](repeating: 0, count: rows * heads * d)
    let scale = 1 / Double(d).squareRoot()
    queries.withUnsafeBufferPointer { q in
      keys.withUnsafeBufferPointer { k in
        values.withUnsafeBufferPointer { v in
          for i in 0..<rows {
            let visible = held - rows + i + 1
            for h in 0..<heads {
              let kv = h / group
              let query = (i * heads + h) * d
              var logits = [Double](repeating: 0, count: visible)
              for t in 0..<visible {
                var dot = 0.0
                for x in 0..<d { dot += Double(q[query + x]) * Double(k[(kv * held + t) * d + x]) }
                logits[t] = dot * scale
              }
              let top = logits.max() ?? 0
              let weights = logits.map { Foundation.exp($0 - top) }
              let total = weights.reduce(0, +)
              for x in 0..<d {
                var sum = 0.0
                for t in 0..<visible { sum += weights[t] * Double(v[(kv * held + t) * d + x]) }
                output[query + x] = Float(sum / total)
              }
            }
          }
        }
      }
    }
    return output
  }

  /// Bytes of the cache recounted from what it holds by the documented formulas.
  static func recount(_ cache: any KVCache) -> Int {
    if let compressed = cache as? CompressedKVCache { return KVPolicyConformanceTests.recount(compressed) }
    guard let full = cache as? FullKVCache else { return -1 }
    let g = full.geometry
    let blocks = (full.residentTokens + FullKVCache.blockTokens - 1) / FullKVCache.blockTokens
    return g.layers * blocks * 2 * g.rowWidth * FullKVCache.blockTokens * full.elementType.byteCount
  }

  static func storageBytes(_ caches: [any KVCache]) -> Int {
    var seen = Set<ObjectIdentifier>()
    var total = 0
    for cache in caches { cache.engine.forEachStorage { id, bytes in if seen.insert(id).inserted { total += bytes } } }
    return total
  }

  /// HQQ's error bound for one group of stored values: half a quantization step, plus the
  /// rounding of the scale and zero to the metadata type (relative `eps` each; the zero is
  /// |min|·maxq/range, so its rounding moves a value by up to eps·|min|).
  static func quantizationBound(_ group: ArraySlice<Float>, bits: Int, meta: ElementType) -> Float {
    let (low, high) = (group.min() ?? 0, group.max() ?? 0)
    let range = high - low
    let maxq = Float((1 << bits) - 1)
    let eps: Float = meta == .f32 ? 0x1p-22 : 0x1p-10
    return range / maxq * 0.5 + eps * (range + 2 * abs(low)) + 1e-6 * max(abs(low), abs(high))
  }

  /// What the cache holds equals what the schedule predicts: its token count, unquantized rows,
  /// bytes, and rows (dense ones exactly as stored, quantized ones within HQQ's bound of them;
  /// for R-KV, every dense row is some appended token's, each at most once).
  static func checkContents(_ t: Tracked, spec: KVCacheSpec, shape: Shape, context: String) {
    let cache = t.cache
    #expect(cache.residentTokens == t.resident, "resident tokens: \(context)")
    #expect(cache.residentBytes == recount(cache), "bytes vs recount: \(context)")
    #expect(cache.residentBytes == storageBytes([cache]), "bytes vs storage: \(context)")
    if let eviction = spec.eviction {
      #expect(cache.residentTokens <= eviction.budget + eviction.interval, "bound: \(context)")
    } else {
      #expect(cache.residentTokens == cache.nextPosition, "no eviction keeps every token: \(context)")
    }
    guard let compressed = cache as? CompressedKVCache else { return }
    let (d, heads) = (shape.headDim, shape.kvHeads)
    for l in 0..<shape.geometry.layers {
      let layer = compressed.layers[l]
      // The rows are compared only where the counts agree (else the comparison would index past
      // the prediction's rows).
      guard layer.tokens == t.resident, t.positions?.allSatisfy({ $0.count == t.resident }) ?? true else {
        Issue.record("layer \(l): \(layer.tokens) rows, \(t.resident) predicted: \(context)")
        return
      }
      #expect(layer.denseTokens == t.dense, "layer \(l) dense rows: \(context)")
      if let quantization = spec.quantization {
        #expect(layer.denseTokens < quantization.residual, "unquantized rows: \(context)")
      }
      let keys = compressed.rowsInCacheOrder(l), values = compressed.rowsInCacheOrder(l, values: true)
      let held = layer.tokens
      let appended = t.keys[l].count / (heads * d)
      for h in 0..<heads {
        var seen = Set<Int>()
        // R-KV: which appended token a key is (keys are random: no two alike).
        var tokenOfKey: [[Float]: Int] = [:]
        if t.positions == nil {
          for p in 0..<appended { tokenOfKey[Array(t.keys[l][((p * heads + h) * d)..<((p * heads + h + 1) * d)])] = p }
        }
        for slot in 0..<held {
          let got = (h * held + slot) * d
          let position: Int
          if let positions = t.positions {
            position = positions[h][slot]
          } else {
            guard slot >= layer.quantizedTokens else { continue }
            guard let found = tokenOfKey[Array(keys[got..<(got + d)])] else {
              Issue.record("layer \(l) head \(h) slot \(slot): a key no token had: \(context)")
              continue
            }
            #expect(seen.insert(found).inserted, "token \(found) held twice: \(context)")
            position = found
          }
          let want = ((position * heads + h) * d)..<((position * heads + h + 1) * d)
          if slot < layer.quantizedTokens, let q = spec.quantization {
            for (source, rows) in [(t.keys[l], keys), (t.values[l], values)] {
              for g in 0..<(d / q.groupSize) {
                let group = source[(want.lowerBound + g * q.groupSize)..<(want.lowerBound + (g + 1) * q.groupSize)]
                let bound = quantizationBound(group, bits: q.bits, meta: compressed.metaType)
                for (i, x) in group.enumerated() where abs(rows[got + g * q.groupSize + i] - x) > bound {
                  Issue.record("layer \(l) head \(h) slot \(slot) (token \(position)): \(rows[got + g * q.groupSize + i]) vs \(x), bound \(bound): \(context)")
                  return
                }
              }
            }
          } else {
            guard Array(keys[got..<(got + d)]) == Array(t.keys[l][want]), Array(values[got..<(got + d)]) == Array(t.values[l][want]) else {
              Issue.record("layer \(l) head \(h) slot \(slot): not token \(position)'s key and value: \(context)")
              return
            }
          }
        }
      }
    }
  }

  // MARK: Properties

  @Test func randomOperationsKeepBytesTokensRowsAndAttentionExact() async throws {
    let shapes = Gen.int(in: 0...(Self.shapes.count - 1)).map { Self.shapes[$0] }
    await propertyCheck(count: 40, input: Self.specs, shapes, Self.elementTypes, Self.operations) { text, shape, type, operations in
      let spec = try KVCacheSpec.parse(text)
      guard spec.quantization.map({ shape.headDim % $0.groupSize == 0 }) ?? true else { return }
      let context = "\(text), \(type), \(shape)"
      var random = TestRandom(seed: UInt64(operations.count * 7919 + text.count))
      let pool = ThreadPool(threadCount: 2)
      let scratch = AttentionScratch(threadCount: 2)
      let geometry = shape.geometry
      let (width, queryWidth) = (geometry.rowWidth, shape.queryHeads * shape.headDim)
      var caches = [
        Tracked(
          cache: try spec.makeCache(geometry: geometry, queryHeads: shape.queryHeads, elementType: type),
          keys: Array(repeating: [], count: geometry.layers), values: Array(repeating: [], count: geometry.layers),
          positions: Array(repeating: [], count: geometry.kvHeads))
      ]
      for (step, operation) in operations.enumerated() {
        let here = "\(context), step \(step) \(operation)"
        switch operation {
        case .fork(let index):
          guard caches.count < 4 else { continue }
          let original = caches[index % caches.count]
          var fork = original
          fork.cache = original.cache.fork()
          // A fork holds what the original does and shares what its type says it shares: every
          // block of a full cache, the quantized blocks of a compressed one.
          #expect(fork.cache.residentBytes == original.cache.residentBytes, "fork bytes: \(here)")
          let copied = (original.cache as? CompressedKVCache)?.layers.reduce(0) { $0 + $1.dense.byteCount + $1.queries.byteCount + $1.marks.byteCount + $1.totals.byteCount } ?? 0
          #expect(Self.storageBytes([original.cache, fork.cache]) == original.cache.residentBytes + copied, "fork sharing: \(here)")
          caches.append(fork)
        case .pass(let index, let count):
          let i = index % caches.count
          // Rows of the other caches, to see that a pass on one (maybe sharing storage) leaves
          // them alone.
          let others = caches.indices.filter { $0 != i }.map { j in
            (j, (0..<geometry.layers).map { Self.heldRows(caches[j], layer: $0, values: false, shape: shape) })
          }
          let before = caches[i].cache.nextPosition
          for l in 0..<geometry.layers {
            let keys = (0..<count * width).map { _ in random.signedUnit() * 2 }
            let values = (0..<count * width).map { _ in random.signedUnit() }
            let queries = (0..<count * queryWidth).map { _ in random.signedUnit() * 2 }
            caches[i].cache.engine.append(layer: l, keys: keys, values: values, count: count)
            caches[i].keys[l] += keys.map { Self.stored($0, type) }
            caches[i].values[l] += values.map { Self.stored($0, type) }
            var output = [Float](repeating: .nan, count: count * queryWidth)
            caches[i].cache.engine.attend(
              layer: l, queries: queries, rows: count, shape: shape.attention, output: &output, pool: pool, scratch: scratch)
            let heldKeys = Self.heldRows(caches[i], layer: l, values: false, shape: shape)
            let held = heldKeys.count / width
            #expect(held == caches[i].resident + count, "rows held during the pass: \(here)")
            let expected = Self.referenceAttention(
              queries: queries, rows: count, keys: heldKeys, values: Self.heldRows(caches[i], layer: l, values: true, shape: shape),
              held: held, shape: shape)
            // NaN (an output never written) counts as an infinite difference; `max()` would skip it.
            let worst = zip(output, expected).reduce(Float(0)) { worst, pair in
              let difference = abs(pair.0 - pair.1)
              return difference.isNaN ? .infinity : max(worst, difference)
            }
            #expect(worst <= 1e-5, "attention, layer \(l): |Δ| \(worst) over \(held) rows: \(here)")
          }
          caches[i].positions = caches[i].positions.map { $0.map { $0 + Array(before..<(before + count)) } }
          caches[i].cache.engine.commit(tokens: count)
          Self.predictCommit(&caches[i], spec: spec, count: count, before: before)
          #expect(caches[i].cache.nextPosition == before + count)
          Self.checkContents(caches[i], spec: spec, shape: shape, context: here)
          for (j, rows) in others {
            for l in 0..<geometry.layers {
              #expect(Self.heldRows(caches[j], layer: l, values: false, shape: shape) == rows[l], "cache \(j) changed: \(here)")
            }
          }
        }
      }
    }
  }

  /// For the generator's schedule — a prompt prefilled in chunks, G − 1 forks, then one token per
  /// sample and pass — the memory model's replay equals what the caches hold together (storage
  /// shared by forks once), after every pass at most its peak, exactly its peak at the largest,
  /// and its token counts.
  @Test func memoryModelPredictsTheCaches() async throws {
    // No decoding at all (a one-token generation: the first token is never fed back) one time in
    // eight.
    let schedule = zip(Gen.int(in: 1...160), Gen.int(in: 1...64), Gen.int(in: -10...80).map { max(0, $0) }, Gen.int(in: 1...4))
    let shapes = Gen.int(in: 0...(Self.shapes.count - 1)).map { Self.shapes[$0] }
    await propertyCheck(count: 40, input: Self.specs, shapes, Self.elementTypes, schedule) { text, shape, type, plan in
      let (prompt, chunk, decode, samples) = plan
      let spec = try KVCacheSpec.parse(text)
      guard spec.quantization.map({ shape.headDim % $0.groupSize == 0 }) ?? true else { return }
      let context = "\(text), \(type), \(shape), prompt \(prompt) in chunks of \(chunk), \(decode) decoded, G=\(samples)"
      let geometry = shape.geometry
      let pool = ThreadPool(threadCount: 2)
      let scratch = AttentionScratch(threadCount: 2)
      var random = TestRandom(seed: UInt64(prompt * 131 + decode))
      let (width, queryWidth) = (geometry.rowWidth, shape.queryHeads * shape.headDim)
      var peak = 0, longest = 0
      func pass(_ caches: [any KVCache], count: Int) {
        var output = [Float](repeating: 0, count: count * queryWidth)
        for l in 0..<geometry.layers {
          for cache in caches {
            let keys = (0..<count * width).map { _ in random.signedUnit() * 2 }
            let values = (0..<count * width).map { _ in random.signedUnit() }
            let queries = (0..<count * queryWidth).map { _ in random.signedUnit() * 2 }
            cache.engine.append(layer: l, keys: keys, values: values, count: count)
            cache.engine.attend(layer: l, queries: queries, rows: count, shape: shape.attention, output: &output, pool: pool, scratch: scratch)
            longest = max(longest, cache.residentTokens)
          }
        }
        peak = max(peak, KVCachePropertyTests.storageBytes(caches))
        for cache in caches { cache.engine.commit(tokens: count) }
        peak = max(peak, KVCachePropertyTests.storageBytes(caches))
      }
      let first = try spec.makeCache(geometry: geometry, queryHeads: shape.queryHeads, elementType: type)
      var start = 0
      while start < prompt {
        pass([first], count: min(chunk, prompt - start))
        start += chunk
      }
      let caches = [first] + (1..<samples).map { _ in first.fork() }
      peak = max(peak, Self.storageBytes(caches))
      for _ in 0..<decode { pass(caches, count: 1) }
      let usage = KVMemory.engineUsage(
        geometry: geometry, queryHeads: shape.queryHeads, spec: spec, elementType: type, promptTokens: prompt, tokens: decode,
        samples: samples, prefillChunk: chunk)
      let held = Self.storageBytes(caches)
      #expect(usage.bytes == held, "bytes: \(context)")
      #expect(usage.peakBytes == peak && peak >= held, "peak: \(context)")
      #expect(caches.allSatisfy { $0.residentTokens == usage.residentTokens }, "tokens: \(context)")
      #expect(usage.longestAttention == longest, "longest attention: \(context)")
      for cache in caches { #expect(cache.residentBytes == Self.recount(cache), "recount: \(context)") }
    }
  }
}
