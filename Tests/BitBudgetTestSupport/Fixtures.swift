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
    "qwen3-hd128-gqa-bf16", "qwen2-bias-untied-bf16", "llama-gqa3-tied-f32", "mistral-gqa4-untied-bf16",
    "smollm3-nope-tied-f32", "qwen3moe-e8k3-untied-bf16", "qwen3moe-e4k2-unnormed-f32", "qwen3-yarn-f32",
    "llama-rope3-tied-f32",
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

  /// One string of the tokenizer corpus (`Tests/Fixtures/tokenizer/qwen3-corpus.jsonl`, made
  /// by scripts/make-tokenizer-corpus.py) with the Qwen3 ids of Hugging Face `tokenizers`.
  public struct CorpusEntry: Decodable, Sendable {
    public let text: String
    public let ids: [Int]
    /// Python's `unicodedata.normalize("NFC", text)`.
    public let nfc: String
  }

  public static func tokenizerCorpus() throws -> [CorpusEntry] {
    let url = URL(fileURLWithPath: repositoryRoot).appendingPathComponent("Tests/Fixtures/tokenizer/qwen3-corpus.jsonl")
    let text = try String(contentsOf: url, encoding: .utf8)
    return try text.split(separator: "\n").map { try JSONDecoder().decode(CorpusEntry.self, from: Data($0.utf8)) }
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

extension Fixtures {
  /// Writes a random Qwen3 model (f32 weights, tied embeddings, values from `seed`) to a new
  /// temporary folder and returns it; for tests that need a vocabulary as large as a real
  /// tokenizer's without committing a large file. The caller removes the folder.
  public static func makeRandomQwen3(
    vocab: Int, hidden: Int = 32, intermediate: Int = 64, layers: Int = 1, heads: Int = 2, kvHeads: Int = 1,
    headDim: Int = 16, seed: UInt64 = 1
  ) throws -> URL {
    let directory = try temporaryDirectory("random-qwen3")
    let config: [String: Any] = [
      "model_type": "qwen3", "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": intermediate,
      "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kvHeads, "head_dim": headDim,
      "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "max_position_embeddings": 4096,
      "eos_token_id": [151645, 151643],
    ]
    try JSONSerialization.data(withJSONObject: config).write(to: directory.appendingPathComponent("config.json"))
    var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, hidden]), ("model.norm.weight", [hidden])]
    for layer in 0..<layers {
      let p = "model.layers.\(layer)."
      shapes += [
        (p + "input_layernorm.weight", [hidden]), (p + "post_attention_layernorm.weight", [hidden]),
        (p + "self_attn.q_proj.weight", [heads * headDim, hidden]), (p + "self_attn.k_proj.weight", [kvHeads * headDim, hidden]),
        (p + "self_attn.v_proj.weight", [kvHeads * headDim, hidden]), (p + "self_attn.o_proj.weight", [hidden, heads * headDim]),
        (p + "self_attn.q_norm.weight", [headDim]), (p + "self_attn.k_norm.weight", [headDim]),
        (p + "mlp.gate_proj.weight", [intermediate, hidden]), (p + "mlp.up_proj.weight", [intermediate, hidden]),
        (p + "mlp.down_proj.weight", [hidden, intermediate]),
      ]
    }
    var header: [String: Any] = [:]
    var data = Data()
    var random = TestRandom(seed: seed)
    for (name, shape) in shapes {
      let count = shape.reduce(1, *)
      let isNorm = name.hasSuffix("norm.weight")
      var values = [Float](repeating: 0, count: count)
      for i in 0..<count { values[i] = isNorm ? 1 + 0.1 * random.signedUnit() : 0.2 * random.signedUnit() }
      header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [data.count, data.count + count * 4]]
      values.withUnsafeBytes { data.append(contentsOf: $0) }
    }
    let headerData = try JSONSerialization.data(withJSONObject: header)
    var file = Data()
    var length = UInt64(headerData.count).littleEndian
    withUnsafeBytes(of: &length) { file.append(contentsOf: $0) }
    file.append(headerData)
    file.append(data)
    try file.write(to: directory.appendingPathComponent("model.safetensors"))
    return directory
  }
}
