import Foundation

extension Architecture {
  /// Llama 2/3 and SmolLM2 (`LlamaForCausalLM`); GGUF files of Llama-family models (Mistral's
  /// too) are written as "llama" with q/k rows permuted.
  public static let llama = Architecture(
    modelType: "llama", ggufNames: ["llama"], exportClass: "LlamaForCausalLM", hasQKNorm: false, alwaysQKVBias: false,
    ggufPermutesQueryKey: true,
    readConfig: { _, _ in },
    exportConfig: { config, root in
      root["attention_bias"] = config.queryKeyValueBias
      root["mlp_bias"] = false
      root["pretraining_tp"] = 1
    })
}
