import BitBudgetEngine
import BitBudgetKernels
import Foundation

/// Which accounting a `MemoryEstimate` follows (see `WeightMemory` and `KVMemory`).
public enum MemoryConvention: String, Sendable, CaseIterable, Codable {
  /// Exactly what BitBudget allocates for weights and KV caches.
  case engine
  /// The paper's Table 1 accounting.
  case paper
}

/// The memory of a configuration: weights + KV cache of G samples (the paper's equation).
public struct MemoryEstimate: Sendable, Codable, Equatable {
  public var convention: MemoryConvention
  public var weightsBits: Int
  public var tokens: Int
  public var promptTokens: Int
  public var samples: Int
  public var kv: String
  public var weightsBytes: Int
  /// KV bytes at the end (all samples).
  public var kvBytes: Int
  /// The largest KV bytes held after any forward pass (engine convention; the paper's equals
  /// `kvBytes`).
  public var kvPeakBytes: Int
  /// The engine's scratch (activations, linear-kernel panels, attention tiles) for the session
  /// `generate` would make (engine convention; 0 in the paper's).
  public var scratchBytes: Int
  /// Weights + peak KV + scratch.
  public var totalBytes: Int
}

/// A model to plan for: its config and, when loaded from files, its weight layout.
public struct MemoryModel: Sendable {
  public let name: String
  public let config: ModelConfig
  /// The engine's weight layout (nil for presets: assumed all bf16).
  public let layout: WeightLayout
  public let paperCountsTiedHead: Bool
  /// Group size the engine convention assumes for 8/4-bit weights of a 16-bit model (as
  /// `--weights` quantizes at load); nil is one group per row.
  public var quantizedGroupSize: Int? = 128

  /// A preset (`qwen3-0.6b` … `qwen3-32b`), a model folder, or a GGUF file (`ggufWidening` as
  /// `DecoderModel.load(path:ggufWidening:)` takes it).
  public static func load(_ nameOrPath: String, ggufWidening: ElementType? = nil) throws -> MemoryModel {
    if let preset = ModelPresets.named(nameOrPath) {
      return MemoryModel(
        name: preset.name, config: preset.config, layout: WeightLayout(config: preset.config, elementType: .bf16),
        paperCountsTiedHead: preset.paperCountsTiedHead)
    }
    let layout = try WeightLayout.load(path: nameOrPath, ggufWidening: ggufWidening)
    return MemoryModel(name: nameOrPath, config: layout.config, layout: layout, paperCountsTiedHead: false)
  }

  public init(name: String, config: ModelConfig, layout: WeightLayout, paperCountsTiedHead: Bool) {
    self.name = name
    self.config = config
    self.layout = layout
    self.paperCountsTiedHead = paperCountsTiedHead
  }

  /// The weights as the engine holds them at `weightsBits`: the layout as stored when its
  /// linears have that many bits; a 16-bit layout's linears quantized as `--weights 8|4` does
  /// (groups of `quantizedGroupSize`: also the size of a `bitbudget quantize` checkpoint
  /// without act-order).
  public func engineLayout(weightsBits: Int) throws -> WeightLayout {
    if layout.linearBits == weightsBits { return layout }
    guard layout.linearBits == 16 else {
      throw EngineError.invalidInput("\(name) holds \(layout.linearBits)-bit weights; the engine does not convert them to \(weightsBits) bits")
    }
    return try layout.quantized(WeightQuantization(bits: weightsBits, groupSize: quantizedGroupSize))
  }

  /// The estimate for `samples` samples that each hold `tokens` tokens after a shared prompt of
  /// `promptTokens` (the paper's convention ignores the prompt).
  public func estimate(
    weightsBits: Int = 16, tokens: Int, promptTokens: Int = 1, samples: Int = 1, kv: KVCacheSpec = .full,
    kvElementType: ElementType = .bf16, convention: MemoryConvention = .engine,
    threads: Int = ThreadPool.defaultThreadCount
  ) throws -> MemoryEstimate {
    // A GGUF file may hold 5- or 6-bit linears (Q5_0, Q5_K, Q6_K): as stored, they are allowed.
    guard [4, 8, 16].contains(weightsBits) || weightsBits == layout.linearBits else {
      throw EngineError.invalidInput("weights must be 16, 8 or 4 bits (or as the model stores them: \(layout.linearBits))")
    }
    guard tokens >= 0, promptTokens >= 1, (1...4096).contains(samples) else {
      throw EngineError.invalidInput("tokens must be ≥ 0, the prompt ≥ 1 token, and samples in 1...4096")
    }
    switch convention {
    case .paper:
      let weights = Int(WeightMemory.paperBytes(config, bits: weightsBits, countTiedHead: paperCountsTiedHead).rounded())
      let kvBytes = Int(KVMemory.paperBytes(config, spec: kv, tokens: tokens, samples: samples).rounded())
      return MemoryEstimate(
        convention: .paper, weightsBits: weightsBits, tokens: tokens, promptTokens: promptTokens, samples: samples,
        kv: kv.description, weightsBytes: weights, kvBytes: kvBytes, kvPeakBytes: kvBytes, scratchBytes: 0,
        totalBytes: weights + kvBytes)
    case .engine:
      let loaded = try engineLayout(weightsBits: weightsBits)
      return try Self.engineEstimate(
        config: config, weightsBytes: loaded.byteCount, quantizedLinears: loaded.hasQuantizedTensors, bf16Linears: loaded.hasBF16Linears,
        weightsBits: weightsBits, tokens: tokens, promptTokens: promptTokens, samples: samples, kv: kv, kvElementType: kvElementType,
        threads: threads)
    }
  }

