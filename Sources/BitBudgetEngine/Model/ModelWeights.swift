import BitBudgetKernels

/// The weights of one decoder layer: 16/32-bit tensors in place in the checkpoint's mapping,
/// quantized linears in the runtime layout.
public struct LayerWeights: @unchecked Sendable {
  public let inputNorm: WeightVector
  public let query: LinearWeight
  public let key: LinearWeight
  public let value: LinearWeight
  public let output: LinearWeight
  public let queryBias: WeightVector?
  public let keyBias: WeightVector?
  public let valueBias: WeightVector?
  public let outputBias: WeightVector?
  public let queryNorm: WeightVector?
  public let keyNorm: WeightVector?
  public let postAttentionNorm: WeightVector
  public let feedForward: FeedForwardWeights

  /// The linear layers grouped by kernel call (`ModelConfig.linearCalls(layer:)`): q/k/v, o, then
  /// per MLP gate/up and down.
  public var linearCalls: [[LinearWeight]] {
    [[query, key, value], [output]] + feedForward.mlps.flatMap { [[$0.gate, $0.up], [$0.down]] }
  }

  /// Every linear layer, in forward order (`ModelConfig.linearNames(layer:)`): seven in a dense
  /// layer, 4 + 3 × experts in a layer of experts.
  public var linears: [LinearWeight] { linearCalls.flatMap { $0 } }
}

/// A SwiGLU MLP: `down(silu(gate(x)) · up(x))`.
public struct MLPWeights: @unchecked Sendable {
  public let gate: LinearWeight
  public let up: LinearWeight
  public let down: LinearWeight
}

/// What follows attention in a decoder layer.
public enum FeedForwardWeights: @unchecked Sendable {
  /// One MLP for every token.
  case dense(MLPWeights)
  /// A router (`[count, hidden]`, 16/32-bit) choosing `routing.perToken` of the experts for each
  /// token (Qwen3-MoE's sparse block).
  case experts(router: DenseMatrix, experts: [MLPWeights], routing: MixtureOfExperts)

  /// The MLPs: the one, or every expert in index order.
  public var mlps: [MLPWeights] {
    switch self {
    case .dense(let mlp): [mlp]
    case .experts(_, let experts, _): experts
    }
  }
}

/// All weights of a model, checked against its config: every tensor present, of a floating-point
/// dtype (or GPTQ's packed layout), with exactly the shape the config implies. Safetensors
/// weights are not copied or widened: a bf16 checkpoint stays bf16 in memory and the kernels
/// widen values in registers.
///
/// Linear layers are 4/8-bit when the checkpoint is GPTQ (repacked into the runtime layout at
/// load) or when `quantize` asks for round-to-nearest quantization at load; the embedding,
/// `lm_head` and norms stay 16-bit, as in the paper. Quantizing at load reads each 16-bit matrix
/// once and releases its pages, so memory peaks at the quantized model plus one matrix.
public final class ModelWeights: @unchecked Sendable {
  public let source: any WeightSource
  /// The token embedding: 16/32-bit, or a GGUF's quantized matrix kept as stored.
  public let embedding: LinearWeight
  public let layers: [LayerWeights]
  public let finalNorm: WeightVector
  /// The output projection; the embedding matrix itself when the model ties them.
  public let lmHead: LinearWeight
  /// Bytes of all tensors the model reads (the embedding counted once when tied), quantized
  /// linears in their runtime layout.
  public let byteCount: Int
  /// How the linear layers are stored.
  public let format: WeightFormat
  /// Owners of the quantized linears' memory.
  private let quantizedStorage: [QuantizedMatrixStorage]

  /// Whether some quantized linear reads its input in an act-order permutation.
  public var reordersInputs: Bool {
    layers.contains { $0.linears.contains { if case .quantized(let m) = $0 { m.inputOrder != nil } else { false } } }
  }

  /// Whether some linear layer is quantized (their kernels then prepare inputs in scratch).
  public var hasQuantizedLinears: Bool { !quantizedStorage.isEmpty }

  /// Whether some linear call (`LayerWeights.linearCalls`) is all bf16: the bf16 tile takes such
  /// calls, rounding their input rows in scratch.
  public var hasBF16Linears: Bool {
    layers.contains { layer in
      layer.linearCalls.contains { call in
        call.allSatisfy { if case .dense(let m) = $0 { m.elementType == .bf16 } else { false } }
      }
    }
  }

