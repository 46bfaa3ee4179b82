import BitBudgetKernels
import Dispatch

/// A KV cache that evicts (an `EvictionPolicy`: StreamingLLM, R-KV, SnapKV, …), quantizes (HQQ),
/// or both: one mechanism for every non-full `KVCacheSpec`.
///
/// Per layer it holds, in cache order, zero or more immutable blocks of HQQ-quantized rows
/// followed by one block of dense rows (bf16/f16/f32, in the attention kernel's layout). New
/// tokens go to the dense block. When a forward pass ends (`commit`):
/// - **compression** (eviction policies): after a multi-token pass (a prefill chunk; a long prompt
///   is thus compressed chunk by chunk, which bounds memory and scoring), and at each decode
///   step whose preceding length was a multiple of `interval` (R-KV's `divide_length` schedule:
///   the step's own attention still saw every token), a layer holding at least `budget` tokens
///   keeps the policy's `budget` rows per KV head, in the policy's order;
/// - **quantization**: after a prefill pass, when the dense rows reach `residual`, or whenever a
///   compression ran, every dense row is quantized into a new block (per token and head, HQQ axis
///   1), so at most `residual − 1` of the newest tokens are exact, as in transformers' HQQ cache.
///   Rows are quantized once: transformers re-quantizes the dequantized history at each flush,
///   which for per-token groups only re-rounds the 16-bit scales and zeros.
///
/// Memory (`residentBytes`, exact): the dense block (`capacity` token slots, a multiple of 32),
/// the quantized blocks (per token slot and head `2 · headDim · bits / 8` bytes of key and value
/// codes plus a scale and a zero per group for each, as f16 — f32 when the cache is f32; slots
/// rounded up to 32 per block), the policy's window of the last `queryWindow` queries (f32), its
/// marks (`markBytesPerHead` per KV head: R-KV's `KeyMarks`, one per kept row) and, for a policy
/// that accumulates attention (H2O), one f32 total per token slot and KV head. With
/// eviction the rows per layer stay below `budget + interval` (after a prefill longer than that,
/// until its compression at the end of the pass).
///
/// Forks share the quantized blocks (never written after creation) and copy the dense block, the
/// query window, the marks and the attention totals.
public final class CompressedKVCache: KVCache, KVCacheStorage {
  public let geometry: KVCacheGeometry
  public let spec: KVCacheSpec
  public let elementType: ElementType
  /// The type of the quantization scales and zeros.
  public let metaType: ElementType
  public let queryHeads: Int
  public private(set) var nextPosition = 0
  /// Wall time spent compressing and quantizing at the end of single-token (decode) forward
  /// passes — scoring, moving rows, HQQ — in seconds since creation.
  public private(set) var decodeMaintenanceSeconds = 0.0
  /// The pool of the last `attend` call (or of the cache this one was forked from); compression
  /// scores layers on it.
  private weak var pool: ThreadPool?
  private(set) var layers: [Layer]

  /// Storage that is freed with its last reference.
  final class Allocation {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int) {
      self.byteCount = byteCount
      pointer = .allocate(byteCount: max(byteCount, 1), alignment: 64)
      pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    deinit { pointer.deallocate() }
  }

  /// Quantized tokens in `QuantizedKVRows`' layout, `tokens` of `capacity` slots (a multiple of
  /// 32), in one allocation; never written after it is built.
  final class QuantizedBlock {
    let storage: Allocation
    let rows: QuantizedKVRows
    let tokens: Int
    let capacity: Int

    /// A zeroed block for `tokens` tokens, sized by the plan (capacity rounded up to 32 slots).
    init(tokens: Int, plan: LayerPlan, quantization: KVQuantization) {
      self.tokens = tokens
      capacity = LayerPlan.roundUp(tokens)
      storage = Allocation(byteCount: plan.blockBytes(tokens: tokens))
      rows = QuantizedKVRows(
        base: storage.pointer, kvHeads: plan.geometry.kvHeads, headDim: plan.geometry.headDim, capacity: capacity,
        bits: quantization.bits, groupSize: quantization.groupSize, metaType: plan.metaType)
    }

    var segment: KVSegment { KVSegment(quantized: rows, tokens: tokens) }
  }

