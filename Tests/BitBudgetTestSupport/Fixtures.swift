import Foundation

/// Paths and reference data of the committed test fixtures (made by
/// `scripts/make-reference-fixtures.py` with Hugging Face transformers).
public enum Fixtures {
  /// `Tests/Fixtures/models`.
  public static let modelsDirectory: String = {
    URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/models").path
  }()

  /// The repository root.
  public static let repositoryRoot: String = {
    URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
  }()

  /// Names of the reference models.
  public static let modelNames = [
    "qwen3-gqa-tied-f32", "qwen3-mha-untied-bf16", "qwen3-gqa4-tied-bf16-sharded", "qwen3-bias-odd-f16",
    "qwen3-hd128-gqa-bf16",
  ]

  public static func modelPath(_ name: String) -> String {
    (modelsDirectory as NSString).appendingPathComponent(name)
  }

  /// What transformers computed for a fixture model.
  public struct Reference: Decodable, Sendable {
    public let inputIds: [Int]
    /// f32 logits of every input position.
    public let logits: [[Float]]
    /// `generate(do_sample=False)` continuation.
    public let greedy: [Int]
    public let greedyMargins: [Float]

    enum CodingKeys: String, CodingKey {
      case inputIds = "input_ids", logits, greedy, greedyMargins = "greedy_margins"
    }
  }

  public static func reference(_ name: String) throws -> Reference {
    let url = URL(fileURLWithPath: modelPath(name)).appendingPathComponent("reference.json")
    return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
  }

  /// A fresh temporary directory (removed by the caller with `removeItem`).
  public static func temporaryDirectory(_ label: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("bitbudget-tests-\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  /// Largest |a − b| over two matrices; infinity if their shapes differ (so a short or empty
  /// result cannot pass a tolerance check).
  public static func maxAbsDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
    guard a.count == b.count, zip(a, b).allSatisfy({ $0.count == $1.count }) else { return .infinity }
    return zip(a, b).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
  }

  public static func maxAbs(_ a: [[Float]]) -> Float {
    a.map { $0.map(abs).max() ?? 0 }.max() ?? 0
  }
}

/// A small deterministic generator for test inputs (SplitMix64).
public struct TestRandom: RandomNumberGenerator {
  var state: UInt64
  public init(seed: UInt64) { state = seed }
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in [−1, 1).
  public mutating func signedUnit() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
}

extension Fixtures {
  /// The real Qwen3 tokenizer files, fetched by scripts/fetch-test-assets.sh (not committed).
  public static let qwen3TokenizerDirectory: String =
    (repositoryRoot as NSString).appendingPathComponent(".assets/qwen3-tokenizer")
}
