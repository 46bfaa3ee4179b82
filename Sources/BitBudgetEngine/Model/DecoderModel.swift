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

  /// A fresh, empty full KV cache for this model.
  public func makeCache(elementType: ElementType = .bf16) -> FullKVCache {
    FullKVCache(geometry: KVCacheGeometry(config), elementType: elementType)
  }
}
