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
/// dtype, with exactly the shape the config implies. Safetensors weights are not copied or
/// widened: a bf16 checkpoint stays bf16 in memory and the kernels widen values in registers.
public final class ModelWeights: @unchecked Sendable {
  public let source: any WeightSource
  public let embedding: DenseMatrix
  public let layers: [LayerWeights]
  public let finalNorm: WeightVector
  /// The output projection; the embedding matrix itself when the model ties them.
  public let lmHead: DenseMatrix
  /// Bytes of all tensors the model reads (the embedding counted once when tied).
  public let byteCount: Int

  public init(source: any WeightSource, config: ModelConfig) throws {
    self.source = source
    var resolver = TensorResolver(source: source)
    let h = config.hiddenSize
    embedding = try resolver.matrix("model.embed_tokens.weight", rows: config.vocabSize, columns: h)
    var layers: [LayerWeights] = []
    for i in 0..<config.layerCount {
      let p = "model.layers.\(i)."
      let bias = config.queryKeyValueBias
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
          outputBias: config.outputBias ? try resolver.vector(p + "self_attn.o_proj.bias", count: h) : nil,
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
      guard source.contains("lm_head.weight") else {
        throw EngineError.invalidWeights(
          reason: "lm_head.weight is missing in \(source.location) and the config does not tie it to the embedding")
      }
      lmHead = try resolver.matrix("lm_head.weight", rows: config.vocabSize, columns: h)
    }
    byteCount = resolver.usedBytes
  }
}

/// A tensor ready for the kernels: in place in a mapped file, or in memory the source owns.
public struct ResolvedTensor {
  public let pointer: UnsafeRawPointer
  public let elementType: ElementType
  public let shape: [Int]
  public let byteCount: Int

  public init(pointer: UnsafeRawPointer, elementType: ElementType, shape: [Int], byteCount: Int) {
    self.pointer = pointer
    self.elementType = elementType
    self.shape = shape
    self.byteCount = byteCount
  }
}

/// Where a model's tensors come from, by their Hugging Face names: a safetensors checkpoint
/// (`Checkpoint`) or a GGUF file (`GGUFWeights`). The source keeps alive whatever its tensors
/// point into.
public protocol WeightSource: AnyObject {
  /// The file or folder, for messages.
  var location: String { get }
  /// Whether a tensor of that name exists.
  func contains(_ name: String) -> Bool
  /// The tensor called `name`, widened or reordered as needed for the kernels; its shape is
  /// checked by the caller. Throws for a missing tensor or an unusable type.
  func resolve(_ name: String) throws -> ResolvedTensor
}

extension Checkpoint: WeightSource {
  public var location: String { directory }

  public func contains(_ name: String) -> Bool { tensor(name) != nil }

  public func resolve(_ name: String) throws -> ResolvedTensor {
    guard let info = tensor(name), let pointer = pointer(to: name) else {
      throw EngineError.invalidWeights(reason: "tensor \(name) is missing in \(directory)")
    }
    guard let elementType = info.dtype.elementType else {
      throw EngineError.invalidWeights(
        reason: "tensor \(name) in \(path(of: name) ?? directory) has dtype \(info.dtype.rawValue); dense weights must be F32, F16 or BF16")
    }
    return ResolvedTensor(pointer: pointer, elementType: elementType, shape: info.shape, byteCount: info.byteCount)
  }
}

/// Looks tensors up by name and checks their shapes; sums the bytes of those used.
struct TensorResolver {
  let source: any WeightSource
  private(set) var usedBytes = 0
  private var used = Set<String>()

  init(source: any WeightSource) {
    self.source = source
  }

  private mutating func resolve(_ name: String, shape: [Int]) throws -> (UnsafeRawPointer, ElementType) {
    let tensor = try source.resolve(name)
    guard tensor.shape == shape else {
      throw EngineError.invalidWeights(
        reason: "tensor \(name) in \(source.location) has shape \(tensor.shape) but the model's config implies \(shape)")
    }
    if used.insert(name).inserted { usedBytes += tensor.byteCount }
    return (tensor.pointer, tensor.elementType)
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
