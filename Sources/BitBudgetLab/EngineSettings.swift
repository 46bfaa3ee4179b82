import BitBudgetEngine
import BitBudgetKernels
import BitBudgetMemory
import BitBudgetTokenizer
import Foundation

/// How the local engine loads and runs a model: what `--model`, `--threads`, `--kv`,
/// `--kv-dtype`, `--weights`, `--gguf-dtype`, `--activations` and `--memory-limit` say on the
/// command line.
public struct EngineSettings: Sendable {
  /// A Hugging Face model folder or a GGUF file.
  public var modelPath: String
  public var threads: Int
  public var kv: KVCacheSpec
  public var kvElementType: ElementType
  /// Bytes a run may take in the memory model's engine convention (weights + KV peak + scratch).
  public var memoryLimit: Int?
  /// What quantized GGUF tensors are widened to at load (nil keeps the held types quantized).
  public var ggufWidening: ElementType?
  /// Round-to-nearest quantization of a 16-bit model at load.
  public var weightQuantization: WeightQuantization?
  /// Refuse a model whose weights are not 16-bit (`--weights 16` on a quantized checkpoint).
  public var requiresSixteenBitWeights = false
  /// nil: each use's default (`.fastest` for generation).
  public var activations: LinearActivations?
  /// The chat template prompts are rendered in (a file or `qwen3`); nil: the model's own.
  public var chatTemplate: String?

  public init(
    modelPath: String, threads: Int = min(256, ThreadPool.defaultThreadCount), kv: KVCacheSpec = .full, kvElementType: ElementType = .bf16,
    memoryLimit: Int? = nil
  ) {
    self.modelPath = modelPath
    self.threads = threads
    self.kv = kv
    self.kvElementType = kvElementType
    self.memoryLimit = memoryLimit
  }

  /// Loads the model; `progress` as `DecoderModel.load`'s.
  public func loadModel(progress: (_ layersDone: Int, _ layers: Int) -> Void = { _, _ in }) throws -> DecoderModel {
    let loaded = try DecoderModel.load(path: modelPath, ggufWidening: ggufWidening, quantize: weightQuantization, progress: progress)
    if requiresSixteenBitWeights, loaded.weights.format.bits != 16 {
      throw LabError.invalidScenario(
        "--weights 16: \(modelPath) holds \(loaded.weights.format) weights, which are not dequantized; leave out --weights")
    }
    return loaded
  }

  /// A session for `model` with these settings' kernels; `defaultActivations` applies when
  /// `activations` is nil.
  public func session(
    _ model: DecoderModel, maxRows: Int = InferenceSession.defaultMaxRows, maxLogitRows: Int = 16,
    defaultActivations: LinearActivations = .fastest
  ) throws -> InferenceSession {
    let session = try InferenceSession(model: model, threads: threads, maxRows: maxRows, maxLogitRows: maxLogitRows)
    session.linearActivations = activations ?? defaultActivations
    return session
  }

  /// A new empty cache of this policy and storage type.
  public func makeCache(_ session: InferenceSession) throws -> any KVCache {
    try session.makeCache(spec: kv, elementType: kvElementType)
  }

  /// The memory model's engine-convention estimate of a run of `model`: `samples` samples
  /// holding `tokens` tokens each after a `promptTokens`-token prompt.
  public func estimate(
    model: DecoderModel, promptTokens: Int, tokens: Int, samples: Int, prefillChunk: Int = InferenceSession.defaultMaxRows
  ) throws -> MemoryEstimate {
    try model.engineEstimate(
      tokens: tokens, promptTokens: promptTokens, samples: samples, kv: kv, kvElementType: kvElementType, threads: threads,
      prefillChunk: prefillChunk)
  }

  /// With a memory limit: throws, with the numbers, when the run's estimate exceeds it.
  public func checkMemoryLimit(
    model: DecoderModel, promptTokens: Int, tokens: Int, samples: Int, prefillChunk: Int = InferenceSession.defaultMaxRows
  ) throws {
    guard let memoryLimit else { return }
    let e = try estimate(model: model, promptTokens: promptTokens, tokens: tokens, samples: samples, prefillChunk: prefillChunk)
    guard e.totalBytes > memoryLimit else { return }
    throw LabError.memoryLimit(
      "this run needs \(ByteSize.gib(e.totalBytes)) (weights \(ByteSize.gib(e.weightsBytes)) + KV up to \(ByteSize.gib(e.kvPeakBytes)) for \(samples) × \(promptTokens + tokens) tokens with --kv \(kv) + scratch \(ByteSize.gib(e.scratchBytes))), more than --memory-limit \(ByteSize.readable(memoryLimit)); try fewer tokens or samples, or a compressed --kv")
  }
}
