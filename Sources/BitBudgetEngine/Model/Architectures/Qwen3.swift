import Foundation

extension Architecture {
  /// Qwen3 (`Qwen3ForCausalLM`): Llama's block with per-head q/k RMS norms; attention biases
  /// with `attention_bias`.
  public static let qwen3 = Architecture(
    modelType: "qwen3", ggufNames: ["qwen3"], exportClass: "Qwen3ForCausalLM", hasQKNorm: true, alwaysQKVBias: false,
    ggufPermutesQueryKey: false,
    readConfig: { _, _ in },
    exportConfig: { config, root in
      root["attention_bias"] = config.queryKeyValueBias
      root["use_sliding_window"] = false
      root["sliding_window"] = NSNull()
      root["max_window_layers"] = config.layerCount
    })
}
