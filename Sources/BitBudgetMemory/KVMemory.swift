import BitBudgetEngine
import BitBudgetKernels

/// Bytes of the KV caches of G samples that share a prompt of `promptTokens` tokens and then
/// each hold `tokens` more.
///
/// `paper` convention (paper.md §3.2): 16-bit values, `2 · layers · kvHeads · headDim` per token,
/// the prompt not counted; eviction caps the tokens at `budget + interval`; HQQ stores
/// `bits/8 + 4/group` bytes per value beyond a 16-bit residual of `residual` tokens; G samples
/// cost G times one.
///
/// `engine` convention: a replay of what the engine's caches allocate (`FullKVCache`'s 64-token
/// blocks, `CompressedKVCache`'s dense block, quantized blocks, query window and policy marks), for the prompt
/// prefilled in chunks of `prefillChunk` tokens and the rest decoded one token per pass, with the
/// sharing of forked samples (full: the prompt's whole blocks; quantized blocks made before the
/// fork, while they last). It equals the caches' `residentBytes` to the byte at the end, and also
/// gives the largest value seen after any pass (`peakBytes`); allocations that live only inside a
/// pass (the compaction of a layer, a growing dense block's old copy) are not counted.
public enum KVMemory {
  public struct Usage: Sendable, Equatable {
    /// At the end.
    public var bytes: Int
    /// The most held after any forward pass (all samples).
    public var peakBytes: Int
    /// Tokens one sample's cache holds at the end (per layer).
    public var residentTokens: Int
    /// The most tokens one attention call reads (the attention scratch is held once it is > 0;
    /// its size does not depend on it).
    public var longestAttention: Int
  }

  public static func paperBytes(_ c: ModelConfig, spec: KVCacheSpec, tokens: Int, samples: Int) -> Double {
    let perToken = Double(2 * c.layerCount * c.kvHeads * c.headDim)
    var held = Double(tokens)
    if let eviction = spec.eviction { held = min(held, Double(eviction.budget + eviction.interval)) }
    guard let q = spec.quantization else { return Double(samples) * held * perToken * 2 }
    let residual = min(held, Double(q.residual))
    let quantized = held - residual
    return Double(samples) * perToken * (quantized * (Double(q.bits) / 8 + 4 / Double(q.groupSize)) + residual * 2)
  }

  /// The engine's allocation, replayed per layer (all layers hold the same counts).
  public static func engineUsage(
    geometry g: KVCacheGeometry, queryHeads: Int, spec: KVCacheSpec, elementType: ElementType,
    promptTokens: Int, tokens: Int, samples: Int, prefillChunk: Int = 256
  ) -> Usage {
    precondition(promptTokens >= 1 && tokens >= 0 && samples >= 1 && prefillChunk >= 1)
    if let q = spec.quantization, q.axis == 0 {
      // `RequantizingKVCache` holds a full cache; forks share its blocks until their first
      // re-quantization rebuilds every layer, after which each sample holds all its blocks.
      var usage = engineUsage(
        geometry: g, queryHeads: queryHeads, spec: .full, elementType: elementType, promptTokens: promptTokens, tokens: tokens,
        samples: samples, prefillChunk: prefillChunk)
      var residual = 0
      var start = 0
      while start < promptTokens {
        let count = min(prefillChunk, promptTokens - start)
        if start > 0 { residual = residual + count >= q.residual ? 0 : residual + count }
        start += count
      }
      if samples > 1 && tokens >= q.residual - residual {
        let blockBytes = 2 * g.rowWidth * FullKVCache.blockTokens * elementType.byteCount
        let blocks = (promptTokens + tokens + FullKVCache.blockTokens - 1) / FullKVCache.blockTokens
        usage.bytes = g.layers * samples * blocks * blockBytes
        usage.peakBytes = max(usage.peakBytes, usage.bytes)
      }
      return usage
    }
    if spec.isFull {
      let blockBytes = 2 * g.rowWidth * FullKVCache.blockTokens * elementType.byteCount
      let blocks = { (n: Int) in (n + FullKVCache.blockTokens - 1) / FullKVCache.blockTokens }
      // Forks share every block until they write: the prompt's whole blocks for good, its partial
      // last one until each sample's first decoded token (all of them when nothing is decoded).
      let shared = samples == 1 ? 0 : tokens > 0 ? promptTokens / FullKVCache.blockTokens : blocks(promptTokens)
      let perSample = blocks(promptTokens + tokens) - shared
      let bytes = g.layers * (shared + samples * perSample) * blockBytes
      // Before the samples diverge the prompt's blocks are all there is; after, the sum only grows.
      return Usage(bytes: bytes, peakBytes: max(bytes, g.layers * blocks(promptTokens) * blockBytes),
                   residentTokens: promptTokens + tokens, longestAttention: promptTokens + tokens)
    }
    var layer = CompressedLayer(geometry: g, queryHeads: queryHeads, spec: spec, elementType: elementType)
    var peak = 0
    var longest = 0
    var start = 0
    while start < promptTokens {
      let count = min(prefillChunk, promptTokens - start)
      layer.append(count)
      longest = max(longest, layer.tokens)
      peak = max(peak, layer.total(samples: 1))
      layer.commit(count)
      peak = max(peak, layer.total(samples: 1))
      start += count
    }
    // Forks share the blocks made so far; each sample then goes on alone.
    layer.markShared()
    // The forks exist (their dense blocks copied) before the first decode pass, or without one.
    peak = max(peak, layer.total(samples: samples))
    for _ in 0..<tokens {
      layer.append(1)
      longest = max(longest, layer.tokens)
      peak = max(peak, layer.total(samples: samples))
      layer.commit(1)
      peak = max(peak, layer.total(samples: samples))
    }
    return Usage(bytes: layer.total(samples: samples), peakBytes: peak,
                 residentTokens: layer.tokens, longestAttention: longest)
  }

