import BitBudgetTestSupport
import Foundation
import Testing

import BitBudgetEngine

@Suite struct ArchitectureTests {
  static func config(_ fields: [String: Any]) throws -> ModelConfig {
    var root: [String: Any] = [
      "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
      "num_key_value_heads": 2, "max_position_embeddings": 32768,
    ]
    root.merge(fields) { $1 }
    return try ModelConfig.parse(try JSONSerialization.data(withJSONObject: root), path: "config.json")
  }

  @Test func everyModelTypeHasOneDefinition() {
    let types = Architecture.registry.map(\.modelType)
    #expect(Set(types).count == types.count)
    #expect(types.contains("mistral") && types.contains("smollm3") && types.contains("qwen3_moe"))
    #expect(Architecture.named(gguf: "llama") == .llama)
    #expect(Architecture.named(modelType: "gemma3") == nil)
  }

  /// transformers' defaults where config.json is silent: Mistral's window is 4,096 (refused
  /// below the context; null turns it off); SmolLM3 ties its embeddings, uses θ = 2·10⁶ and
  /// leaves RoPE out of every fourth layer.
  @Test func silentFieldsTakeTransformersDefaults() throws {
    #expect(throws: EngineError.self) { try Self.config(["model_type": "mistral"]) }
    #expect(try Self.config(["model_type": "mistral", "sliding_window": NSNull()]).architecture == .mistral)
    #expect(try Self.config(["model_type": "mistral", "sliding_window": 32768]).architecture == .mistral)
    let smol = try Self.config(["model_type": "smollm3"])
    #expect(smol.tiedEmbeddings && smol.ropeTheta == 2_000_000 && smol.layersWithoutRope == [3])
    let explicit = try Self.config(["model_type": "smollm3", "tie_word_embeddings": false, "rope_theta": 5e6, "no_rope_layer_interval": 2])
    #expect(!explicit.tiedEmbeddings && explicit.ropeTheta == 5e6 && explicit.layersWithoutRope == [1, 3])
    #expect(throws: EngineError.self) { try Self.config(["model_type": "smollm3", "no_rope_layers": [1, 2, 1, 1]]) }
  }
}
