import BitBudgetKernels

/// The weights of one decoder layer, read in place from the checkpoint's mapping.
public struct LayerWeights: @unchecked Sendable {
  public let inputNorm: WeightVector
  public let query: DenseMatrix
  public let key: DenseMatrix
  public let value: DenseMatrix
  public let output: DenseMatrix
  public let queryBias: WeightVector?
  public let keyBias: WeightVector?
  public let valueBias: WeightVector?
  public let outputBias: WeightVector?
  public let queryNorm: WeightVector?
  public let keyNorm: WeightVector?
  public let postAttentionNorm: WeightVector
  public let gate: DenseMatrix
  public let up: DenseMatrix
  public let down: DenseMatrix
}

/// All weights of a model, checked against its config: every tensor present, of a floating-point
/// dtype, with exactly the shape the config implies. Nothing is copied or widened: a bf16
/// checkpoint stays bf16 in memory and the kernels widen values in registers.
public final class ModelWeights: @unchecked Sendable {
  public let checkpoint: Checkpoint
  public let embedding: DenseMatrix
  public let layers: [LayerWeights]
  public let finalNorm: WeightVector
  /// The output projection; the embedding matrix itself when the model ties them.
  public let lmHead: DenseMatrix
  /// Bytes of all tensors the model reads (the embedding counted once when tied).
  public let byteCount: Int

  public init(checkpoint: Checkpoint, config: ModelConfig) throws {
    self.checkpoint = checkpoint
    var resolver = TensorResolver(checkpoint: checkpoint)
    let h = config.hiddenSize
    embedding = try resolver.matrix("model.embed_tokens.weight", rows: config.vocabSize, columns: h)
    var layers: [LayerWeights] = []
    for i in 0..<config.layerCount {
      let p = "model.layers.\(i)."
      let bias = config.attentionBias
      let qkNorm = config.architecture.hasQKNorm
      layers.append(
        LayerWeights(
          inputNorm: try resolver.vector(p + "input_layernorm.weight", count: h),
          query: try resolver.matrix(p + "self_attn.q_proj.weight", rows: config.queryWidth, columns: h),
          key: try resolver.matrix(p + "self_attn.k_proj.weight", rows: config.kvWidth, columns: h),
          value: try resolver.matrix(p + "self_attn.v_proj.weight", rows: config.kvWidth, columns: h),
          output: try resolver.matrix(p + "self_attn.o_proj.weight", rows: h, columns: config.queryWidth),
          queryBias: bias ? try resolver.vector(p + "self_attn.q_proj.bias", count: config.queryWidth) : nil,
          keyBias: bias ? try resolver.vector(p + "self_attn.k_proj.bias", count: config.kvWidth) : nil,
          valueBias: bias ? try resolver.vector(p + "self_attn.v_proj.bias", count: config.kvWidth) : nil,
          outputBias: bias ? try resolver.vector(p + "self_attn.o_proj.bias", count: h) : nil,
          queryNorm: qkNorm ? try resolver.vector(p + "self_attn.q_norm.weight", count: config.headDim) : nil,
          keyNorm: qkNorm ? try resolver.vector(p + "self_attn.k_norm.weight", count: config.headDim) : nil,
          postAttentionNorm: try resolver.vector(p + "post_attention_layernorm.weight", count: h),
          gate: try resolver.matrix(p + "mlp.gate_proj.weight", rows: config.intermediateSize, columns: h),
          up: try resolver.matrix(p + "mlp.up_proj.weight", rows: config.intermediateSize, columns: h),
          down: try resolver.matrix(p + "mlp.down_proj.weight", rows: h, columns: config.intermediateSize)))
    }
    self.layers = layers
    finalNorm = try resolver.vector("model.norm.weight", count: h)
    if config.tiedEmbeddings {
      lmHead = embedding
    } else {
      guard checkpoint.tensor("lm_head.weight") != nil else {
        throw EngineError.invalidWeights(
          reason: "lm_head.weight is missing in \(checkpoint.directory) and config.json does not set tie_word_embeddings")
      }
      lmHead = try resolver.matrix("lm_head.weight", rows: config.vocabSize, columns: h)
    }
    byteCount = resolver.usedBytes
  }
}

/// Looks tensors up by name and checks their dtype and shape; sums the bytes of those used.
struct TensorResolver {
  let checkpoint: Checkpoint
  private(set) var usedBytes = 0
  private var used = Set<String>()

  init(checkpoint: Checkpoint) {
    self.checkpoint = checkpoint
  }

  private mutating func resolve(_ name: String, shape: [Int]) throws -> (UnsafeRawPointer, ElementType) {
    guard let info = checkpoint.tensor(name), let pointer = checkpoint.pointer(to: name) else {
      throw EngineError.invalidWeights(reason: "tensor \(name) is missing in \(checkpoint.directory)")
    }
    let file = checkpoint.path(of: name) ?? checkpoint.directory
    guard let elementType = info.dtype.elementType else {
      throw EngineError.invalidWeights(
        reason: "tensor \(name) in \(file) has dtype \(info.dtype.rawValue); dense weights must be F32, F16 or BF16")
    }
    guard info.shape == shape else {
      throw EngineError.invalidWeights(
        reason: "tensor \(name) in \(file) has shape \(info.shape) but config.json implies \(shape)")
    }
    if used.insert(name).inserted { usedBytes += info.byteCount }
    return (pointer, elementType)
  }

  mutating func matrix(_ name: String, rows: Int, columns: Int) throws -> DenseMatrix {
    let (pointer, type) = try resolve(name, shape: [rows, columns])
    return DenseMatrix(base: pointer, rows: rows, columns: columns, elementType: type)
  }

  mutating func vector(_ name: String, count: Int) throws -> WeightVector {
    let (pointer, type) = try resolve(name, shape: [count])
    return WeightVector(base: pointer, count: count, elementType: type)
  }
}
