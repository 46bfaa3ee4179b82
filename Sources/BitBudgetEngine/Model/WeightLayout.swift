import BitBudgetKernels
import Foundation

/// What a model's weights occupy once loaded, known from file headers (and, for GPTQ
/// checkpoints, the small `g_idx` tensors): every tensor the forward pass uses with its shape and
/// its bytes in memory — its own dtype for safetensors and for F32/F16/BF16 GGUF tensors used in
/// place, the widening type for block-quantized (and reordered F16) GGUF tensors, and the runtime
/// layout (`QuantizedMatrix.byteCount`) for quantized linears. `byteCount` equals
/// `ModelWeights.byteCount` of the loaded model.
public struct WeightLayout: Sendable {
  /// One tensor as the engine holds it: name, shape and resident bytes.
  public struct Tensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let byteCount: Int
    /// For a tensor held unquantized: its element type in memory.
    public let elementType: ElementType?
    /// For a quantized linear (`name` is its `.weight`): how it is quantized.
    public let quantization: WeightQuantization?
    /// For a quantized linear: whether it keeps an act-order input order.
    public let reordersInput: Bool

    public init(
      name: String, shape: [Int], byteCount: Int, elementType: ElementType? = nil, quantization: WeightQuantization? = nil,
      reordersInput: Bool = false
    ) {
      self.name = name
      self.shape = shape
      self.byteCount = byteCount
      self.elementType = elementType
      self.quantization = quantization
      self.reordersInput = reordersInput
    }

    /// A `[rows, columns]` tensor held unquantized as `type`.
    static func dense(_ name: String, _ shape: [Int], _ type: ElementType) -> Tensor {
      Tensor(name: name, shape: shape, byteCount: shape.reduce(1, *) * type.byteCount, elementType: type)
    }