  struct Layer {
    /// The counts and sizes this layer's storage follows (`LayerPlan`).
    var plan: LayerPlan
    var quantized: [QuantizedBlock] = []
    var dense: Allocation
    /// The last `window` queries, oldest first, `[count][queryHeads · headDim]` f32.
    var queries: Allocation
    var queryCount = 0
    /// What the last compression learned about each kept row, `[kvHeads][budget]` `KeyMarks`
    /// (R-KV; the kept rows are the first `budget` in cache order, later rows are unmarked).
    var marks: Allocation
    /// With a policy that accumulates attention: per KV head and row in cache order, the
    /// attention weight it has received, `[kvHeads][plan.totalsCapacity]` f32.
    var totals: Allocation
    /// What the attention kernel reads, rebuilt in place at each call (its storage is reused).
    var segments: [KVSegment] = []

    var denseTokens: Int { plan.denseTokens }
    var denseCapacity: Int { plan.denseCapacity }
    var quantizedTokens: Int { plan.quantizedTokens }
    var tokens: Int { plan.tokens }
  }

  init(spec: KVCacheSpec, geometry: KVCacheGeometry, queryHeads: Int, elementType: ElementType) {
    self.spec = spec
    self.geometry = geometry
    self.queryHeads = queryHeads
    self.elementType = elementType
    let plan = LayerPlan(geometry: geometry, queryHeads: queryHeads, spec: spec, elementType: elementType)
    metaType = plan.metaType
    layers = (0..<geometry.layers).map { _ in
      Layer(
        plan: plan, dense: Allocation(byteCount: plan.denseBytes(capacity: plan.denseCapacity)),
        queries: Allocation(byteCount: plan.queryWindowBytes), marks: Allocation(byteCount: plan.markBytes),
        totals: Allocation(byteCount: plan.totalsBytes))
    }
  }

  private init(copying other: CompressedKVCache) {
    geometry = other.geometry
    spec = other.spec
    elementType = other.elementType
    metaType = other.metaType
    queryHeads = other.queryHeads
    nextPosition = other.nextPosition
    pool = other.pool
    layers = other.layers
    for l in layers.indices {
      for keyPath in [\Layer.dense, \Layer.queries, \Layer.marks, \Layer.totals] {
        let original = layers[l][keyPath: keyPath]
        let copy = Allocation(byteCount: original.byteCount)
        copy.pointer.copyMemory(from: original.pointer, byteCount: original.byteCount)
        layers[l][keyPath: keyPath] = copy
      }
    }
  }

  public var residentTokens: Int { layers.map(\.tokens).max() ?? 0 }

  public var residentBytes: Int {
    var total = 0
    forEachStorage { total += $1 }
    return total
  }

  package func forEachStorage(_ body: (ObjectIdentifier, Int) -> Void) {
    for layer in layers {
      body(ObjectIdentifier(layer.dense), layer.dense.byteCount)
      if layer.queries.byteCount > 0 { body(ObjectIdentifier(layer.queries), layer.queries.byteCount) }
      if layer.marks.byteCount > 0 { body(ObjectIdentifier(layer.marks), layer.marks.byteCount) }
      if layer.totals.byteCount > 0 { body(ObjectIdentifier(layer.totals), layer.totals.byteCount) }
      for block in layer.quantized { body(ObjectIdentifier(block.storage), block.storage.byteCount) }
    }
  }

  public func fork() -> any KVCache { CompressedKVCache(copying: self) }

  // MARK: Dense rows

  func denseSegment(_ layer: Layer) -> KVSegment {
    denseSegment(layer.dense, tokens: layer.denseTokens, capacity: layer.denseCapacity)
  }

  private func denseSegment(_ dense: Allocation, tokens: Int, capacity: Int) -> KVSegment {
    let keysBytes = geometry.rowWidth * capacity * elementType.byteCount
    return KVSegment(
      keys: dense.pointer, values: dense.pointer + keysBytes, tokens: tokens, capacity: capacity, elementType: elementType)
  }

