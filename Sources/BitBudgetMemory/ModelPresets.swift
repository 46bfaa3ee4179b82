import BitBudgetEngine

/// Configurations of the Qwen3 models (the dense ones of the paper, and the two mixture-of-experts
/// ones, whose every expert is resident), for planning without weights.
public enum ModelPresets {
  /// One model: its name and configuration.
  public struct Preset: Sendable {
    public let name: String
    public let config: ModelConfig
    /// Whether the paper's 16-bit figure counts `lm_head` apart from a tied embedding (the
    /// Qwen3-0.6B and -1.7B bf16 checkpoints store it; Table 1 counts it).
    public let paperCountsTiedHead: Bool
  }

  public static let all: [Preset] = [
    preset("qwen3-0.6b", layers: 28, hidden: 1024, intermediate: 3072, queryHeads: 16, tied: true, paperHead: true),
    preset("qwen3-1.7b", layers: 28, hidden: 2048, intermediate: 6144, queryHeads: 16, tied: true, paperHead: true),
    preset("qwen3-4b", layers: 36, hidden: 2560, intermediate: 9728, queryHeads: 32, tied: true, paperHead: false),
    preset("qwen3-8b", layers: 36, hidden: 4096, intermediate: 12288, queryHeads: 32, tied: false, paperHead: false),
    preset("qwen3-14b", layers: 40, hidden: 5120, intermediate: 17408, queryHeads: 40, tied: false, paperHead: false),
    preset("qwen3-32b", layers: 64, hidden: 5120, intermediate: 25600, queryHeads: 64, tied: false, paperHead: false),
    // Qwen3-30B-A3B and Qwen3-235B-A22B (config.json of their Hub repositories): 128 experts,
    // 8 per token, 4 KV heads.
    preset(
      "qwen3-30b-a3b", layers: 48, hidden: 2048, intermediate: 6144, queryHeads: 32, kvHeads: 4, tied: false, paperHead: false,
      experts: MixtureOfExperts(count: 128, perToken: 8, intermediateSize: 768, normalizesTopK: true)),
    preset(
      "qwen3-235b-a22b", layers: 94, hidden: 4096, intermediate: 12288, queryHeads: 64, kvHeads: 4, tied: false, paperHead: false,
      experts: MixtureOfExperts(count: 128, perToken: 8, intermediateSize: 1536, normalizesTopK: true)),
  ]

  public static func named(_ name: String) -> Preset? { all.first { $0.name == name.lowercased() } }

  static func preset(
    _ name: String, layers: Int, hidden: Int, intermediate: Int, queryHeads: Int, kvHeads: Int = 8, tied: Bool, paperHead: Bool,
    experts: MixtureOfExperts? = nil
  ) -> Preset {
    var config = ModelConfig(
      architecture: experts == nil ? .qwen3 : .qwen3MoE, vocabSize: 151_936, hiddenSize: hidden, intermediateSize: intermediate,
      layerCount: layers, queryHeads: queryHeads, kvHeads: kvHeads, headDim: 128, rmsNormEpsilon: 1e-6,
      ropeTheta: 1_000_000, maxPositions: 40_960, tiedEmbeddings: tied, declaredDType: "bfloat16",
      bosTokenId: 151_643, eosTokenIds: [151_645])
    config.experts = experts
    return Preset(name: name, config: config, paperCountsTiedHead: paperHead)
  }
}
