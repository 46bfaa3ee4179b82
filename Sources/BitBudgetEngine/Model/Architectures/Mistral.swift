import Foundation

extension Architecture {
  /// Mistral (`MistralForCausalLM`): Llama's block without biases. Its sliding window (4,096
  /// in v0.1) is refused unless it covers the whole context, as in v0.2 and later (null).
  public static let mistral = Architecture(
    modelType: "mistral", ggufNames: [], exportClass: "MistralForCausalLM", hasQKNorm: false, alwaysQKVBias: false,
    ggufPermutesQueryKey: true,
    readConfig: { config, reader in
      // Absent, transformers' MistralConfig takes 4,096; null turns the window off.
      let window = reader.root["sliding_window"] == nil ? 4_096 : try reader.optionalPositiveInt("sliding_window", max: Int.max)
      if let window, window < config.maxPositions {
        throw EngineError.unsupported(
          "sliding-window attention (sliding_window \(window) < max_position_embeddings \(config.maxPositions)) in \(reader.path)")
      }
    },
    exportConfig: { _, root in root["sliding_window"] = NSNull() })
}