  /// Moves the first `count` dense rows of a block of `oldCapacity` slots into a new block of the
  /// plan's capacity.
  private func resizeDense(_ l: Int, from oldCapacity: Int, rows count: Int) {
    let old = denseSegment(layers[l].dense, tokens: count, capacity: oldCapacity)
    let newCapacity = layers[l].denseCapacity
    let (d, heads, size) = (geometry.headDim, geometry.kvHeads, elementType.byteCount)
    let allocation = Allocation(byteCount: layers[l].plan.denseBytes(capacity: newCapacity))
    let keys = allocation.pointer
    let values = allocation.pointer + geometry.rowWidth * newCapacity * size
    for h in 0..<heads {
      for x in 0..<d {
        (keys + ((h * d + x) * newCapacity) * size).copyMemory(from: old.keys + ((h * d + x) * old.capacity) * size, byteCount: count * size)
      }
      (values + (h * newCapacity * d) * size).copyMemory(from: old.values + (h * old.capacity * d) * size, byteCount: count * d * size)
    }
    layers[l].dense = allocation
  }

  package func append(layer l: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int) {
    let (held, oldCapacity) = (layers[l].denseTokens, layers[l].denseCapacity)
    let (tokensBefore, oldTotals) = (layers[l].tokens, layers[l].plan.totalsCapacity)
    layers[l].plan.append(count)
    if layers[l].denseCapacity != oldCapacity { resizeDense(l, from: oldCapacity, rows: held) }
    // New rows' totals are 0: slots past the held rows are never written (a totals block is
    // always a fresh, zeroed allocation filled only up to the rows it holds).
    if layers[l].plan.totalsCapacity != oldTotals {
      gatherTotals(l, rows: (0..<geometry.kvHeads).map { h in (0..<tokensBefore).map { h * oldTotals + $0 } }, from: oldTotals)
    }
    let segment = denseSegment(layers[l])
    let (d, width, capacity) = (geometry.headDim, geometry.rowWidth, layers[l].denseCapacity)
    let keyBase = UnsafeMutableRawPointer(mutating: segment.keys)
    let valueBase = UnsafeMutableRawPointer(mutating: segment.values)
    for t in 0..<count {
      let slot = held + t
      for h in 0..<geometry.kvHeads {
        storeConverted(keys + t * width + h * d, count: d, to: keyBase, at: h * d * capacity + slot, stride: capacity, as: elementType)
        storeConverted(values + t * width + h * d, count: d, to: valueBase, at: (h * capacity + slot) * d, as: elementType)
      }
    }
  }

  package func attend(
    layer l: Int, queries: UnsafePointer<Float>, rows: Int, shape: AttentionShape,
    output: UnsafeMutablePointer<Float>, pool: ThreadPool, scratch: AttentionScratch
  ) {
    self.pool = pool
    _ = attentionSegments(layer: l, queries: queries, rows: rows)
    let visibleBefore = layers[l].tokens - rows
    layers[l].segments.withUnsafeBufferPointer { segments in
      Attention.attend(
        queries: queries, rows: rows, visibleBefore: visibleBefore, segments: segments, shape: shape,
        output: output, pool: pool, scratch: scratch)
    }
  }

  /// The quantized blocks (shared with forks made after them) and the dense block; remembers the
  /// queries R-KV scores with.
  package func attentionSegments(layer l: Int, queries: UnsafePointer<Float>, rows: Int) -> [KVSegment]? {
    rememberQueries(l, queries, rows: rows)
    layers[l].segments.removeAll(keepingCapacity: true)
    for block in layers[l].quantized { layers[l].segments.append(block.segment) }
    layers[l].segments.append(denseSegment(layers[l]))
    if layers[l].plan.totalsCapacity > 0 {
      let shape = AttentionShape(queryHeads: queryHeads, kvHeads: geometry.kvHeads, headDim: geometry.headDim)
      let totals = layers[l].totals.pointer.assumingMemoryBound(to: Float.self)
      layers[l].segments.withUnsafeBufferPointer { segments in
        Attention.addWeights(
          queries: queries, rows: rows, visibleBefore: layers[l].tokens - rows, segments: segments, shape: shape,
          totals: totals, stride: layers[l].plan.totalsCapacity, pool: pool)
      }
    }
    return layers[l].segments
  }

