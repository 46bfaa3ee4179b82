import Foundation

extension Architecture {
  /// SmolLM3 (`SmolLM3ForCausalLM`): Llama's block, with RoPE left out of some layers ("NoPE":
  /// `no_rope_layers[i] == 0`, by default every fourth layer).
  public static let smollm3 = Architecture(
    modelType: "smollm3", ggufNames: [], exportClass: "SmolLM3ForCausalLM", hasQKNorm: false, alwaysQKVBias: false,
    ggufPermutesQueryKey: true, defaultRopeTheta: 2_000_000,
    readConfig: { config, reader in
      // SmolLM3Config's own defaults where config.json is silent.
      if reader.root["tie_word_embeddings"] == nil { config.tiedEmbeddings = true }
      let interval = try reader.optionalPositiveInt("no_rope_layer_interval", max: 1 << 20) ?? 4
      var usesRope = (0..<config.layerCount).map { ($0 + 1) % interval != 0 }
      if let given = reader.root["no_rope_layers"], !(given is NSNull) {
        guard let flags = JSONNumbers.nonNegativeIntegers(given), flags.count >= config.layerCount, flags.allSatisfy({ $0 <= 1 }) else {
          throw reader.fail("\"no_rope_layers\" must list 0 or 1 for each of the \(config.layerCount) layers")
        }
        usesRope = flags.prefix(config.layerCount).map { $0 == 1 }
      }
      config.layersWithoutRope = Set(usesRope.indices.filter { !usesRope[$0] })
    },
    exportConfig: { config, root in
      root["no_rope_layers"] = (0..<config.layerCount).map { config.layersWithoutRope.contains($0) ? 0 : 1 }
      root["use_sliding_window"] = false
      root["sliding_window"] = NSNull()
      root["attention_bias"] = config.queryKeyValueBias
      root["mlp_bias"] = false
    })
}