    /// A quantized `[rows, columns]` linear in the runtime layout.
    static func quantized(
      _ name: String, _ shape: [Int], _ q: WeightQuantization, form: QuantizedMatrix.GroupParameters, reordersInput: Bool
    ) -> Tensor {
      Tensor(
        name: name, shape: shape,
        byteCount: QuantizedMatrix.byteCount(
          rows: shape[0], columns: shape[1], bits: q.bits, groupSize: q.groupSize(columns: shape[1]), form: form, reordersInput: reordersInput),
        quantization: q, reordersInput: reordersInput)
    }
  }

  public let config: ModelConfig
  public let tensors: [Tensor]

  public var byteCount: Int { tensors.reduce(0) { $0 + $1.byteCount } }

  /// Bits of the linear layers (of most linear weights, for a GGUF file that mixes types): 16
  /// when they are not quantized.
  public var linearBits: Int {
    var weights: [Int: Int] = [:]
    for tensor in tensors where Self.isLinearWeight(tensor.name) {
      weights[tensor.quantization?.bits ?? 16, default: 0] += tensor.shape.reduce(1, *)
    }
    return weights.max { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }?.key ?? 16
  }

  /// Whether some linear call is held all bf16, as `ModelWeights.hasBF16Linears` (the engine then
  /// keeps room for inputs rounded to bf16, `LinearScratch`).
  public var hasBF16Linears: Bool {
    let types = Dictionary(tensors.map { ($0.name, $0.elementType) }, uniquingKeysWith: { first, _ in first })
    return (0..<config.layerCount).contains { l in
      config.linearCalls(layer: l).contains { call in call.allSatisfy { types[$0 + ".weight"] == .bf16 } }
    }
  }

  /// Whether some tensor is held quantized (a linear, or a GGUF's embedding or `lm_head`), as
  /// `ModelWeights.hasQuantizedLinears` counts them (the engine then keeps room for the quantized
  /// kernels' inputs).
  public var hasQuantizedTensors: Bool { tensors.contains { $0.quantization != nil } }


  public init(config: ModelConfig, tensors: [Tensor]) {
    self.config = config
    self.tensors = tensors
  }

  /// Every tensor of `config` held as `elementType` (e.g. a bf16 checkpoint).
  public init(config: ModelConfig, elementType: ElementType) {
    self.config = config
    tensors = config.tensorShapes.map { .dense($0.name, $0.shape, elementType) }
  }

  /// Whether `name` is the weight of a decoder layer's linear layer (attention's, the MLP's or
  /// an expert's; not a router's).
  static func isLinearWeight(_ name: String) -> Bool {
    name.hasPrefix("model.layers.")
      && ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].contains { name.hasSuffix(".\($0).weight") }
  }

  /// This layout with its 16-bit linears quantized as `quantize` says (what `--weights 8|4`
  /// loads). Throws for a layout already quantized or a shape the kernels cannot take.
  public func quantized(_ quantize: WeightQuantization) throws -> WeightLayout {
    guard linearBits == 16 else {
      throw EngineError.invalidInput("the model is already \(linearBits)-bit; it cannot be quantized again")
    }
    return WeightLayout(config: config, tensors: try tensors.map { tensor in
      guard Self.isLinearWeight(tensor.name) else { return tensor }
      if let problem = quantize.layoutError(columns: tensor.shape[1]) {
        throw EngineError.unsupported("quantizing \(tensor.name) to \(quantize): \(problem)")
      }
      return .quantized(tensor.name, tensor.shape, quantize, form: quantize.heldForm, reordersInput: false)
    })
  }

  /// Reads the headers of a model folder or GGUF file (`ggufWidening` as
  /// `DecoderModel.load(path:ggufWidening:)` takes it). A Hub id must be in the cache already: the
  /// memory model never downloads a model to read its headers.
  public static func load(path reference: String, ggufWidening: ElementType? = nil) throws -> WeightLayout {
    let path = try HubCache.resolve(reference, content: .cached)
    if try DecoderModel.isModelFile(path) {
      let file = try GGUFFile(path: path)
      let config = try ModelConfig.fromGGUF(file)
      let tensors = try config.tensorShapes.map { name, shape -> Tensor in
        guard let ggufName = GGUFWeights.ggufName(name), let info = file.tensors[ggufName] else {
          throw EngineError.invalidWeights(reason: "tensor \(name) is missing in \(path)")
        }
        // As GGUFWeights resolves it: linears, embedding and output of a held type stay
        // quantized; F32 stays F32;
        // F16/BF16 are used in place unless llama's q/k rows are reordered; everything else is
        // widened.
        if ggufWidening == nil, isLinearWeight(name) || name == "model.embed_tokens.weight" || name == "lm_head.weight", shape.count == 2, let (bits, form, groupSize) = GGUFWeights.heldForm(info.type),
          GGUFWeights.keepsQuantized(info, columns: shape[1])
        {
          return .quantized(name, shape, WeightQuantization(bits: bits, groupSize: groupSize, symmetric: !form.addsMinimum), form: form, reordersInput: false)
        }
        let reordered = config.architecture.ggufPermutesQueryKey && (name.hasSuffix("q_proj.weight") || name.hasSuffix("k_proj.weight"))
        let type: ElementType
        switch GGUFWeights.elementType(info.type) {
        case .f32?: type = .f32
        case let inPlace? where !reordered: type = inPlace
        default: type = ggufWidening ?? .bf16
        }
        return .dense(name, shape, type)
      }
      return WeightLayout(config: config, tensors: tensors)
    }
    let config = try ModelConfig.load(directory: path)
    let checkpoint = try Checkpoint(directory: path)
    let tensors = try config.tensorShapes.map { name, shape -> Tensor in
      if let gptq = config.gptq, isLinearWeight(name) {
        let prefix = String(name.dropLast(7))
        var reorders = false
        if let info = checkpoint.tensor(prefix + ".g_idx"), info.dtype == .i32, info.shape == [shape[1]],
          let pointer = checkpoint.pointer(to: prefix + ".g_idx")
        {
          reorders = try GPTQTensors.inputOrder(
            groupIndex: GPTQTensors.readInt32s(pointer, count: shape[1]), columns: shape[1],
            groupSize: gptq.quantization.groupSize(columns: shape[1]), name: prefix + ".g_idx") != nil
        }
        return .quantized(name, shape, gptq.quantization, form: gptq.quantization.heldForm, reordersInput: reorders)
      }
      guard let info = checkpoint.tensor(name) else {
        throw EngineError.invalidWeights(reason: "tensor \(name) is missing in \(path)")
      }
      guard let type = info.dtype.elementType else {
        throw EngineError.invalidWeights(reason: "tensor \(name) in \(path) has dtype \(info.dtype.rawValue); dense weights must be F32, F16 or BF16")
      }
      return .dense(name, shape, type)
    }
    return WeightLayout(config: config, tensors: tensors)
  }
}