  /// `progress(done, total)` is called after each layer (GGUF repacking and `quantize` make
  /// loading take seconds to minutes; mapping a 16-bit folder takes milliseconds).
  public init(
    source: any WeightSource, config: ModelConfig, quantize: WeightQuantization? = nil,
    progress: (_ layersDone: Int, _ layers: Int) -> Void = { _, _ in }
  ) throws {
    self.source = source
    if config.gptq != nil, quantize != nil {
      throw EngineError.invalidInput("the model in \(source.location) is already GPTQ-quantized; load it without --weights")
    }
    var resolver = TensorResolver(source: source, gptq: config.gptq, quantize: quantize)
    let h = config.hiddenSize
    embedding = try resolver.heldOrDense("model.embed_tokens.weight", rows: config.vocabSize, columns: h)
    var layers: [LayerWeights] = []
    for i in 0..<config.layerCount {
      let p = "model.layers.\(i)."
      let bias = config.queryKeyValueBias
      let qkNorm = config.architecture.hasQKNorm
      layers.append(
        LayerWeights(
          inputNorm: try resolver.vector(p + "input_layernorm.weight", count: h),
          query: try resolver.linear(p + "self_attn.q_proj", rows: config.queryWidth, columns: h),
          key: try resolver.linear(p + "self_attn.k_proj", rows: config.kvWidth, columns: h),
          value: try resolver.linear(p + "self_attn.v_proj", rows: config.kvWidth, columns: h),
          output: try resolver.linear(p + "self_attn.o_proj", rows: h, columns: config.queryWidth),
          queryBias: bias ? try resolver.vector(p + "self_attn.q_proj.bias", count: config.queryWidth) : nil,
          keyBias: bias ? try resolver.vector(p + "self_attn.k_proj.bias", count: config.kvWidth) : nil,
          valueBias: bias ? try resolver.vector(p + "self_attn.v_proj.bias", count: config.kvWidth) : nil,
          outputBias: config.outputBias ? try resolver.vector(p + "self_attn.o_proj.bias", count: h) : nil,
          queryNorm: qkNorm ? try resolver.vector(p + "self_attn.q_norm.weight", count: config.headDim) : nil,
          keyNorm: qkNorm ? try resolver.vector(p + "self_attn.k_norm.weight", count: config.headDim) : nil,
          postAttentionNorm: try resolver.vector(p + "post_attention_layernorm.weight", count: h),
          feedForward: try Self.feedForward(layer: i, config: config, resolver: &resolver)))
      progress(i + 1, config.layerCount)
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
      lmHead = try resolver.heldOrDense("lm_head.weight", rows: config.vocabSize, columns: h)
    }
    try resolver.checkEveryTensorUsed(config: config)
    byteCount = resolver.usedBytes
    quantizedStorage = resolver.quantizedStorage
    if let gptq = config.gptq {
      format = .gptq(gptq.quantization)
    } else if let quantize {
      format = .roundToNearest(quantize)
    } else if let gguf = source as? GGUFWeights, !resolver.quantizedStorage.isEmpty {
      format = .gguf(bits: WeightFormat.predominantBits(layers.flatMap(\.linears)), types: gguf.linearTypes)
    } else {
      format = .dense
    }
  }
}

extension ModelWeights {
  fileprivate static func feedForward(layer l: Int, config: ModelConfig, resolver: inout TensorResolver) throws -> FeedForwardWeights {
    let (h, width) = (config.hiddenSize, config.mlpWidth(layer: l))
    let mlps = try config.mlpPrefixes(layer: l).map { p in
      MLPWeights(
        gate: try resolver.linear(p + "gate_proj", rows: width, columns: h),
        up: try resolver.linear(p + "up_proj", rows: width, columns: h),
        down: try resolver.linear(p + "down_proj", rows: h, columns: width))
    }
    guard let routing = config.experts, config.hasExperts(layer: l) else { return .dense(mlps[0]) }
    let router = try resolver.matrix("model.layers.\(l).mlp.gate.weight", rows: routing.count, columns: h)
    return .experts(router: router, experts: mlps, routing: routing)
  }
}

/// How a loaded model's linear layers are stored.
public enum WeightFormat: Sendable, Equatable, CustomStringConvertible {
  /// As in the file (16 or 32 bits).
  case dense
  /// From a GPTQ checkpoint.
  case gptq(WeightQuantization)
  /// Quantized round-to-nearest at load.
  case roundToNearest(WeightQuantization)
  /// A GGUF file's linear layers, those of a held type kept quantized; `bits` of most linear
  /// weights, `types` the ggml types of the linears (e.g. "Q4_1" or "Q8_0+Q4_K").
  case gguf(bits: Int, types: String)

  /// Bits per linear weight (of most of them, for a GGUF file that mixes types): 16 for dense.
  public var bits: Int {
    switch self {
    case .dense: 16
    case .gptq(let q), .roundToNearest(let q): q.bits
    case .gguf(let bits, _): bits
    }
  }

  public var description: String {
    switch self {
    case .dense: "dense"
    case .gptq(let q): "gptq \(q)"
    case .roundToNearest(let q): "rtn \(q)"
    case .gguf(_, let types): "gguf \(types)"
    }
  }

