import BitBudgetKernels

/// transformers' `QuantizedCache` with the HQQ backend at its default axis 0, reproduced so that
/// its quality can be measured beside `CompressedKVCache`'s per-token groups (`hqq:B,axis=0`).
///
/// Per layer, as transformers' `QuantizedLayer.update`:
/// - the first forward pass's tokens are attended exactly, then quantized;
/// - a later pass attends over the dequantized history, the exact residual tokens and its own
///   tokens; then, if the residual plus its tokens reach `residual`, all of them are re-quantized
///   together (the history from its dequantized values), else its tokens join the residual.
/// Quantization views the layer's keys (and apart its values) in transformers' layout `[kvHeads,
/// tokens, headDim]`, flattened, as `[groupSize, N / groupSize]` and takes each column as a group
/// (`HQQ.quantize` with axis 0): a group holds one value from every `N / groupSize`-th element,
/// so its members come from tokens and heads across the history and change whenever the history
/// grows. The zero points go through HQQ's proximal search (transformers does not pass
/// `optimize`, and the `hqq` package's default is on). Scales and zeros are rounded to the
/// cache's element type (transformers' compute type) and the dequantized values to it as they
/// are stored.
///
/// Memory: the history is held dequantized, in a `FullKVCache` (the attention kernel reads it),
/// so this cache saves nothing over a full one; its codes exist only while it re-quantizes.
/// Forks share the full cache's blocks until a re-quantization rebuilds a layer. One difference
/// from transformers remains: a prompt longer than a session's `maxRows` arrives in several
/// passes, and the later ones attend over the quantized earlier ones (transformers' single
/// prefill call attends exactly); `perplexity` prefills in one pass.
public final class RequantizingKVCache: KVCache, KVCacheStorage {
  public let geometry: KVCacheGeometry
  public let quantization: KVQuantization
  public let elementType: ElementType
  private var view: FullKVCache
  /// When each layer re-quantizes.
  private var schedules: [Schedule]
  /// Tokens appended by the running forward pass, per layer.
  private var pending: [Int]

  init(geometry: KVCacheGeometry, quantization: KVQuantization, elementType: ElementType) {
    precondition(quantization.axis == 0 && geometry.headDim % quantization.groupSize == 0)
    self.geometry = geometry
    self.quantization = quantization
    self.elementType = elementType
    view = FullKVCache(geometry: geometry, elementType: elementType)
    schedules = Array(repeating: Schedule(residual: quantization.residual), count: geometry.layers)
    pending = Array(repeating: 0, count: geometry.layers)
  }

  private init(copying other: RequantizingKVCache) {
    geometry = other.geometry
    quantization = other.quantization
    elementType = other.elementType
    view = other.view.forkFull()
    schedules = other.schedules
    pending = other.pending
  }

  public var nextPosition: Int { view.nextPosition }
  public var residentTokens: Int { view.residentTokens }
  public var residentBytes: Int { view.residentBytes }

  package func append(layer: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int) {
    view.append(layer: layer, keys: keys, values: values, count: count)
    pending[layer] += count
  }

  package func attend(
    layer: Int, queries: UnsafePointer<Float>, rows: Int, shape: AttentionShape,
    output: UnsafeMutablePointer<Float>, pool: ThreadPool, scratch: AttentionScratch
  ) {
    view.attend(layer: layer, queries: queries, rows: rows, shape: shape, output: output, pool: pool, scratch: scratch)
  }

  package func commit(tokens: Int) {
    for layer in 0..<geometry.layers {
      let count = pending[layer]
      pending[layer] = 0
      if schedules[layer].commit(count) { requantize(layer: layer) }
    }
    view.commit(tokens: tokens)
  }

  /// When a layer re-quantizes its history — the cache follows it and the memory model replays
  /// it: at the end of its first pass, and when the exact tokens after the quantized history
  /// reach `residual`.
  public struct Schedule: Sendable {
    public let residual: Int
    public private(set) var started = false
    /// Exact tokens after the quantized history.
    public private(set) var exactTokens = 0

    public init(residual: Int) { self.residual = residual }

    /// A pass that appended `count` tokens ends; whether the layer re-quantizes.
    public mutating func commit(_ count: Int) -> Bool {
      guard count > 0 else { return false }
      if !started {
        started = true
        return true
      }
      if exactTokens + count >= residual {
        exactTokens = 0
        return true
      }
      exactTokens += count
      return false
    }
  }

  public func fork() -> any KVCache {
    RequantizingKVCache(copying: self)
  }

  package func forEachStorage(_ body: (ObjectIdentifier, Int) -> Void) {
    view.forEachStorage(body)
  }

  /// Replaces every token of `layer` by its quantized-then-dequantized value.
  private func requantize(layer: Int) {
    let (keys, values) = view.rows(layer: layer)
    let tokens = keys.count / geometry.rowWidth
    view.clear(layer: layer)
    let newKeys = roundTrip(keys, tokens: tokens)
    let newValues = roundTrip(values, tokens: tokens)
    newKeys.withUnsafeBufferPointer { k in
      newValues.withUnsafeBufferPointer { v in
        guard let k = k.baseAddress, let v = v.baseAddress else { return }
        view.append(layer: layer, keys: k, values: v, count: tokens)
      }
    }
  }

  /// Token-major rows through HQQ axis 0 in transformers' `[kvHeads, tokens, headDim]` order.
  private func roundTrip(_ rows: [Float], tokens: Int) -> [Float] {
    let heads = geometry.kvHeads, d = geometry.headDim, width = geometry.rowWidth
    let count = rows.count
    let groups = count / quantization.groupSize
    var flat = [Float](repeating: 0, count: count)
    for t in 0..<tokens {
      for h in 0..<heads {
        for i in 0..<d { flat[(h * tokens + t) * d + i] = rows[t * width + h * d + i] }
      }
    }
    var codes = [UInt8](repeating: 0, count: count)
    var scales = [Float](repeating: 0, count: groups)
    var zeros = [Float](repeating: 0, count: groups)
    HQQ.quantize(
      flat, count: count, bits: quantization.bits, groupSize: quantization.groupSize, axis: 0, codes: &codes, scales: &scales,
      zeros: &zeros, optimize: true)
    for g in 0..<groups {
      scales[g] = roundedToElementType(scales[g])
      zeros[g] = roundedToElementType(zeros[g])
    }
    HQQ.dequantize(
      codes: codes, count: count, groupSize: quantization.groupSize, axis: 0, scales: scales, zeros: zeros, into: &flat)
    var result = [Float](repeating: 0, count: count)
    for t in 0..<tokens {
      for h in 0..<heads {
        for i in 0..<d { result[t * width + h * d + i] = flat[(h * tokens + t) * d + i] }
      }
    }
    return result
  }

  private func roundedToElementType(_ value: Float) -> Float {
    switch elementType {
    case .f32: value
    case .bf16: bf16ToFloat(floatToBF16(value))
    case .f16: f16ToFloat(floatToF16(value))
    }
  }
}
