import Foundation

/// A decoder architecture: how its config.json and GGUF metadata are read, the traits the one
/// forward pass switches on (q/k norms, biases, layers without RoPE), and how it is exported.
/// Each lives in its own file in this folder; adding one is that file plus a line in `registry`.
public struct Architecture: Sendable, Hashable, CustomStringConvertible {
  /// config.json `model_type` (written back on export).
  public let modelType: String
  /// GGUF `general.architecture` values read as this architecture (converters write several
  /// Llama-family models, Mistral included, as "llama").
  public let ggufNames: [String]
  /// The transformers class written as `architectures` on export.
  public let exportClass: String
  /// q and k are RMS-normalized per head (over `headDim`) before RoPE.
  public let hasQKNorm: Bool
  /// q/k/v projections always have biases (Qwen2), whatever `attention_bias` says; o_proj never.
  public let alwaysQKVBias: Bool
  /// GGUF converters stored q/k rows interleaved per head (llama.cpp's permutation), undone at load.
  public let ggufPermutesQueryKey: Bool
  /// `rope_theta` when config.json gives none (the transformers config class's default).
  public var defaultRopeTheta: Double = 10_000
  /// Reads this architecture's own config.json fields into `config` (after the common ones),
  /// refusing those the engine does not implement.
  let readConfig: @Sendable (_ config: inout ModelConfig, _ reader: ConfigReader) throws -> Void
  /// Adds this architecture's own fields to an exported config.json.
  let exportConfig: @Sendable (_ config: ModelConfig, _ root: inout [String: Any]) -> Void

  public var description: String { modelType }

  public static func == (lhs: Architecture, rhs: Architecture) -> Bool { lhs.modelType == rhs.modelType }
  public func hash(into hasher: inout Hasher) { hasher.combine(modelType) }

  /// Every architecture the engine runs.
  public static let registry: [Architecture] = [.qwen3, .qwen2, .llama, .mistral, .smollm3, .qwen3MoE]

  public static func named(modelType: String) -> Architecture? { registry.first { $0.modelType == modelType } }
  public static func named(gguf name: String) -> Architecture? { registry.first { $0.ggufNames.contains(name) } }
}