  /// One layer of a `CompressedKVCache`, by counts; `bytes` are for all layers.
  struct CompressedLayer {
    let geometry: KVCacheGeometry
    let queryHeads: Int
    let spec: KVCacheSpec
    let elementType: ElementType
    let metaType: ElementType
    let steadyCapacity: Int
    var blocks: [(tokens: Int, shared: Bool)] = []
    var denseTokens = 0
    var denseCapacity: Int
    var queriesSeen = 0
    var position = 0

    init(geometry: KVCacheGeometry, queryHeads: Int, spec: KVCacheSpec, elementType: ElementType) {
      self.geometry = geometry
      self.queryHeads = queryHeads
      self.spec = spec
      self.elementType = elementType
      metaType = elementType == .f32 ? .f32 : .f16
      steadyCapacity = spec.denseSteadyTokens
      denseCapacity = steadyCapacity
    }

    static func roundUp(_ n: Int) -> Int { (n + 31) / 32 * 32 }

    var tokens: Int { blocks.reduce(0) { $0 + $1.tokens } + denseTokens }

    mutating func append(_ count: Int) {
      if denseTokens + count > denseCapacity { denseCapacity = Self.roundUp(denseTokens + count) }
      denseTokens += count
      queriesSeen += count
    }

    mutating func commit(_ count: Int) {
      let before = position
      position += count
      let isPrefill = count > 1
      // The tokens kept per head when this pass compresses, else nil.
      var kept: Int? = nil
      if let e = spec.eviction, isPrefill || before % e.interval == 0, queriesSeen >= e.queryWindow, tokens >= e.budget {
        kept = e.budget
      }
      if let q = spec.quantization {
        if kept != nil || isPrefill || denseTokens >= q.residual {
          let count = kept ?? denseTokens
          if count > 0 {
            if kept != nil { blocks = [(count, false)] } else { blocks.append((count, false)) }
            denseTokens = 0
            if denseCapacity > steadyCapacity { denseCapacity = steadyCapacity }
          }
        }
      } else if let kept {
        denseCapacity = Self.roundUp(max(kept, steadyCapacity))
        denseTokens = kept
      }
    }

    mutating func markShared() {
      for i in blocks.indices { blocks[i].shared = true }
    }

    func blockBytes(_ tokens: Int) -> Int {
      guard let q = spec.quantization else { return 0 }
      return QuantizedKVRows.byteCount(
        kvHeads: geometry.kvHeads, headDim: geometry.headDim, capacity: Self.roundUp(tokens), bits: q.bits,
        groupSize: q.groupSize, metaType: metaType)
    }

    /// Bytes of G samples on the same schedule, all layers: shared blocks once, the rest G times.
    func total(samples: Int) -> Int {
      let dense = 2 * geometry.rowWidth * denseCapacity * elementType.byteCount
      let queries = (spec.eviction?.queryWindow ?? 0) * queryHeads * geometry.headDim * 4
      let marks = (spec.eviction?.markBytesPerHead ?? 0) * geometry.kvHeads
      let shared = blocks.filter(\.shared).reduce(0) { $0 + blockBytes($1.tokens) }
      let own = blocks.filter { !$0.shared }.reduce(0) { $0 + blockBytes($1.tokens) }
      return geometry.layers * (shared + samples * (dense + queries + marks + own))
    }
  }
}
