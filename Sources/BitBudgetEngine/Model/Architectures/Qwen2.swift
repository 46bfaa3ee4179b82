import Foundation

extension Architecture {
  /// Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`): q/k/v biases always, none on o_proj.
  public static let qwen2 = Architecture(
    modelType: "qwen2", ggufNames: ["qwen2"], exportClass: "Qwen2ForCausalLM", hasQKNorm: false, alwaysQKVBias: true,
    ggufPermutesQueryKey: false,
    readConfig: { _, _ in },
    exportConfig: { config, root in
      root["use_sliding_window"] = false
      root["sliding_window"] = NSNull()
      root["max_window_layers"] = config.layerCount
    })
}
