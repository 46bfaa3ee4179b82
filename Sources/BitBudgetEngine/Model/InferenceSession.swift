import BitBudgetKernels

/// New tokens of one sequence for a forward pass: they get positions `cache.nextPosition…`.
public struct SequenceInput {
  public let cache: any KVCache
  public let tokens: [Int]

  public init(cache: any KVCache, tokens: [Int]) {
    self.cache = cache
    self.tokens = tokens
  }
}

/// A sequence of a forward pass with its cache as the pass drives it.
struct ForwardInput {
  let cache: any KVCacheStorage
  let tokens: [Int]
}

/// Which rows of a forward pass produce logits.
public enum LogitRows: Sendable {
  /// None (a prefill chunk that is not the last).
  case none
  /// The last token of each sequence (generation).
  case lastOfEachSequence
  /// Every token (`bitbudget logits`); at most `maxLogitRows` rows per call.
  case all
}

/// Logits of a forward pass: `rows × vocabSize` f32 values inside the session's workspace, valid
/// until the session's next forward pass.
public struct LogitsView {
  /// The session's logits buffer; the engine's own.
  package let base: UnsafePointer<Float>
  public let rows: Int
  public let vocabSize: Int

  /// Row `index` (0..<rows): a view into the session's buffer, not a copy.
  public func row(_ index: Int) -> UnsafeBufferPointer<Float> {
    UnsafeBufferPointer(start: base + index * vocabSize, count: vocabSize)
  }
}

/// Runs a `DecoderModel`: owns the thread pool and every activation buffer, sized once for at most
/// `maxRows` token rows per forward pass, so forward passes allocate no activation memory (the KV
/// cache's blocks, and the attention tiles at the first attention call, aside). Not thread-safe: one
/// session serves one generation loop at a time.
///
/// The forward pass is transformers' `Qwen3ForCausalLM` in f32: embedding → per layer [RMSNorm →
/// q/k/v projections (+bias) → per-head q/k RMSNorm → RoPE → KV cache → causal GQA attention →
/// o_proj → residual → RMSNorm → SwiGLU MLP (or routed experts' MLPs) → residual] → RMSNorm →
/// lm_head.
public final class InferenceSession {
  public let model: DecoderModel
  public let pool: ThreadPool
  /// Largest number of token rows (over all sequences) in one forward pass.
  public let maxRows: Int
  /// Rows per forward pass unless told otherwise (so also the prefill chunk).
  public static let defaultMaxRows = 256
  /// Largest number of rows that produce logits in one forward pass.
  public let maxLogitRows: Int

  let config: ModelConfig
  let rotary: RotaryEmbedding
  let attentionShape: AttentionShape
  var linearScratch: LinearScratch
  let attentionScratch: AttentionScratch
  let buffers: Buffers
  var qkvJobs: [[LinearJob]]
  var outputJobs: [[LinearJob]]
  var gateUpJobs: [[LinearJob]]
  var downJobs: [[LinearJob]]
  /// Per layer of experts, the router's job and each expert's gate/up and down jobs.
  let expertJobs: [ExpertJobs?]
  let lmHeadJobs: [LinearJob]
  var rowPositions: [Int]

  /// Called with the input rows of each group of linear layers as the forward pass reaches them
  /// (`[count, stride]` floats, valid during the call): how GPTQ collects its Hessians. Nil
  /// normally.
  public var linearInputObserver: ((_ layer: Int, _ site: LinearSite, _ rows: UnsafePointer<Float>, _ stride: Int, _ count: Int) -> Void)?