  /// The bits of most weights among `linears` (quantized at their code width, dense at 16).
  static func predominantBits(_ linears: [LinearWeight]) -> Int {
    var weights: [Int: Int] = [:]
    for linear in linears {
      switch linear {
      case .dense(let m): weights[16, default: 0] += m.rows * m.columns
      case .quantized(let m): weights[m.bits, default: 0] += m.rows * m.columns
      }
    }
    return weights.max { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }?.key ?? 16
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
  /// Every tensor the source holds, by Hugging Face name where it has one (else its own name).
  var tensorNames: [String] { get }
  /// The tensor called `name`, widened or reordered as needed for the kernels; its shape is
  /// checked by the caller. Throws for a missing tensor or an unusable type.
  func resolve(_ name: String) throws -> ResolvedTensor
  /// Calls `body` with the tensor as `resolve` gives it, for a tensor read once (e.g. to
  /// quantize or convert it): afterwards no widened copy is kept and its mapped pages are
  /// released.
  func withTensor<Result>(_ name: String, _ body: (ResolvedTensor) throws -> Result) throws -> Result
}

extension Checkpoint: WeightSource {
  public var location: String { directory }

  public func contains(_ name: String) -> Bool { tensor(name) != nil }

  public func withTensor<Result>(_ name: String, _ body: (ResolvedTensor) throws -> Result) throws -> Result {
    defer { releasePages(of: name) }
    return try body(try resolve(name))
  }

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

/// Looks tensors up by name and checks their shapes; sums the bytes of those used; quantizes
/// or repacks linear layers.
struct TensorResolver {
  let source: any WeightSource
  let gptq: GPTQConfig?
  let quantize: WeightQuantization?
  private(set) var usedBytes = 0
  private(set) var quantizedStorage: [QuantizedMatrixStorage] = []
  private var used = Set<String>()

  init(source: any WeightSource, gptq: GPTQConfig? = nil, quantize: WeightQuantization? = nil) {
    self.source = source
    self.gptq = gptq
    self.quantize = quantize
  }

  /// The matrix `name` (the embedding or `lm_head`): a GGUF's held type kept quantized, else
  /// as stored or widened. GPTQ and `--weights` leave these 16-bit, as the paper does.
  mutating func heldOrDense(_ name: String, rows: Int, columns: Int) throws -> LinearWeight {
    if gptq == nil, quantize == nil, let gguf = source as? GGUFWeights, let held = try gguf.quantizedLinear(name, rows: rows, columns: columns) {
      used.insert(name)
      quantizedStorage.append(held)
      usedBytes += held.matrix.byteCount
      return .quantized(held.matrix)
    }
    return .dense(try matrix(name, rows: rows, columns: columns))
  }

  /// The linear layer `prefix` (`prefix.weight`, or GPTQ's `prefix.qweight` and companions).
  mutating func linear(_ prefix: String, rows: Int, columns: Int) throws -> LinearWeight {
    var storage: QuantizedMatrixStorage
    if let gptq {
      guard let checkpoint = source as? Checkpoint else {
        throw EngineError.unsupported("GPTQ weights outside a safetensors checkpoint (\(source.location))")
      }
      storage = try GPTQTensors.load(from: checkpoint, prefix: prefix, rows: rows, columns: columns, config: gptq)
      for suffix in GPTQTensors.suffixes {
        checkpoint.releasePages(of: prefix + "." + suffix)
        used.insert(prefix + "." + suffix)
      }
    } else if let quantize {
      let name = prefix + ".weight"
      used.insert(name)
      if let problem = quantize.layoutError(columns: columns) {
        throw EngineError.unsupported("quantizing \(name) to \(quantize): \(problem)")
      }
      storage = try source.withTensor(name) { tensor in
        guard tensor.shape == [rows, columns] else {
          throw EngineError.invalidWeights(
            reason: "tensor \(name) in \(source.location) has shape \(tensor.shape) but the model's config implies \([rows, columns])")
        }
        return WeightQuantizer.roundToNearest(
          DenseMatrix(base: tensor.pointer, rows: rows, columns: columns, elementType: tensor.elementType), quantize)
      }
    } else if let gguf = source as? GGUFWeights, let held = try gguf.quantizedLinear(prefix + ".weight", rows: rows, columns: columns) {
      used.insert(prefix + ".weight")
      storage = held
    } else {
      return .dense(try matrix(prefix + ".weight", rows: rows, columns: columns))
    }
    quantizedStorage.append(storage)
    usedBytes += storage.matrix.byteCount
    return .quantized(storage.matrix)
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

  /// Refuses a checkpoint with tensors the config does not use: they mean the config and the
  /// weights disagree (e.g. `num_hidden_layers` smaller than the layers stored), and running
  /// the part the config names would give fluent-looking garbage.
  func checkEveryTensorUsed(config: ModelConfig) throws {
    // Old transformers saved RoPE's inverse frequencies as buffers; they are recomputed.
    let unused = source.tensorNames.filter { !used.contains($0) && !$0.hasSuffix(".rotary_emb.inv_freq") }.sorted()
    guard !unused.isEmpty else { return }
    let shown = unused.prefix(3).joined(separator: ", ") + (unused.count > 3 ? " and \(unused.count - 3) more" : "")
    var hint = "its config describes \(config.layerCount) layers"
    if unused.contains("lm_head.weight") && config.tiedEmbeddings { hint = "its config ties lm_head to the embedding" }
    throw EngineError.invalidWeights(
      reason: "\(source.location) holds tensors the model does not use (\(shown)); \(hint), so the config and the weights disagree")
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