  private func rememberQueries(_ l: Int, _ queries: UnsafePointer<Float>, rows: Int) {
    let window = spec.eviction?.queryWindow ?? 0
    guard window > 0 else { return }
    let width = queryHeads * geometry.headDim
    let incoming = min(rows, window)
    let kept = min(layers[l].queryCount, window - incoming)
    let base = layers[l].queries.pointer.assumingMemoryBound(to: Float.self)
    // Oldest first: shift the kept tail to the front, then the newest rows after it.
    base.update(from: base + (layers[l].queryCount - kept) * width, count: kept * width)
    (base + kept * width).update(from: queries + (rows - incoming) * width, count: incoming * width)
    layers[l].queryCount = kept + incoming
  }

  // MARK: Compression

  package func commit(tokens: Int) {
    let start = DispatchTime.now().uptimeNanoseconds
    defer {
      if tokens == 1 { decodeMaintenanceSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
    }
    nextPosition += tokens
    // What each layer's plan does at this commit; the layers run it below, then take the plan.
    var plans = layers.map(\.plan)
    let steps = plans.indices.map { plans[$0].commit(tokens) }
    // Selections only read the cache, so the layers are scored in parallel (on the pool that
    // ran this cache's attention); moving rows follows, layer by layer.
    var selections = [Selection?](repeating: nil, count: layers.count)
    if let eviction = spec.eviction {
      let due = layers.indices.filter { steps[$0].compresses }
      selections.withUnsafeMutableBufferPointer { results in
        let run = { (index: Int) in results[due[index]] = self.selectRows(due[index], eviction) }
        if let pool { pool.parallelFor(due.count, run) } else { due.indices.forEach(run) }
      }
      // The plan counts on every due layer keeping `budget` rows (it holds at least that many).
      for l in due { precondition(selections[l] != nil, "layer \(l) was due to compress but holds fewer than the budget") }
    }
    for l in layers.indices {
      let kept = selections[l]?.rows
      if let selection = selections[l] { remember(l, selection) }
      if let quantization = spec.quantization, steps[l].quantizes {
        quantize(l, kept: kept, quantization)
      } else if let kept {
        gatherDense(l, kept: kept)
      }
      let (oldCapacity, oldTotals) = (layers[l].denseCapacity, layers[l].plan.totalsCapacity)
      layers[l].plan = plans[l]
      if layers[l].denseCapacity != oldCapacity { resizeDense(l, from: oldCapacity, rows: layers[l].denseTokens) }
      if let kept, oldTotals > 0 {
        gatherTotals(l, rows: kept.enumerated().map { h, rows in rows.map { h * oldTotals + $0 } }, from: oldTotals)
      }
    }
  }

  /// Replaces the attention totals by a block of the plan's capacity whose head `h` holds, in
  /// order, the old entries `rows[h]` (indices into the old `[kvHeads][oldCapacity]` array).
  private func gatherTotals(_ l: Int, rows: [[Int]], from oldCapacity: Int) {
    let capacity = layers[l].plan.totalsCapacity
    let allocation = Allocation(byteCount: layers[l].plan.totalsBytes)
    let old = layers[l].totals.pointer.assumingMemoryBound(to: Float.self)
    let new = allocation.pointer.assumingMemoryBound(to: Float.self)
    for (h, indices) in rows.enumerated() {
      for (slot, index) in indices.enumerated() { new[h * capacity + slot] = old[index] }
    }
    layers[l].totals = allocation
  }

  /// Keys (or values) of layer `l` in cache order as f32 `[kvHeads][tokens][headDim]`.
  func rowsInCacheOrder(_ l: Int, values: Bool = false) -> [Float] {
    let (d, heads, total) = (geometry.headDim, geometry.kvHeads, layers[l].tokens)
    var rows = [Float](repeating: 0, count: heads * total * d)
    var run = [Float](repeating: 0, count: layers[l].denseTokens)
    rows.withUnsafeMutableBufferPointer { buffer in
      guard let out = buffer.baseAddress else { return }
      for h in 0..<heads {
        var t = 0
        for block in layers[l].quantized {
          for r in 0..<block.tokens {
            for x in 0..<d {
              out[(h * total + t) * d + x] =
                values ? block.rows.value(kvHead: h, token: r, dimension: x) : block.rows.key(kvHead: h, token: r, dimension: x)
            }
            t += 1
          }
        }
        // Dense rows are converted a run at a time: keys one dimension of every token, values
        // one token's row.
        let dense = denseSegment(layers[l])
        if values {
          for r in 0..<dense.tokens {
            loadConverted(from: dense.values, at: (h * dense.capacity + r) * d, count: d, as: elementType, into: out + (h * total + t + r) * d)
          }
        } else {
          run.withUnsafeMutableBufferPointer { run in
            guard let run = run.baseAddress else { return }
            for x in 0..<d {
              loadConverted(from: dense.keys, at: (h * d + x) * dense.capacity, count: dense.tokens, as: elementType, into: run)
              for r in 0..<dense.tokens { out[(h * total + t + r) * d + x] = run[r] }
            }
          }
        }
      }
    }
    return rows
  }

  /// The rows a compression keeps per KV head, and per cache row whether no other key resembled it.
  struct Selection: Equatable {
    var rows: [[Int]]
    var isolated: [Bool]
  }

  /// Reads the cache only (the layers are scored in parallel).
  func selectRows(_ l: Int, _ eviction: any EvictionPolicy) -> Selection? {
    let total = layers[l].tokens
    guard total >= eviction.budget else { return nil }
    let keys = rowsInCacheOrder(l)
    let (d, window, heads) = (geometry.headDim, eviction.queryWindow, geometry.kvHeads)
    // The marks as the scorer wants them, [kvHeads][total]: the first rows' from the last
    // compression, the rest unmarked.
    let marked = min(eviction.markBytesPerHead, total)
    var marks = [KeyMarks](repeating: [], count: heads * total)
    let stored = layers[l].marks.pointer.assumingMemoryBound(to: UInt8.self)
    for h in 0..<heads {
      for r in 0..<marked { marks[h * total + r] = KeyMarks(rawValue: stored[h * eviction.markBytesPerHead + r]) }
    }
    var isolated = [Bool](repeating: false, count: heads * total)
    // Queries as the scorer wants them: [queryHeads][window][headDim].
    var queries = [Float](repeating: 0, count: queryHeads * window * d)
    let width = queryHeads * d
    let recorded = layers[l].queries.pointer.assumingMemoryBound(to: Float.self)
    for i in 0..<window {
      for h in 0..<queryHeads {
        for x in 0..<d { queries[(h * window + i) * d + x] = recorded[i * width + h * d + x] }
      }
    }
    // Attention totals as the policy wants them, [kvHeads][total].
    var totals = [Float]()
    if layers[l].plan.totalsCapacity > 0 {
      let stored = layers[l].totals.pointer.assumingMemoryBound(to: Float.self)
      for h in 0..<heads { totals += UnsafeBufferPointer(start: stored + h * layers[l].plan.totalsCapacity, count: total) }
    }
    let rows = keys.withUnsafeBufferPointer { k in
      queries.withUnsafeBufferPointer { q in
        marks.withUnsafeBufferPointer { m in
          isolated.withUnsafeMutableBufferPointer { i in
            totals.withUnsafeBufferPointer { a in
              eviction.keptRows(
                EvictionRequest(
                  keys: k.baseAddress!, length: total, kvHeads: heads, headDim: d, queries: window > 0 ? q.baseAddress : nil,
                  queryHeads: queryHeads, marks: m.baseAddress, isolated: i.baseAddress,
                  attentionTotals: totals.isEmpty ? nil : a.baseAddress))
            }
          }
        }
      }
    }
    // The plan (and the memory model) count on exactly `budget` distinct rows per head.
    precondition(
      rows.count == heads
        && rows.allSatisfy { $0.count == eviction.budget && $0.allSatisfy { (0..<total).contains($0) } && Set($0).count == $0.count },
      "\(type(of: eviction)).keptRows must return \(eviction.budget) distinct rows in 0..<\(total) for each of \(heads) KV heads")
    return Selection(rows: rows, isolated: isolated)
  }

  /// Marks the kept rows for the next compression. With quantization, rows that are dense now
  /// are quantized after the compression, so their keys change: they stay unmarked.
  private func remember(_ l: Int, _ selection: Selection) {
    guard let eviction = spec.eviction, eviction.markBytesPerHead > 0 else { return }
    let (stride, total, quantizedTokens) = (eviction.markBytesPerHead, layers[l].tokens, layers[l].quantizedTokens)
    let stored = layers[l].marks.pointer.assumingMemoryBound(to: UInt8.self)
    for (h, rows) in selection.rows.enumerated() {
      for (slot, row) in rows.prefix(stride).enumerated() {
        let settled = spec.quantization == nil || row < quantizedTokens
        let mark: KeyMarks = !settled ? [] : selection.isolated[h * total + row] ? [.settled, .isolated] : .settled
        stored[h * stride + slot] = mark.rawValue
      }
    }
  }

  /// Keeps `kept[h]` (cache-order rows, all dense) of each head, in that order.
  private func gatherDense(_ l: Int, kept: [[Int]]) {
    // In place, one head at a time through a copy of that head's rows: decode-time compressions
    // allocate nothing but the copy.
    let segment = denseSegment(layers[l])
    let (d, size, held, capacity) = (geometry.headDim, elementType.byteCount, layers[l].denseTokens, layers[l].denseCapacity)
    let keys = UnsafeMutableRawPointer(mutating: segment.keys)
    let values = UnsafeMutableRawPointer(mutating: segment.values)
    let copy = UnsafeMutableRawPointer.allocate(byteCount: max(1, 2 * d * held * size), alignment: 64)
    defer { copy.deallocate() }
    let copiedValues = copy + d * held * size
    for (h, rows) in kept.enumerated() {
      for x in 0..<d {
        (copy + x * held * size).copyMemory(from: keys + (h * d + x) * capacity * size, byteCount: held * size)
      }
      copiedValues.copyMemory(from: values + h * capacity * d * size, byteCount: held * d * size)
      // Keys are dimension-major: one typed gather per dimension (a copy call per element
      // would cost more than the whole R-KV score).
      for x in 0..<d {
        let from = copy + x * held * size, to = keys + (h * d + x) * capacity * size
        if size == 2 {
          Self.gather(rows, from: from.assumingMemoryBound(to: UInt16.self), to: to.assumingMemoryBound(to: UInt16.self))
        } else {
          Self.gather(rows, from: from.assumingMemoryBound(to: UInt32.self), to: to.assumingMemoryBound(to: UInt32.self))
        }
      }
      for (slot, row) in rows.enumerated() {
        (values + ((h * capacity + slot) * d) * size).copyMemory(from: copiedValues + row * d * size, byteCount: d * size)
      }
    }
  }

  @inline(__always)
  private static func gather<Element>(_ rows: [Int], from: UnsafePointer<Element>, to: UnsafeMutablePointer<Element>) {
    for (slot, row) in rows.enumerated() { to[slot] = from[row] }
  }

  /// Quantizes into a new block: `kept` rows (cache order, across all blocks) when given, which
  /// then replace everything; else the dense rows, appended after the existing blocks. Rows that
  /// are already quantized are copied code by code, not re-quantized.
  private func quantize(_ l: Int, kept: [[Int]]?, _ quantization: KVQuantization) {
    let (d, heads) = (geometry.headDim, geometry.kvHeads)
    let quantizedTokens = layers[l].quantizedTokens
    let rows = kept ?? Array(repeating: Array(quantizedTokens..<layers[l].tokens), count: heads)
    let count = rows[0].count
    guard count > 0 else { return }
    let block = QuantizedBlock(tokens: count, plan: layers[l].plan, quantization: quantization)
    let target = block.rows
    let dense = denseSegment(layers[l])
    let (bits, groupSize, groups) = (quantization.bits, quantization.groupSize, d / quantization.groupSize)
    // Where each cache-order row lives: (block, row) for quantized rows.
    var sources: [(QuantizedBlock, Int)] = []
    sources.reserveCapacity(quantizedTokens)
    for existing in layers[l].quantized {
      for r in 0..<existing.tokens { sources.append((existing, r)) }
    }
    let row = UnsafeMutablePointer<Float>.allocate(capacity: d)
    let codes = UnsafeMutablePointer<UInt8>.allocate(capacity: d)
    let scales = UnsafeMutablePointer<Float>.allocate(capacity: groups)
    let zeros = UnsafeMutablePointer<Float>.allocate(capacity: groups)
    defer {
      row.deallocate(); codes.deallocate(); scales.deallocate(); zeros.deallocate()
    }
    let mutable = { (pointer: UnsafeRawPointer) in UnsafeMutableRawPointer(mutating: pointer) }
    let metaBytes = metaType.byteCount
    let valueRowBytes = d * bits / 8
    let perByte = 8 / bits
    let mask = UInt8((1 << bits) - 1)
    // The new block is zeroed, so codes are OR-ed into place.
    func putKeyCode(_ code: UInt8, head h: Int, slot: Int, dimension x: Int) {
      let (run, _) = target.keyCodeLocation(kvHead: h, token: slot, dimension: x)
      let byte = mutable(run) + slot / perByte
      byte.storeBytes(of: byte.load(as: UInt8.self) | (code << UInt8((slot % perByte) * bits)), as: UInt8.self)
    }
    /// Quantizes a dense key or value row into `slot` of the new block.
    func quantizeDense(_ r: Int, head h: Int, slot: Int, isKey: Bool) {
      for x in 0..<d {
        row[x] = isKey ? dense.key(kvHead: h, token: r, dimension: x, headDim: d) : dense.value(kvHead: h, token: r, dimension: x, headDim: d)
      }
      HQQ.quantize(row, count: d, bits: bits, groupSize: groupSize, axis: 1, codes: codes, scales: scales, zeros: zeros)
      if isKey {
        for x in 0..<d { putKeyCode(codes[x], head: h, slot: slot, dimension: x) }
      } else {
        let (run, _) = target.valueCodeLocation(kvHead: h, token: slot, dimension: 0)
        for x in 0..<d { QuantizedKVRows.setCode(mutable(run), x, codes[x], bits: bits) }
      }
      for g in 0..<groups {
        let index = isKey ? target.keyMetaIndex(kvHead: h, token: slot, group: g) : target.valueMetaIndex(kvHead: h, token: slot, group: g)
        storeConverted(scales + g, count: 1, to: mutable(isKey ? target.keyScales : target.valueScales), at: index, as: metaType)
        storeConverted(zeros + g, count: 1, to: mutable(isKey ? target.keyZeros : target.valueZeros), at: index, as: metaType)
      }
    }
    for h in 0..<heads {
      for (slot, source) in rows[h].enumerated() {
        guard source < quantizedTokens else {
          quantizeDense(source - quantizedTokens, head: h, slot: slot, isKey: true)
          quantizeDense(source - quantizedTokens, head: h, slot: slot, isKey: false)
          continue
        }
        // Already quantized: codes and metadata move as bytes.
        let (from, r) = sources[source]
        for x in 0..<d {
          let (run, index) = from.rows.keyCodeLocation(kvHead: h, token: r, dimension: x)
          let code = (run.load(fromByteOffset: index / perByte, as: UInt8.self) >> UInt8((index % perByte) * bits)) & mask
          putKeyCode(code, head: h, slot: slot, dimension: x)
        }
        let (fromValues, _) = from.rows.valueCodeLocation(kvHead: h, token: r, dimension: 0)
        let (toValues, _) = target.valueCodeLocation(kvHead: h, token: slot, dimension: 0)
        mutable(toValues).copyMemory(from: fromValues, byteCount: valueRowBytes)
        let valueFrom = from.rows.valueMetaIndex(kvHead: h, token: r, group: 0) * metaBytes
        let valueTo = target.valueMetaIndex(kvHead: h, token: slot, group: 0) * metaBytes
        mutable(target.valueScales + valueTo).copyMemory(from: from.rows.valueScales + valueFrom, byteCount: groups * metaBytes)
        mutable(target.valueZeros + valueTo).copyMemory(from: from.rows.valueZeros + valueFrom, byteCount: groups * metaBytes)
        for g in 0..<groups {
          let keyFrom = from.rows.keyMetaIndex(kvHead: h, token: r, group: g) * metaBytes
          let keyTo = target.keyMetaIndex(kvHead: h, token: slot, group: g) * metaBytes
          mutable(target.keyScales + keyTo).copyMemory(from: from.rows.keyScales + keyFrom, byteCount: metaBytes)
          mutable(target.keyZeros + keyTo).copyMemory(from: from.rows.keyZeros + keyFrom, byteCount: metaBytes)
        }
      }
    }
    if kept != nil { layers[l].quantized = [block] } else { layers[l].quantized.append(block) }
  }
}
