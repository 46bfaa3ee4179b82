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
/// `engine` convention: a replay of the plans the engine's caches allocate by (`FullKVCache`'s
/// 64-token blocks; `CompressedKVCache.LayerPlan`: dense block, quantized blocks, query window,
/// policy marks and attention totals, the same code the cache follows), for the prompt prefilled in chunks of
/// `prefillChunk` tokens and the rest decoded one token per pass, with the sharing of forked
/// samples (full: the prompt's whole blocks; quantized blocks made before the fork, while they
/// last). It equals the caches' `residentBytes` to the byte at the end, and also gives the largest
/// value seen after any pass (`peakBytes`); allocations that live only inside a pass (the
/// compaction of a layer, a growing dense block's old copy) are not counted.
public enum KVMemory {
  /// Bytes of KV storage a run holds: at the end and at its peak.
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
      var schedule = RequantizingKVCache.Schedule(residual: q.residual)
      var start = 0
      while start < promptTokens {
        let count = min(prefillChunk, promptTokens - start)
        _ = schedule.commit(count)
        start += count
      }
      var forksRequantize = false
      for _ in 0..<tokens {
        if schedule.commit(1) {
          forksRequantize = true
          break
        }
      }
      if samples > 1 && forksRequantize {
        let blockBytes = FullKVCache.blockBytes(geometry: g, elementType: elementType)
        usage.bytes = g.layers * samples * FullKVCache.blocks(tokens: promptTokens + tokens) * blockBytes
        usage.peakBytes = max(usage.peakBytes, usage.bytes)
      }
      return usage
    }
    if spec.isFull {
      let blockBytes = FullKVCache.blockBytes(geometry: g, elementType: elementType)
      let blocks = FullKVCache.blocks(tokens:)
      // Forks share every block until they write: the prompt's whole blocks for good, its partial
      // last one until each sample's first decoded token (all of them when nothing is decoded).
      let shared = samples == 1 ? 0 : tokens > 0 ? promptTokens / FullKVCache.blockTokens : blocks(promptTokens)
      let perSample = blocks(promptTokens + tokens) - shared
      let bytes = g.layers * (shared + samples * perSample) * blockBytes
      // Before the samples diverge the prompt's blocks are all there is; after, the sum only grows.
      return Usage(bytes: bytes, peakBytes: max(bytes, g.layers * blocks(promptTokens) * blockBytes),
                   residentTokens: promptTokens + tokens, longestAttention: promptTokens + tokens)
    }
    // One layer's plan, the one each layer of the cache follows; all layers hold the same counts.
    var layer = CompressedKVCache.LayerPlan(geometry: g, queryHeads: queryHeads, spec: spec, elementType: elementType)
    let total = { (samples: Int) in g.layers * layer.bytes(samples: samples) }
    var peak = 0
    var longest = 0
    var start = 0
    while start < promptTokens {
      let count = min(prefillChunk, promptTokens - start)
      layer.append(count)
      longest = max(longest, layer.tokens)
      peak = max(peak, total(1))
      _ = layer.commit(count)
      peak = max(peak, total(1))
      start += count
    }
    // Forks share the blocks made so far; each sample then goes on alone.
    layer.markShared()
    // The forks exist (their dense blocks copied) before the first decode pass, or without one.
    peak = max(peak, total(samples))
    for _ in 0..<tokens {
      layer.append(1)
      longest = max(longest, layer.tokens)
      peak = max(peak, total(samples))
      _ = layer.commit(1)
      peak = max(peak, total(samples))
    }
    return Usage(bytes: total(samples), peakBytes: peak, residentTokens: layer.tokens, longestAttention: longest)
  }
}
