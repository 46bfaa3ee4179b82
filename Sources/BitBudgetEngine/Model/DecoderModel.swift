import BitBudgetKernels
import Foundation

/// A loaded model: its validated config and its weights (memory-mapped, or widened from a GGUF
/// file's quantized blocks). Immutable and shareable; running it needs an `InferenceSession`.
public final class DecoderModel: @unchecked Sendable {
  public let config: ModelConfig
  public let weights: ModelWeights
  /// The model folder or GGUF file it was loaded from.
  public let path: String
  /// The GGUF file, when the model came from one (its metadata also carries the tokenizer).
  public let gguf: GGUFFile?

  public init(config: ModelConfig, weights: ModelWeights, path: String, gguf: GGUFFile? = nil) {
    self.config = config
    self.weights = weights
    self.path = path
    self.gguf = gguf
  }

  /// The folder of the model's side files (generation_config.json, tokenizer files): the model
  /// folder itself; nil for a GGUF file, which carries everything inside.
  public var directory: String? { gguf == nil ? path : nil }

  /// Loads a Hugging Face model folder (`config.json` + safetensors, 16/32-bit or GPTQ; only
  /// headers are read and 16/32-bit weights are mapped) or a GGUF file (linear layers of a type
  /// the quantized kernels hold kept quantized, other block-quantized tensors widened to bf16;
  /// with `ggufWidening`, every block-quantized tensor widened to that type). `quantize`
  /// quantizes the linear layers round-to-nearest at load. `path` may also be a Hub id
  /// (`ORG/NAME[@REVISION][:QUANT]`) of a model in the local Hugging Face cache. `progress`
  /// gets the layers loaded so far and the layer count.
  public static func load(
    path reference: String, ggufWidening: ElementType? = nil, quantize: WeightQuantization? = nil,
    progress: (_ layersDone: Int, _ layers: Int) -> Void = { _, _ in }
  ) throws -> DecoderModel {
    let path = try HubCache.resolve(reference)
    if try isModelFile(path) {
      let file = try GGUFFile(path: path)
      let config = try ModelConfig.fromGGUF(file)
      let source = GGUFWeights(
        file: file, config: config, widenedType: ggufWidening ?? .bf16, keepsQuantized: ggufWidening == nil && quantize == nil)
      let weights = try ModelWeights(source: source, config: config, quantize: quantize, progress: progress)
      return DecoderModel(config: config, weights: weights, path: path, gguf: file)
    }
    let config = try ModelConfig.load(directory: path)
    let checkpoint = try Checkpoint(directory: path)
    let weights = try ModelWeights(source: checkpoint, config: config, quantize: quantize, progress: progress)
    return DecoderModel(config: config, weights: weights, path: path)
  }

  /// Whether `path` names a model file (GGUF) rather than a model folder; throws when it names
  /// neither.
  static func isModelFile(_ path: String) throws -> Bool {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw EngineError.unreadableFile(path: path, reason: "no such file or folder")
    }
    return !isDirectory.boolValue
  }

  /// Stop tokens: `eos_token_id` of `generation_config.json` if the folder has one, else of
  /// config.json.
  public func stopTokenIds() throws -> [Int] {
    guard let directory else { return config.eosTokenIds }
    let path = (directory as NSString).appendingPathComponent("generation_config.json")
    if let data = FileManager.default.contents(atPath: path) {
      guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw EngineError.invalidConfig(path: path, reason: "not a JSON object")
      }
      if let ids = try ConfigReader(root: root, path: path).optionalTokenIds("eos_token_id"), !ids.isEmpty {
        return ids
      }
    }
    return config.eosTokenIds
  }

  /// The sampling settings of `generation_config.json`: its temperature, top-k, top-p and min-p
  /// when `do_sample` is true, else greedy (transformers' behaviour); greedy without the file.
  /// For a GGUF model, its `general.sampling.*` metadata, greedy without it.
  public func generationDefaults() throws -> SamplingParameters {
    if let gguf { return try Self.samplingDefaults(gguf) }
    guard let directory else { return .greedy }
    let path = (directory as NSString).appendingPathComponent("generation_config.json")
    guard let data = FileManager.default.contents(atPath: path) else { return .greedy }
    guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw EngineError.invalidConfig(path: path, reason: "not a JSON object")
    }
    let reader = ConfigReader(root: root, path: path)
    guard try reader.optionalBool("do_sample") == true else { return .greedy }
    let parameters = SamplingParameters(
      temperature: Float(try reader.optionalNumber("temperature") ?? 1),
      topK: Int(try reader.optionalNumber("top_k") ?? 50),
      topP: Float(try reader.optionalNumber("top_p") ?? 1),
      minP: Float(try reader.optionalNumber("min_p") ?? 0))
    guard parameters.temperature >= 0, parameters.topK >= 0, (0...1).contains(parameters.topP), (0...1).contains(parameters.minP) else {
      throw EngineError.invalidConfig(path: path, reason: "sampling settings out of range (\(parameters))")
    }
    return parameters
  }

  /// `general.sampling.temp`, `.top_k`, `.top_p`, `.min_p` of a GGUF file (llama.cpp's
  /// defaults for the ones missing); greedy when the file has none of them.
  static func samplingDefaults(_ file: GGUFFile) throws -> SamplingParameters {
    let keys = ["temp", "top_k", "top_p", "min_p"].map { "general.sampling.\($0)" }
    guard keys.contains(where: { file.metadata[$0] != nil }) else { return .greedy }
    func number(_ key: String, _ fallback: Double) throws -> Double {
      guard let value = file.metadata[key] else { return fallback }
      guard let number = value.number, number.isFinite else {
        throw EngineError.invalidConfig(path: file.path, reason: "\(key) is not a number")
      }
      return number
    }
    let parameters = SamplingParameters(
      temperature: Float(try number(keys[0], 0.8)), topK: Int(try number(keys[1], 40)),
      topP: Float(try number(keys[2], 0.95)), minP: Float(try number(keys[3], 0.05)))
    guard parameters.temperature >= 0, parameters.topK >= 0, (0...1).contains(parameters.topP), (0...1).contains(parameters.minP) else {
      throw EngineError.invalidConfig(path: file.path, reason: "general.sampling settings out of range (\(parameters))")
    }
    return parameters
  }
}