  /// - Parameters:
  ///   - model: the model to run; the session reads its weights, never copies them.
  ///   - threads: threads for the kernels (default: all available processors).
  ///   - maxRows: token rows per forward pass; longer prompts are prefilled in chunks of this size.
  ///   - maxLogitRows: rows with logits per forward pass (each costs `vocabSize × 4` bytes).
  public init(
    model: DecoderModel, threads: Int = ThreadPool.defaultThreadCount, maxRows: Int = defaultMaxRows, maxLogitRows: Int = 16
  ) throws {
    guard let floats = Buffers.floats(config: model.config, rows: max(1, maxRows), logitRows: max(1, maxLogitRows)),
      floats <= Self.maxBufferBytes / 4
    else {
      throw EngineError.invalidInput(
        "the model's shapes need more than \(Self.maxBufferBytes >> 30) GiB of activation buffers for \(maxRows) rows per pass")
    }
    self.model = model
    config = model.config
    pool = ThreadPool(threadCount: threads)
    self.maxRows = max(1, maxRows)
    self.maxLogitRows = max(1, maxLogitRows)
    rotary = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
    attentionShape = AttentionShape(queryHeads: config.queryHeads, kvHeads: config.kvHeads, headDim: config.headDim)
    linearScratch = LinearScratch(
      threadCount: pool.threadCount,
      maxColumns: max(config.hiddenSize, config.widestMLP, config.queryWidth),
      quantized: model.weights.hasQuantizedLinears, bf16: model.weights.hasBF16Linears, maxRows: self.maxRows)
    attentionScratch = AttentionScratch(threadCount: pool.threadCount)
    attentionScratch.roundsToBF16 = linearScratch.activations == .rounded
    let b = Buffers(config: config, rows: self.maxRows, logitRows: self.maxLogitRows)
    buffers = b
    let c = config
    let w = model.weights
    qkvJobs = w.layers.map { l in
      [
        LinearJob(weight: l.query, bias: l.queryBias, output: b.query, outputStride: c.queryWidth),
        LinearJob(weight: l.key, bias: l.keyBias, output: b.key, outputStride: c.kvWidth),
        LinearJob(weight: l.value, bias: l.valueBias, output: b.value, outputStride: c.kvWidth),
      ]
    }
    outputJobs = w.layers.map { l in
      [LinearJob(weight: l.output, bias: l.outputBias, output: b.projection, outputStride: c.hiddenSize)]
    }
    func mlpJobs(_ mlp: MLPWeights, width: Int) -> (gateUp: [LinearJob], down: [LinearJob]) {
      (
        [LinearJob(weight: mlp.gate, output: b.gate, outputStride: width), LinearJob(weight: mlp.up, output: b.up, outputStride: width)],
        [LinearJob(weight: mlp.down, output: b.projection, outputStride: c.hiddenSize)]
      )
    }
    let mlps: [(gateUp: [LinearJob], down: [LinearJob])] = w.layers.indices.map { l in
      guard case .dense(let mlp) = w.layers[l].feedForward else { return ([], []) }
      return mlpJobs(mlp, width: c.mlpWidth(layer: l))
    }
    gateUpJobs = mlps.map(\.gateUp)
    downJobs = mlps.map(\.down)
    expertJobs = w.layers.indices.map { l in
      guard case .experts(let router, let experts, let routing) = w.layers[l].feedForward, let buffers = b.experts else { return nil }
      return ExpertJobs(
        router: LinearJob(weight: router, output: buffers.routerLogits, outputStride: routing.count),
        experts: experts.map { mlpJobs($0, width: c.mlpWidth(layer: l)) }, routing: routing)
    }
    lmHeadJobs = [LinearJob(weight: w.lmHead, output: b.logits, outputStride: c.vocabSize)]
    rowPositions = Array(repeating: 0, count: self.maxRows)
  }

  /// How activations meet the weights (`LinearActivations`): `.rounded` (the default where the
  /// build has the kernels) rounds each block of 32 inputs to int8 for quantized weights, in
  /// decode and prefill, inputs to bf16 for bf16 weights in prefill, and queries and softmax
  /// weights to bf16 against a bf16 KV cache (`AttentionScratch.roundsToBF16`); `.exact` keeps f32.
  public var linearActivations: LinearActivations {
    get { linearScratch.activations }
    set {
      linearScratch.activations = newValue
      attentionScratch.roundsToBF16 = newValue == .rounded
    }
  }

  /// A new empty cache of the kind `spec` names, for this session's model.
  public func makeCache(spec: KVCacheSpec, elementType: ElementType = .bf16) throws -> any KVCache {
    try spec.makeCache(geometry: KVCacheGeometry(config), queryHeads: config.queryHeads, elementType: elementType)
  }

  /// A new empty full cache for this session's model.
  public func makeCache(elementType: ElementType = .bf16) -> FullKVCache {
    FullKVCache(geometry: KVCacheGeometry(config), elementType: elementType)
  }

  /// Checks that `tokens` more tokens fit in the model's context after `cache`'s and that every id
  /// is in the vocabulary.
  public func validate(tokens: [Int], appendingTo cache: any KVCache) throws {
    for token in tokens where token < 0 || token >= config.vocabSize {
      throw EngineError.invalidInput("token id \(token) is outside the vocabulary (0..<\(config.vocabSize))")
    }
    if cache.nextPosition + tokens.count > config.maxPositions {
      throw EngineError.invalidInput(
        "\(cache.nextPosition + tokens.count) tokens exceed the model's context of \(config.maxPositions) positions (max_position_embeddings)")
    }
  }

}

/// The kernel calls of a layer of experts.
struct ExpertJobs {
  let router: LinearJob
  let experts: [(gateUp: [LinearJob], down: [LinearJob])]
  let routing: MixtureOfExperts
}

/// The four places where a decoder layer's linear layers read their input.
public enum LinearSite: Int, Sendable, CaseIterable {
  /// Normed hidden states, read by q, k and v.
  case attentionInput
  /// Attention output, read by o.
  case attentionOutput
  /// Normed hidden states after attention, read by gate and up.
  case mlpInput
  /// `silu(gate) · up`, read by down.
  case mlpHidden
}
