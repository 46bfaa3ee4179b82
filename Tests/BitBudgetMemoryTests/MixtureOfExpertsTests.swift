import BitBudgetTestSupport
import Foundation
import Testing

import BitBudgetEngine
import BitBudgetMemory

@Suite struct MixtureOfExpertsTests {
  static let tiny = (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/moe/qwen3-moe-tiny")

  /// The presets' parameters equal what transformers builds from the same configs
  /// (Qwen3MoeForCausalLM on the meta device: 30,532,122,624 and 235,093,634,560), every
  /// expert resident: the 16-bit weights are 2 bytes per parameter in both conventions.
  @Test func presetsCountEveryExpert() throws {
    for (name, parameters) in [("qwen3-30b-a3b", 30_532_122_624), ("qwen3-235b-a22b", 235_093_634_560)] {
      let model = try MemoryModel.load(name)
      #expect(model.config.experts?.count == 128)
      #expect(try model.estimate(tokens: 0, convention: .paper).weightsBytes == 2 * parameters, "\(name)")
      #expect(try model.estimate(tokens: 0, convention: .engine).weightsBytes == 2 * parameters, "\(name)")
      // 4-bit: every expert's projections are quantized linears; the router stays 16-bit.
      #expect(try model.estimate(weightsBits: 4, tokens: 0, convention: .engine).weightsBytes < parameters * 6 / 10)
    }
    // KV: 4 KV heads of 128 in 48 layers, bf16: 96 KiB a token.
    let kv = try MemoryModel.load("qwen3-30b-a3b").estimate(tokens: 1024, convention: .paper).kvBytes
    #expect(kv == 48 * 2 * 4 * 128 * 2 * 1024)
  }

  /// A transformers checkpoint (4 experts, 2 per token, layer 1 dense through mlp_only_layers):
  /// its config reads in both spellings, the memory model's weights equal its parameters
  /// (scripts/make-reference-fixtures.py records transformers' count), and the engine refuses
  /// to run it with a message that says why.
  @Test func checkpointReadsAndIsRefusedByTheEngine() throws {
    let parameters = try #require(
      (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.tiny + "/parameters.json"))) as? [String: Any])?["parameters"] as? Int)
    let model = try MemoryModel.load(Self.tiny)
    #expect(model.config.architecture == .qwen3MoE)
    #expect(model.config.experts == MixtureOfExperts(count: 4, perToken: 2, intermediateSize: 16, normalizesTopK: true, denseLayers: [1]))
    #expect(try model.estimate(tokens: 0, convention: .engine).weightsBytes == 2 * parameters)
    #expect(try model.estimate(tokens: 0, convention: .paper).weightsBytes == 2 * parameters)
    do {
      _ = try DecoderModel.load(path: Self.tiny)
      Issue.record("a mixture-of-experts model was loaded")
    } catch let error as EngineError {
      #expect(error.description.contains("mixture-of-experts"))
    }
    // transformers 4 spells the count num_experts.
    let url = URL(fileURLWithPath: Self.tiny + "/config.json")
    var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    object["num_experts"] = object.removeValue(forKey: "num_local_experts")
    let config = try ModelConfig.parse(try JSONSerialization.data(withJSONObject: object), path: "config.json")
    #expect(config.experts?.count == 4)
    object.removeValue(forKey: "num_experts")
    #expect(throws: EngineError.self) { try ModelConfig.parse(try JSONSerialization.data(withJSONObject: object), path: "config.json") }
  }
}
