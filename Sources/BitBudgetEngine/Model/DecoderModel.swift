import BitBudgetKernels
import Foundation

/// A loaded model: its validated config and its memory-mapped weights. Immutable and shareable;
/// running it needs an `InferenceSession`.
public final class DecoderModel: @unchecked Sendable {
  public let config: ModelConfig
  public let weights: ModelWeights
  public let directory: String

  public init(config: ModelConfig, weights: ModelWeights, directory: String) {
    self.config = config
    self.weights = weights
    self.directory = directory
  }

  /// Loads a Hugging Face model folder (`config.json` + safetensors). Only headers are read; the
  /// weights are mapped and paged in on first use.
  public static func load(directory: String) throws -> DecoderModel {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw EngineError.unreadableFile(path: directory, reason: "not a folder (expected a Hugging Face model folder)")
    }
    let config = try ModelConfig.load(directory: directory)
    let checkpoint = try Checkpoint(directory: directory)
    let weights = try ModelWeights(checkpoint: checkpoint, config: config)
    return DecoderModel(config: config, weights: weights, directory: directory)
  }

  /// Stop tokens: `eos_token_id` of `generation_config.json` if the folder has one, else of
  /// config.json.
  public func stopTokenIds() throws -> [Int] {
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
  public func generationDefaults() throws -> SamplingParameters {
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

  /// A fresh, empty full KV cache for this model.
  public func makeCache(elementType: ElementType = .bf16) -> FullKVCache {
    FullKVCache(geometry: KVCacheGeometry(config), elementType: elementType)
  }
}
