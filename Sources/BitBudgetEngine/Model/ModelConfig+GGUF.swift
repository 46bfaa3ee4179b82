extension ModelConfig {
  /// The config of a GGUF model from its metadata (`general.architecture` and the
  /// `{arch}.block_count`, `.embedding_length`, `.attention.head_count`, … keys) and its tensors
  /// (vocabulary size from `token_embd.weight`, tied embeddings when there is no
  /// `output.weight`, biases when the first layer has them).
  public static func fromGGUF(_ file: GGUFFile) throws -> ModelConfig {
    let path = file.path
    func fail(_ reason: String) -> EngineError { .invalidConfig(path: path, reason: reason) }
    guard let name = file.metadata["general.architecture"]?.string else { throw fail("no general.architecture") }
    guard let architecture = Architecture.named(gguf: name) else {
      throw EngineError.unsupported(
        "architecture \"\(name)\" in \(path) (supported: \(Architecture.registry.flatMap(\.ggufNames).joined(separator: ", ")))")
    }
    func integer(_ key: String, max: Int) throws -> Int? {
      guard let value = file.metadata["\(name).\(key)"] else { return nil }
      guard let integer = value.integer, integer > 0, integer <= max else {
        throw fail("\(name).\(key) must be an integer in 1...\(max)")
      }
      return integer
    }
    func required(_ key: String, max: Int) throws -> Int {
      guard let value = try integer(key, max: max) else { throw fail("missing \(name).\(key)") }
      return value
    }
    func number(_ key: String) throws -> Double? {
      guard let value = file.metadata["\(name).\(key)"] else { return nil }
      guard let number = value.number, number.isFinite else { throw fail("\(name).\(key) must be a number") }
      return number
    }
    if let scaling = file.metadata["\(name).rope.scaling.type"]?.string, scaling != "none" {
      throw EngineError.unsupported("RoPE scaling \"\(scaling)\" in \(path)")
    }
    guard let embedding = file.tensors["token_embd.weight"], embedding.dimensions.count == 2 else {
      throw fail("no 2-D token_embd.weight tensor")
    }
    let hidden = try required("embedding_length", max: limits.hidden)
    let heads = try required("attention.head_count", max: limits.heads)
    let kvHeads = try integer("attention.head_count_kv", max: limits.heads) ?? heads
    guard heads % kvHeads == 0 else { throw fail("head_count (\(heads)) is not a multiple of head_count_kv (\(kvHeads))") }
    let headDim: Int
    if let explicit = try integer("attention.key_length", max: limits.headDim) {
      headDim = explicit
    } else {
      guard hidden % heads == 0 else { throw fail("no attention.key_length, and embedding_length is not a multiple of head_count") }
      headDim = hidden / heads
    }
    guard headDim % 2 == 0 else { throw fail("head dimension \(headDim) must be even for RoPE") }
    let eps = try number("attention.layer_norm_rms_epsilon") ?? 1e-6
    guard eps > 0, eps < 1 else { throw fail("layer_norm_rms_epsilon must be in (0, 1)") }
    let theta = try number("rope.freq_base") ?? 10_000
    guard theta > 1 else { throw fail("rope.freq_base must be above 1") }
    let hasQKVBias = file.tensors["blk.0.attn_q.bias"] != nil
    if architecture.ggufPermutesQueryKey && hasQKVBias {
      throw EngineError.unsupported("\(name) GGUF with q/k/v biases (\(path))")
    }
    let vocabulary = embedding.dimensions[1]
    func tokenId(_ key: String) throws -> Int? {
      guard let id = file.metadata[key]?.integer else { return nil }
      guard (0..<vocabulary).contains(id) else {
        throw EngineError.invalidConfig(path: path, reason: "\(key) \(id) is outside the vocabulary of \(vocabulary)")
      }
      return id
    }
    let eos = try tokenId("tokenizer.ggml.eos_token_id")
    return ModelConfig(
      architecture: architecture,
      vocabSize: embedding.dimensions[1],
      hiddenSize: hidden,
      intermediateSize: try required("feed_forward_length", max: limits.intermediate),
      layerCount: try required("block_count", max: limits.layers),
      queryHeads: heads, kvHeads: kvHeads, headDim: headDim,
      rmsNormEpsilon: Float(eps), ropeTheta: theta,
      maxPositions: try integer("context_length", max: limits.positions) ?? 4096,
      tiedEmbeddings: file.tensors["output.weight"] == nil,
      queryKeyValueBias: architecture.alwaysQKVBias || hasQKVBias,
      outputBias: file.tensors["blk.0.attn_output.bias"] != nil,
      declaredDType: nil,
      bosTokenId: try tokenId("tokenizer.ggml.bos_token_id"),
      eosTokenIds: eos.map { [$0] } ?? [])
  }
}
