import BitBudgetKernels
import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

@Suite struct ModelLoadingTests {
  static var qwen3: [String: Any] { [
    "model_type": "qwen3", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16", "tie_word_embeddings": true,
    "eos_token_id": [1, 2],
  ] }

  static func parse(_ object: [String: Any]) throws -> ModelConfig {
    try ModelConfig.parse(try JSONSerialization.data(withJSONObject: object), path: "config.json")
  }

  @Test func acceptsBothConfigStyles() throws {
    let legacy = try Self.parse(Self.qwen3)
    #expect(legacy.ropeTheta == 1_000_000)
    #expect(legacy.declaredDType == "bfloat16")
    #expect(legacy.eosTokenIds == [1, 2])
    #expect(legacy.queryWidth == 64 && legacy.kvWidth == 32)
    var modern = Self.qwen3
    modern["rope_theta"] = nil
    modern["torch_dtype"] = nil
    modern["rope_parameters"] = ["rope_theta": 5_000_000.0, "rope_type": "default"]
    modern["dtype"] = "float32"
    modern["eos_token_id"] = 7
    let parsed = try Self.parse(modern)
    #expect(parsed.ropeTheta == 5_000_000)
    #expect(parsed.declaredDType == "float32")
    #expect(parsed.eosTokenIds == [7])
    // head_dim defaults to hidden/heads; kv heads default to heads.
    var minimal = Self.qwen3
    minimal["head_dim"] = nil
    minimal["num_key_value_heads"] = nil
    let defaults = try Self.parse(minimal)
    #expect(defaults.headDim == 16 && defaults.kvHeads == 4)
  }

  @Test func rejectsInconsistentConfigs() throws {
    let cases: [([String: Any?], String)] = [
      (["model_type": "gpt2"], "model_type \"gpt2\""),
      (["num_key_value_heads": 3], "not a multiple"),
      (["head_dim": 15], "even"),
      (["hidden_size": nil], "missing \"hidden_size\""),
      (["hidden_size": "64"], "hidden_size"),
      (["hidden_size": 0], "hidden_size"),
      (["vocab_size": 1e12], "vocab_size"),
      (["hidden_act": "gelu"], "hidden_act"),
      (["use_sliding_window": true], "sliding-window"),
      (["rope_scaling": ["rope_type": "dynamic", "factor": 4]], "dynamic"),
      (["rope_parameters": ["rope_type": "linear", "rope_theta": 10000.0]], "linear"),
      (["rms_norm_eps": -1.0], "rms_norm_eps"),
      (["tie_word_embeddings": "yes"], "tie_word_embeddings"),
      (["eos_token_id": "x"], "eos_token_id"),
      (["head_dim": nil, "hidden_size": 66], "no head_dim"),
    ]
    for (changes, phrase) in cases {
      var object = Self.qwen3
      for (key, value) in changes { object[key] = value }
      do {
        _ = try Self.parse(object)
        Issue.record("accepted \(changes)")
      } catch let error as EngineError {
        #expect(error.description.contains(phrase), "\(changes): \(error)")
      }
    }
    #expect(throws: EngineError.self) { try ModelConfig.parse(Data("[]".utf8), path: "config.json") }
    #expect(throws: EngineError.self) { try ModelConfig.parse(Data("{".utf8), path: "config.json") }
  }

  /// A folder whose config and weights disagree is rejected with the tensor's name.
  @Test func rejectsWeightsThatDoNotMatchTheConfig() throws {
    let source = Fixtures.modelPath("qwen3-gqa-tied-f32")
    let cases: [([String: Any], String)] = [
      (["hidden_size": 96], "shape"),
      (["num_hidden_layers": 3], "model.layers.2"),
      (["tie_word_embeddings": false], "lm_head.weight is missing"),
      (["model_type": "qwen2"], "q_proj.bias"),
      (["attention_bias": true], "q_proj.bias"),
      (["vocab_size": 511], "model.embed_tokens.weight"),
      // Fewer layers than stored would run part of the model: refused, not silently cut.
      (["num_hidden_layers": 1], "tensors the model does not use (model.layers.1."),
      // JSON's true is not the number 1.
      (["num_hidden_layers": true], "\"num_hidden_layers\" must be an integer"),
      (["hidden_size": false], "\"hidden_size\" must be an integer"),
      (["rms_norm_eps": true], "\"rms_norm_eps\" must be a number"),
    ]
    for (changes, phrase) in cases {
      let directory = try Fixtures.temporaryDirectory("weights")
      defer { try? FileManager.default.removeItem(at: directory) }
      try FileManager.default.copyItem(
        atPath: (source as NSString).appendingPathComponent("model.safetensors"),
        toPath: directory.appendingPathComponent("model.safetensors").path)
      var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source).appendingPathComponent("config.json"))) as! [String: Any]
      for (key, value) in changes { config[key] = value }
      try JSONSerialization.data(withJSONObject: config).write(to: directory.appendingPathComponent("config.json"))
      do {
        _ = try DecoderModel.load(path: directory.path)
        Issue.record("accepted \(changes)")
      } catch let error as EngineError {
        #expect(error.description.contains(phrase), "\(changes): \(error)")
      }
    }
  }

  @Test func rejectsMissingFolderAndFiles() throws {
    #expect(throws: EngineError.self) { try DecoderModel.load(path: "/nonexistent/model") }
    let directory = try Fixtures.temporaryDirectory("empty")
    defer { try? FileManager.default.removeItem(at: directory) }
    #expect(throws: EngineError.self) { try DecoderModel.load(path: directory.path) }
    try JSONSerialization.data(withJSONObject: Self.qwen3).write(to: directory.appendingPathComponent("config.json"))
    do {
      _ = try DecoderModel.load(path: directory.path)
      Issue.record("loaded a folder without weights")
    } catch let error as EngineError {
      #expect(error.description.contains("no model.safetensors"))
    }
  }

  @Test func countsWeightBytesOnce() throws {
    let tied = try DecoderModel.load(path: Fixtures.modelPath("qwen3-gqa-tied-f32"))
    let checkpoint = try #require(tied.weights.source as? Checkpoint)
    let total = checkpoint.files.reduce(0) { sum, file in sum + file.tensors.values.reduce(0) { $0 + $1.byteCount } }
    #expect(tied.weights.byteCount == total)
    func base(_ weight: LinearWeight) -> UnsafeRawPointer? { if case .dense(let m) = weight { m.base } else { nil } }
    #expect(base(tied.weights.lmHead) != nil && base(tied.weights.lmHead) == base(tied.weights.embedding))
    let untied = try DecoderModel.load(path: Fixtures.modelPath("qwen3-mha-untied-bf16"))
    #expect(base(untied.weights.lmHead) != base(untied.weights.embedding))
    #expect(try untied.stopTokenIds() == [1])
  }
}
