import BitBudgetKernels
import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// RoPE scaling read from config.json as transformers reads it, against the inverse frequencies and
/// attention factor of transformers' own functions (`ROPE_INIT_FUNCTIONS`, written to
/// Tests/Fixtures/rope/inverse-frequencies.json by scripts/make-reference-fixtures.py) for YaRN
/// (Qwen3's 4 × 32k, custom betas without truncation, DeepSeek's mscale pair, an explicit attention
/// factor, the factor derived from the context lengths), Llama 3.1's, linear and plain RoPE.
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
    ] {
      let test = Case(
        headDim: base.headDim, maxPositionEmbeddings: base.maxPositionEmbeddings, ropeParameters: parameters,
        inverseFrequencies: [], attentionScaling: 1)
      #expect(throws: EngineError.self, "\(parameters)") { try Self.config(test) }
    }
  }
}
