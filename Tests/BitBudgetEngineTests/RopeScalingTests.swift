import BitBudgetKernels
import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// RoPE scaling read from config.json as transformers reads it, against the inverse frequencies and
/// attention factor of transformers' own functions (`ROPE_INIT_FUNCTIONS`, written to
/// Tests/Fixtures/rope/inverse-frequencies.json by scripts/make-reference-fixtures.py) for YaRN
/// (Qwen3's 4 × 32k, custom betas without truncation, DeepSeek's mscale pair, an explicit attention
/// factor), Llama 3.1's, linear and plain RoPE.
/// The end-to-end check is the parity of the `qwen3-yarn-f32` and `llama-rope3-tied-f32` fixtures
/// at positions past their original windows (`ModelParityTests`).
@Suite struct RopeScalingTests {
  struct Case: Decodable {
    let headDim: Int
    let maxPositionEmbeddings: Int
    let ropeParameters: [String: JSONValue]
    let inverseFrequencies: [Float]
    let attentionScaling: Float

    enum CodingKeys: String, CodingKey {
      case headDim = "head_dim", maxPositionEmbeddings = "max_position_embeddings", ropeParameters = "rope_parameters"
      case inverseFrequencies = "inverse_frequencies", attentionScaling = "attention_scaling"
    }
  }

  /// A JSON scalar of the parameters (numbers, strings, booleans).
  enum JSONValue: Decodable {
    case number(Double), string(String), bool(Bool)

    init(from decoder: Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let flag = try? container.decode(Bool.self) {
        self = .bool(flag)
      } else if let number = try? container.decode(Double.self) {
        self = .number(number)
      } else {
        self = .string(try container.decode(String.self))
      }
    }

    var any: Any {
      switch self {
      case .number(let value): value
      case .string(let value): value
      case .bool(let value): value
      }
    }
  }

  static func cases() throws -> [Case] {
    struct File: Decodable { let cases: [Case] }
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/rope/inverse-frequencies.json")
    return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).cases
  }

  static func config(_ test: Case, key: String = "rope_parameters") throws -> ModelConfig {
    let root: [String: Any] = [
      "model_type": "qwen3", "vocab_size": 64, "hidden_size": test.headDim * 2, "intermediate_size": 32,
      "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": test.headDim,
      "max_position_embeddings": test.maxPositionEmbeddings, key: test.ropeParameters.mapValues(\.any),
    ]
    return try ModelConfig.parse(try JSONSerialization.data(withJSONObject: root), path: "config.json")
  }

  /// Each frequency within a few f32 ulps (the same f32 operations; `pow` and `log` may round
  /// their last bit differently), the attention factor to f32 rounding; both spellings of the key.
  @Test func inverseFrequenciesMatchTransformers() throws {
    let cases = try Self.cases()
    #expect(cases.count == 8)
    for test in cases {
      for key in ["rope_parameters", "rope_scaling"] {
        let config = try Self.config(test, key: key)
        let rotary = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
        #expect(rotary.inverseFrequencies.count == test.inverseFrequencies.count)
        for (ours, theirs) in zip(rotary.inverseFrequencies, test.inverseFrequencies) {
          #expect(abs(ours - theirs) <= 4 * theirs.ulp, "\(config.ropeScaling): \(ours) vs \(theirs)")
        }
        #expect(abs(rotary.attentionScaling - test.attentionScaling) <= 2 * test.attentionScaling.ulp, "\(config.ropeScaling)")
      }
    }
  }

  @Test func unknownOrIncompleteScalingsAreRefused() throws {
    let base = try #require(try Self.cases().first)
    for parameters: [String: JSONValue] in [
      ["rope_type": .string("longrope"), "factor": .number(2)],
      ["rope_type": .string("linear")],
      ["rope_type": .string("llama3"), "factor": .number(8)],
      ["rope_type": .string("yarn"), "factor": .number(-1)],
      ["rope_type": .string("yarn"), "factor": .number(1e-50)],
      ["rope_type": .string("yarn"), "original_max_position_embeddings": .number(4096)],
      ["rope_type": .string("linear"), "factor": .number(2), "partial_rotary_factor": .number(0.5)],
      ["rope_type": .string("yarn"), "factor": .number(4), "mscale": .number(-20), "mscale_all_dim": .number(1)],
    ] {
      let test = Case(
        headDim: base.headDim, maxPositionEmbeddings: base.maxPositionEmbeddings, ropeParameters: parameters,
        inverseFrequencies: [], attentionScaling: 1)
      #expect(throws: EngineError.self, "\(parameters)") { try Self.config(test) }
    }
  }

  /// transformers 5's choice between the keys: a non-empty `rope_scaling` replaces
  /// `rope_parameters` whole (its theta too, falling back to the top level's); the older `type`
  /// spelling; a top-level `original_max_position_embeddings` wins; a null `truncate` is false;
  /// YaRN's context grows to factor × the original window.
  @Test func keysAreChosenAsTransformersChooses() throws {
    func parse(_ extra: [String: Any]) throws -> ModelConfig {
      var root: [String: Any] = [
        "model_type": "qwen3", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "max_position_embeddings": 40960,
      ]
      root.merge(extra) { $1 }
      return try ModelConfig.parse(try JSONSerialization.data(withJSONObject: root), path: "config.json")
    }
    let both = try parse([
      "rope_theta": 5000.0,
      "rope_parameters": ["rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "rope_theta": 1e6],
      "rope_scaling": ["type": "yarn", "factor": 4, "original_max_position_embeddings": 32768],
    ])
    #expect(both.ropeTheta == 5000)
    #expect(
      both.ropeScaling
        == .yarn(factor: 4, originalContext: 32768, attentionFactor: 0.1 * log(4) + 1, betaFast: 32, betaSlow: 1, truncate: true))
    #expect(both.maxPositions == 131072)
    let topLevel = try parse([
      "original_max_position_embeddings": 1024,
      "rope_parameters": ["rope_type": "yarn", "factor": 2, "original_max_position_embeddings": 4096, "truncate": NSNull()],
    ])
    #expect(topLevel.ropeScaling == .yarn(factor: 2, originalContext: 1024, attentionFactor: 0.1 * log(2) + 1, betaFast: 32, betaSlow: 1, truncate: false))
    #expect(topLevel.maxPositions == 40960)
    #expect(try parse(["rope_scaling": [String: Any](), "rope_parameters": ["rope_type": "linear", "factor": 2]]).ropeScaling == .linear(factor: 2))
    #expect(try parse(["rope_theta": 1e6]).ropeScaling == .none)
    #expect(throws: EngineError.self) { try parse(["rope_parameters": ["full_attention": ["rope_type": "default", "rope_theta": 1e6]]]) }
    #expect(throws: EngineError.self) { try parse(["partial_rotary_factor": 0.5]) }
  }

  /// A YaRN model exported (`GPTQExport`, round to nearest) reads back with the same scaling and
  /// the same logits as quantizing at load.
  @Test func exportKeepsTheScaling() throws {
    let path = Fixtures.modelPath("qwen3-yarn-f32")
    let source = try DecoderModel.load(path: path)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yarn-export-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let quantization = WeightQuantization(bits: 8, groupSize: 64)
    _ = try GPTQExport.write(try ModelQuantizer.roundToNearest(source, quantization), to: folder)
    let reloaded = try DecoderModel.load(path: folder)
    #expect(reloaded.config.ropeScaling == source.config.ropeScaling)
    #expect(reloaded.config.maxPositions == source.config.maxPositions && reloaded.config.ropeTheta == source.config.ropeTheta)
  }
}
