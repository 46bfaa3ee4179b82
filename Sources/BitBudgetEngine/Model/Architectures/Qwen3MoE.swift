import Foundation

extension Architecture {
  /// Qwen3-MoE (`Qwen3MoeForCausalLM`: Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3's attention, and
  /// MLPs of routed experts (top-k of a softmax router, renormalized with `norm_topk_prob`, no
  /// shared expert). config.json spells the expert count `num_experts` (transformers 4) or
  /// `num_local_experts` (5). Every expert is resident (in memory and in the memory model); each
  /// token runs `num_experts_per_tok` of them. Not read from GGUF: llama.cpp's files stack each
  /// layer's experts into one 3-D tensor, which the loader does not split.
  public static let qwen3MoE = Architecture(
    modelType: "qwen3_moe", ggufNames: [], exportClass: "Qwen3MoeForCausalLM", hasQKNorm: true, alwaysQKVBias: false,
    ggufPermutesQueryKey: false,
    readConfig: { config, reader in
      guard let count = try reader.optionalPositiveInt("num_local_experts", max: 4_096)
        ?? reader.optionalPositiveInt("num_experts", max: 4_096)
      else { throw reader.fail("missing \"num_experts\" (or \"num_local_experts\")") }
      let perToken = try reader.positiveInt("num_experts_per_tok", max: count)
      let width = try reader.positiveInt("moe_intermediate_size", max: ModelConfig.limits.intermediate)
      let step = try reader.optionalPositiveInt("decoder_sparse_step", max: 1_024) ?? 1
      var denseLayers = Set<Int>()
      if let listed = reader.root["mlp_only_layers"], !(listed is NSNull) {
        guard let layers = JSONNumbers.nonNegativeIntegers(listed), layers.allSatisfy({ $0 < config.layerCount }) else {
          throw reader.fail("\"mlp_only_layers\" must list layer indices below \(config.layerCount)")
        }
        denseLayers = Set(layers)
      }
      // transformers: a layer is sparse unless listed, and only every `decoder_sparse_step`-th.
      for layer in 0..<config.layerCount where (layer + 1) % step != 0 { denseLayers.insert(layer) }
      if let shared = try reader.optionalPositiveInt("shared_expert_intermediate_size", max: ModelConfig.limits.intermediate) {
        throw EngineError.unsupported("a shared expert (shared_expert_intermediate_size \(shared)) in \(reader.path)")
      }
      config.experts = MixtureOfExperts(
        count: count, perToken: perToken, intermediateSize: width,
        normalizesTopK: try reader.optionalBool("norm_topk_prob") ?? false, denseLayers: denseLayers)
    },
    exportConfig: { config, root in
      guard let experts = config.experts else { return }
      root["num_experts"] = experts.count
      root["num_experts_per_tok"] = experts.perToken
      root["moe_intermediate_size"] = experts.intermediateSize
      root["norm_topk_prob"] = experts.normalizesTopK
      root["decoder_sparse_step"] = 1
      root["mlp_only_layers"] = experts.denseLayers.sorted()
      root["attention_bias"] = config.queryKeyValueBias
    })
}

/// The routed experts of a mixture-of-experts model: `perToken` of `count` expert MLPs (each
/// `intermediateSize` wide) run for each token, in every layer but `denseLayers` (which keep the
/// dense MLP of `intermediateSize` of the config).
public struct MixtureOfExperts: Sendable, Equatable {
  public var count: Int
  public var perToken: Int
  public var intermediateSize: Int
  /// The top-k router probabilities are renormalized to sum to 1 (`norm_topk_prob`).
  public var normalizesTopK: Bool
  public var denseLayers: Set<Int>

  public init(count: Int, perToken: Int, intermediateSize: Int, normalizesTopK: Bool, denseLayers: Set<Int> = []) {
    self.count = count
    self.perToken = perToken
    self.intermediateSize = intermediateSize
    self.normalizesTopK = normalizesTopK
    self.denseLayers = denseLayers
  }
}
