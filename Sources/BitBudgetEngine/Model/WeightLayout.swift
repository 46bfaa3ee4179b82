import BitBudgetKernels
import Foundation

/// What a model's weights occupy once loaded, known from file headers alone (no tensor is
/// read): every tensor the forward pass uses with its shape and the bytes per element it has in
/// memory — its own dtype for safetensors and for F32/F16/BF16 GGUF tensors used in place, the
/// widening type for block-quantized (and reordered F16) GGUF tensors. `byteCount` equals
/// `ModelWeights.byteCount` of the loaded model.
public struct WeightLayout: Sendable {
  public struct Tensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let elementBytes: Int

    public var byteCount: Int { shape.reduce(1, *) * elementBytes }
  }

  public let config: ModelConfig
  public let tensors: [Tensor]

  public var byteCount: Int { tensors.reduce(0) { $0 + $1.byteCount } }

  public init(config: ModelConfig, tensors: [Tensor]) {
    self.config = config
    self.tensors = tensors
  }

  /// Every tensor of `config` stored with `elementBytes` per element (e.g. a bf16 checkpoint).
  public init(config: ModelConfig, elementBytes: Int) {
    self.config = config
    tensors = config.tensorShapes.map { Tensor(name: $0.name, shape: $0.shape, elementBytes: elementBytes) }
  }

  /// Reads the headers of a model folder or GGUF file.
  public static func load(path: String, ggufWidening: ElementType = .bf16) throws -> WeightLayout {
    if try DecoderModel.isModelFile(path) {
      let file = try GGUFFile(path: path)
      let config = try ModelConfig.fromGGUF(file)
      let tensors = try config.tensorShapes.map { name, shape -> Tensor in
        guard let ggufName = GGUFWeights.ggufName(name), let info = file.tensors[ggufName] else {
          throw EngineError.invalidWeights(reason: "tensor \(name) is missing in \(path)")
        }
        // As GGUFWeights resolves it: F32 stays F32; F16/BF16 are used in place unless llama's
        // q/k rows are reordered; everything else is widened.
        let reordered = config.architecture == .llama && (name.hasSuffix("q_proj.weight") || name.hasSuffix("k_proj.weight"))
        let type: ElementType
        switch GGUFWeights.elementType(info.type) {
        case .f32?: type = .f32
        case let inPlace? where !reordered: type = inPlace
        default: type = ggufWidening
        }
        return Tensor(name: name, shape: shape, elementBytes: type.byteCount)
      }
      return WeightLayout(config: config, tensors: tensors)
    }
    let config = try ModelConfig.load(directory: path)
    let checkpoint = try Checkpoint(directory: path)
    let tensors = try config.tensorShapes.map { name, shape -> Tensor in
      guard let info = checkpoint.tensor(name) else {
        throw EngineError.invalidWeights(reason: "tensor \(name) is missing in \(path)")
      }
      return Tensor(name: name, shape: shape, elementBytes: info.dtype.byteCount)
    }
    return WeightLayout(config: config, tensors: tensors)
  }
}