  /// The engine convention for weights of known size and kinds: weights + the KV caches' peak
  /// (`KVMemory.engineUsage`) + the session's scratch.
  static func engineEstimate(
    config: ModelConfig, weightsBytes: Int, quantizedLinears: Bool, bf16Linears: Bool, weightsBits: Int, tokens: Int, promptTokens: Int,
    samples: Int, kv: KVCacheSpec, kvElementType: ElementType, threads: Int, prefillChunk: Int = InferenceSession.defaultMaxRows
  ) throws -> MemoryEstimate {
    guard tokens >= 0, promptTokens >= 1, (1...4096).contains(samples), prefillChunk >= 1 else {
      throw EngineError.invalidInput("tokens must be ≥ 0, the prompt ≥ 1 token, samples in 1...4096 and the prefill chunk ≥ 1")
    }
    if let q = kv.quantization, config.headDim % q.groupSize != 0 {
      throw EngineError.invalidInput("hqq group size \(q.groupSize) does not divide the head dimension \(config.headDim)")
    }
    let usage = KVMemory.engineUsage(
      geometry: KVCacheGeometry(config), queryHeads: config.queryHeads, spec: kv, elementType: kvElementType,
      promptTokens: promptTokens, tokens: tokens, samples: samples, prefillChunk: prefillChunk)
    let scratch = InferenceSession.scratchBytes(
      config: config, threads: threads, longestContext: usage.longestAttention, quantizedLinears: quantizedLinears, bf16Linears: bf16Linears)
    return MemoryEstimate(
      convention: .engine, weightsBits: weightsBits, tokens: tokens, promptTokens: promptTokens, samples: samples, kv: kv.description,
      weightsBytes: weightsBytes, kvBytes: usage.bytes, kvPeakBytes: usage.peakBytes, scratchBytes: scratch,
      totalBytes: weightsBytes + usage.peakBytes + scratch)
  }

  /// The most tokens per sample (up to `limit`) whose estimate fits `budget` bytes, or nil if
  /// none does.
  public func maxTokens(
    fitting budget: Int, limit: Int, weightsBits: Int = 16, promptTokens: Int = 1, samples: Int = 1,
    kv: KVCacheSpec = .full, kvElementType: ElementType = .bf16, convention: MemoryConvention = .engine,
    threads: Int = ThreadPool.defaultThreadCount
  ) throws -> Int? {
    try Self.largest(in: 0...max(0, limit)) { tokens in
      try estimate(weightsBits: weightsBits, tokens: tokens, promptTokens: promptTokens, samples: samples, kv: kv,
                   kvElementType: kvElementType, convention: convention, threads: threads).totalBytes <= budget
    }
  }

  /// The most samples (up to `limit`) whose estimate fits `budget`, or nil if not even one does.
  public func maxSamples(
    fitting budget: Int, limit: Int = 4096, weightsBits: Int = 16, tokens: Int, promptTokens: Int = 1,
    kv: KVCacheSpec = .full, kvElementType: ElementType = .bf16, convention: MemoryConvention = .engine,
    threads: Int = ThreadPool.defaultThreadCount
  ) throws -> Int? {
    try Self.largest(in: 1...max(1, limit)) { samples in
      try estimate(weightsBits: weightsBits, tokens: tokens, promptTokens: promptTokens, samples: samples, kv: kv,
                   kvElementType: kvElementType, convention: convention, threads: threads).totalBytes <= budget
    }
  }

  /// The largest value in `range` for which `fits` holds, given that it holds up to some value
  /// and not beyond (estimates grow with tokens and samples): a binary search.
  static func largest(in range: ClosedRange<Int>, _ fits: (Int) throws -> Bool) throws -> Int? {
    guard try fits(range.lowerBound) else { return nil }
    var (low, high) = (range.lowerBound, range.upperBound)
    if try fits(high) { return high }
    while high - low > 1 {
      let middle = (low + high) / 2
      if try fits(middle) { low = middle } else { high = middle }
    }
    return low
  }
}

extension DecoderModel {
  /// The engine-convention estimate of a run of this loaded model: `samples` samples that each
  /// hold `tokens` tokens after a shared `promptTokens`-token prompt, prefilled in chunks of
  /// `prefillChunk` rows (what `--memory-limit` checks).
  public func engineEstimate(
    tokens: Int, promptTokens: Int, samples: Int, kv: KVCacheSpec, kvElementType: ElementType, threads: Int,
    prefillChunk: Int = InferenceSession.defaultMaxRows
  ) throws -> MemoryEstimate {
    try MemoryModel.engineEstimate(
      config: config, weightsBytes: weights.byteCount, quantizedLinears: weights.hasQuantizedLinears, bf16Linears: weights.hasBF16Linears,
      weightsBits: weights.format.bits, tokens: max(0, tokens), promptTokens: max(1, promptTokens), samples: samples, kv: kv,
      kvElementType: kvElementType, threads: threads, prefillChunk: prefillChunk)
  }
}
