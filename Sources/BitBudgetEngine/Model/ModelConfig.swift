import BitBudgetKernels
import Foundation

/// A decoder-only transformer's hyperparameters, read from `config.json` and validated.
///
/// Accepts both the transformers-4 (`rope_theta`, `torch_dtype`) and transformers-5
/// (`rope_parameters.rope_theta`, `dtype`) spellings.
public struct ModelConfig: Sendable, Equatable {
  public var architecture: Architecture
  public var vocabSize: Int
  public var hiddenSize: Int
  public var intermediateSize: Int
  public var layerCount: Int
  public var queryHeads: Int
  public var kvHeads: Int
  public var headDim: Int
  public var rmsNormEpsilon: Float
  public var ropeTheta: Double
  /// RoPE scaling for long contexts (`rope_parameters`/`rope_scaling`), `.none` for plain RoPE.
  public var ropeScaling: RopeScaling = .none
  public var maxPositions: Int
  public var tiedEmbeddings: Bool
  /// Biases on the q, k and v projections (Qwen2 always; Qwen3/Llama with `attention_bias`).
  public var queryKeyValueBias: Bool
  /// A bias on the output projection (Qwen3/Llama with `attention_bias`; never Qwen2).
  public var outputBias: Bool
  /// The checkpoint's declared dtype (`torch_dtype`/`dtype`), if any; tensors carry their own.
  public var declaredDType: String?
  public var bosTokenId: Int?
  public var eosTokenIds: [Int]
  /// The GPTQ quantization of the checkpoint's linear layers, or nil for 16/32-bit weights.
  public var gptq: GPTQConfig?
  /// Layers whose attention uses no positional rotation (SmolLM3's NoPE layers).
  public var layersWithoutRope: Set<Int> = []
  /// Routed experts in place of the dense MLP (Qwen3-MoE), or nil for a dense model.
  public var experts: MixtureOfExperts?

  /// Upper bounds that no real model reaches; a config beyond them is treated as corrupt rather
  /// than allowed to size buffers.
  static let limits = (vocab: 4_000_000, hidden: 65_536, layers: 1_024, heads: 1_024, headDim: 1_024,
                       intermediate: 1_048_576, positions: 16_777_216)

  public init(
    architecture: Architecture, vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
    layerCount: Int, queryHeads: Int, kvHeads: Int, headDim: Int, rmsNormEpsilon: Float = 1e-6,
    ropeTheta: Double = 1_000_000, maxPositions: Int = 40_960, tiedEmbeddings: Bool,
    queryKeyValueBias: Bool = false, outputBias: Bool = false, declaredDType: String? = nil,
    bosTokenId: Int? = nil, eosTokenIds: [Int] = [], gptq: GPTQConfig? = nil
  ) {
    self.architecture = architecture
    self.vocabSize = vocabSize
    self.hiddenSize = hiddenSize
    self.intermediateSize = intermediateSize
    self.layerCount = layerCount
    self.queryHeads = queryHeads
    self.kvHeads = kvHeads
    self.headDim = headDim
    self.rmsNormEpsilon = rmsNormEpsilon
    self.ropeTheta = ropeTheta
    self.maxPositions = maxPositions
    self.tiedEmbeddings = tiedEmbeddings
    self.queryKeyValueBias = queryKeyValueBias
    self.outputBias = outputBias
    self.declaredDType = declaredDType
    self.bosTokenId = bosTokenId
    self.eosTokenIds = eosTokenIds
    self.gptq = gptq
  }

  /// Query heads per KV head.
  public var groupSize: Int { queryHeads / kvHeads }
  /// Width of the concatenated query heads (`q_proj` output), which need not equal `hiddenSize`.
  public var queryWidth: Int { queryHeads * headDim }
  /// Width of the concatenated KV heads (`k_proj`/`v_proj` output).
  public var kvWidth: Int { kvHeads * headDim }

  /// Every tensor the model has, by Hugging Face name, with its shape (rows first), in
  /// checkpoint order: embedding, layers, final norm, then `lm_head` when untied.
  public var tensorShapes: [(name: String, shape: [Int])] {
    let h = hiddenSize
    var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [vocabSize, h])]
    for i in 0..<layerCount {
      let p = "model.layers.\(i)."
      shapes.append((p + "input_layernorm.weight", [h]))
      shapes.append((p + "self_attn.q_proj.weight", [queryWidth, h]))
      if queryKeyValueBias { shapes.append((p + "self_attn.q_proj.bias", [queryWidth])) }
      shapes.append((p + "self_attn.k_proj.weight", [kvWidth, h]))
      if queryKeyValueBias { shapes.append((p + "self_attn.k_proj.bias", [kvWidth])) }
      shapes.append((p + "self_attn.v_proj.weight", [kvWidth, h]))
      if queryKeyValueBias { shapes.append((p + "self_attn.v_proj.bias", [kvWidth])) }
      shapes.append((p + "self_attn.o_proj.weight", [h, queryWidth]))
      if outputBias { shapes.append((p + "self_attn.o_proj.bias", [h])) }
      if architecture.hasQKNorm {
        shapes.append((p + "self_attn.q_norm.weight", [headDim]))
        shapes.append((p + "self_attn.k_norm.weight", [headDim]))
      }
      shapes.append((p + "post_attention_layernorm.weight", [h]))
      if let experts, hasExperts(layer: i) { shapes.append((p + "mlp.gate.weight", [experts.count, h])) }
      for mlp in mlpPrefixes(layer: i) {
        shapes.append((mlp + "gate_proj.weight", [mlpWidth(layer: i), h]))
        shapes.append((mlp + "up_proj.weight", [mlpWidth(layer: i), h]))
        shapes.append((mlp + "down_proj.weight", [h, mlpWidth(layer: i)]))
      }
    }
    shapes.append(("model.norm.weight", [h]))
    if !tiedEmbeddings { shapes.append(("lm_head.weight", [vocabSize, h])) }
    return shapes
  }

  /// Whether decoder layer `l` routes each token to experts (else it has the dense MLP).
  public func hasExperts(layer l: Int) -> Bool { experts.map { !$0.denseLayers.contains(l) } ?? false }

  /// Width of the MLPs of decoder layer `l` (of each expert's in a layer of experts).
  public func mlpWidth(layer l: Int) -> Int { hasExperts(layer: l) ? experts?.intermediateSize ?? intermediateSize : intermediateSize }

  /// The widest MLP of any layer (what the activation buffers hold per row).
  public var widestMLP: Int { (0..<layerCount).map(mlpWidth(layer:)).max() ?? intermediateSize }

  /// Name prefixes of the MLPs of decoder layer `l`: the dense one (`model.layers.L.mlp.`) or
  /// each expert's in index order (`model.layers.L.mlp.experts.E.`).
  func mlpPrefixes(layer l: Int) -> [String] {
    let p = "model.layers.\(l).mlp."
    guard let experts, hasExperts(layer: l) else { return [p] }
    return (0..<experts.count).map { p + "experts.\($0)." }
  }

  /// The linear layers of decoder layer `l` by Hugging Face prefix (`model.layers.L.self_attn.q_proj`),
  /// grouped by the kernel call that runs them (q/k/v read one input, as do gate/up): attention's,
  /// then the MLP's or each expert's in turn. A mixture's router is not among them: it stays
  /// 16-bit, as the embedding does.
  public func linearCalls(layer l: Int) -> [[String]] {
    let p = "model.layers.\(l).self_attn."
    return [[p + "q_proj", p + "k_proj", p + "v_proj"], [p + "o_proj"]]
      + mlpPrefixes(layer: l).flatMap { [[$0 + "gate_proj", $0 + "up_proj"], [$0 + "down_proj"]] }
  }

  /// `linearCalls(layer:)` flattened: the order of `LayerWeights.linears`.
  public func linearNames(layer l: Int) -> [String] { linearCalls(layer: l).flatMap { $0 } }

  /// Reads and validates `config.json` in `directory`; a GPTQ checkpoint's settings come from its
  /// `quantization_config`, or from `quantize_config.json` when config.json has none.
  public static func load(directory: String) throws -> ModelConfig {
    let path = (directory as NSString).appendingPathComponent("config.json")
    guard let data = FileManager.default.contents(atPath: path) else {
      throw EngineError.unreadableFile(path: path, reason: "no config.json in the model folder")
    }
    var config = try parse(data, path: path)
    let quantizePath = (directory as NSString).appendingPathComponent("quantize_config.json")
    if config.gptq == nil, let data = FileManager.default.contents(atPath: quantizePath) {
      guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw EngineError.invalidConfig(path: quantizePath, reason: "not a JSON object")
      }
      config.gptq = try GPTQConfig.parse(object, path: quantizePath)
    }
    return config
  }

  /// Parses and validates config.json text (`path` only names it in errors).
  public static func parse(_ data: Data, path: String) throws -> ModelConfig {
    guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw EngineError.invalidConfig(path: path, reason: "not a JSON object")
    }
    let reader = ConfigReader(root: root, path: path)
    let modelType = try reader.string("model_type")
    guard let architecture = Architecture.named(modelType: modelType) else {
      throw EngineError.unsupported(
        "model_type \"\(modelType)\" in \(path) (supported: \(Architecture.registry.map(\.modelType).joined(separator: ", ")))")
    }

    let hidden = try reader.positiveInt("hidden_size", max: limits.hidden)
    let heads = try reader.positiveInt("num_attention_heads", max: limits.heads)
    let kvHeads = try reader.optionalPositiveInt("num_key_value_heads", max: limits.heads) ?? heads
    guard heads % kvHeads == 0 else {
      throw reader.fail("num_attention_heads (\(heads)) is not a multiple of num_key_value_heads (\(kvHeads))")
    }
    let headDim: Int
    if let explicit = try reader.optionalPositiveInt("head_dim", max: limits.headDim) {
      headDim = explicit
    } else {
      guard hidden % heads == 0 else {
        throw reader.fail("no head_dim, and hidden_size (\(hidden)) is not a multiple of num_attention_heads (\(heads))")
      }
      headDim = hidden / heads
    }
    guard headDim % 2 == 0 else { throw reader.fail("head_dim (\(headDim)) must be even for RoPE") }

    if let activation = try reader.optionalString("hidden_act"), activation != "silu" {
      throw EngineError.unsupported("hidden_act \"\(activation)\" in \(path) (only silu)")
    }
    if try reader.optionalBool("mlp_bias") == true {
      throw EngineError.unsupported("MLP biases (mlp_bias) in \(path)")
    }
    if try reader.optionalBool("use_sliding_window") == true {
      throw EngineError.unsupported("sliding-window attention (use_sliding_window) in \(path)")
    }
    if let layerTypes = root["layer_types"] as? [Any],
      layerTypes.contains(where: { ($0 as? String) != "full_attention" })
    {
      throw EngineError.unsupported("layer_types other than full_attention in \(path)")
    }

    var gptq: GPTQConfig?
    if let quantization = root["quantization_config"], !(quantization is NSNull) {
      guard let object = quantization as? [String: Any] else { throw reader.fail("\"quantization_config\" must be an object") }
      gptq = try GPTQConfig.parse(object, path: path)
    }

    let (theta, scaling, maxPositions) = try rope(
      reader, maxPositions: try reader.optionalPositiveInt("max_position_embeddings", max: limits.positions) ?? 32_768,
      defaultTheta: architecture.defaultRopeTheta)
    let eps = try reader.optionalNumber("rms_norm_eps") ?? 1e-6
    guard eps > 0, eps < 1 else { throw reader.fail("rms_norm_eps (\(eps)) must be in (0, 1)") }

    var declaredDType = try reader.optionalString("dtype") ?? reader.optionalString("torch_dtype")
    if let name = declaredDType, name.hasPrefix("torch.") { declaredDType = String(name.dropFirst(6)) }

    var config = ModelConfig(
      architecture: architecture,
      vocabSize: try reader.positiveInt("vocab_size", max: limits.vocab),
      hiddenSize: hidden,
      intermediateSize: try reader.positiveInt("intermediate_size", max: limits.intermediate),
      layerCount: try reader.positiveInt("num_hidden_layers", max: limits.layers),
      queryHeads: heads, kvHeads: kvHeads, headDim: headDim,
      rmsNormEpsilon: Float(eps), ropeTheta: theta,
      maxPositions: maxPositions,
      tiedEmbeddings: try reader.optionalBool("tie_word_embeddings") ?? false,
      queryKeyValueBias: architecture.alwaysQKVBias ? true : try reader.optionalBool("attention_bias") ?? false,
      outputBias: architecture.alwaysQKVBias ? false : try reader.optionalBool("attention_bias") ?? false,
      declaredDType: declaredDType,
      bosTokenId: try reader.optionalTokenIds("bos_token_id")?.first,
      eosTokenIds: try reader.optionalTokenIds("eos_token_id") ?? [],
      gptq: gptq)
    config.ropeScaling = scaling
    try architecture.readConfig(&config, reader)
    return config
  }

  /// `rope_theta` and the RoPE scaling, chosen as transformers 5 chooses them
  /// (`convert_rope_params_to_dict`): a non-empty `rope_scaling` (the older key, and what model
  /// cards tell users to add) replaces `rope_parameters` whole; theta is the chosen object's, else
  /// the top level's, else the architecture's default. Types `default`, `linear`, `llama3` and
  /// `yarn` with transformers' defaults for absent fields; others, per-layer parameters and
  /// partial rotary dimensions are refused. For YaRN the context grows to `factor` × the original
  /// window when `max_position_embeddings` is smaller (transformers sets no limit).
  static func rope(_ reader: ConfigReader, maxPositions: Int, defaultTheta: Double) throws -> (
    theta: Double, scaling: RopeScaling, maxPositions: Int
  ) {
    var chosen: (key: String, object: [String: Any])?
    for key in ["rope_parameters", "rope_scaling"] {
      guard let value = reader.root[key], !(value is NSNull) else { continue }
      guard let object = value as? [String: Any] else { throw reader.fail("\(key) is not an object") }
      if !object.isEmpty { chosen = (key, object) }
    }
    let parameters = ConfigReader(root: chosen?.object ?? [:], path: reader.path, prefix: "\(chosen?.key ?? "rope_parameters").")
    if let object = chosen?.object, object.values.contains(where: { $0 is [String: Any] }) {
      throw EngineError.unsupported("RoPE parameters per layer type (\(parameters.prefix)…) in \(reader.path)")
    }
    for partial in [try reader.optionalNumber("partial_rotary_factor"), try parameters.optionalNumber("partial_rotary_factor")] {
      if let partial, partial != 1 {
        throw EngineError.unsupported("partial_rotary_factor \(partial) (RoPE on part of each head) in \(reader.path)")
      }
    }
    let theta = try parameters.optionalNumber("rope_theta") ?? reader.optionalNumber("rope_theta") ?? defaultTheta
    guard theta > 1, theta.isFinite else { throw reader.fail("rope_theta (\(theta)) must be a number above 1") }
    let type = try parameters.optionalString("rope_type") ?? parameters.optionalString("type") ?? "default"
    /// A factor or beta usable in f32 arithmetic (neither 0 nor tiny, finite).
    func normal(_ key: String) throws -> Double? {
      guard let number = try parameters.optionalNumber(key) else { return nil }
      guard number > 0, Float(number).isNormal else { throw parameters.fail("\(key) (\(number)) must be a positive number") }
      return number
    }
    func required(_ key: String) throws -> Double {
      guard let number = try normal(key) else { throw parameters.fail("\(type) RoPE scaling needs \(key)") }
      return number
    }
    // A top-level `original_max_position_embeddings` (Phi-3's spelling) wins, as in transformers.
    func originalContext() throws -> Int {
      try reader.optionalPositiveInt("original_max_position_embeddings", max: limits.positions)
        ?? parameters.optionalPositiveInt("original_max_position_embeddings", max: limits.positions) ?? maxPositions
    }
    switch type {
    case "default":
      return (theta, .none, maxPositions)
    case "linear":
      return (theta, .linear(factor: try required("factor")), maxPositions)
    case "llama3":
      let (factor, low, high) = (try required("factor"), try required("low_freq_factor"), try required("high_freq_factor"))
      guard high != low else { throw parameters.fail("llama3 RoPE scaling needs different low_freq_factor and high_freq_factor") }
      return (
        theta, .llama3(factor: factor, lowFrequencyFactor: low, highFrequencyFactor: high, originalContext: try originalContext()),
        maxPositions
      )
    case "yarn":
      let factor = try required("factor")
      let original = try originalContext()
      let attention = try normal("attention_factor")
        ?? RopeScaling.yarnAttentionFactor(
          factor: factor, mscale: try parameters.optionalNumber("mscale"), mscaleAllDim: try parameters.optionalNumber("mscale_all_dim"))
      guard attention > 0, Float(attention).isNormal else {
        throw parameters.fail("the YaRN attention factor (\(attention), from factor, mscale and mscale_all_dim) must be a positive number")
      }
      // transformers reads a null `truncate` as false.
      let truncate = parameters.root.keys.contains("truncate") ? (try parameters.optionalBool("truncate") ?? false) : true
      let scaling = RopeScaling.yarn(
        factor: factor, originalContext: original, attentionFactor: attention, betaFast: try normal("beta_fast") ?? 32,
        betaSlow: try normal("beta_slow") ?? 1, truncate: truncate)
      let extended = Double(original) * factor
      return (theta, scaling, extended < Double(limits.positions) ? max(maxPositions, Int(extended)) : maxPositions)
    default:
      throw EngineError.unsupported("RoPE scaling \"\(type)\" in \(reader.path) (default, linear, llama3 and yarn are implemented)")
    }
  }
}

/// Typed access to config.json fields with errors that name the field.
struct ConfigReader {
  let root: [String: Any]
  let path: String
  var prefix = ""

  func fail(_ reason: String) -> EngineError { .invalidConfig(path: path, reason: reason) }

  private func present(_ key: String) -> Any? {
    guard let value = root[key], !(value is NSNull) else { return nil }
    return value
  }

  func string(_ key: String) throws -> String {
    guard let value = try optionalString(key) else { throw fail("missing \"\(prefix)\(key)\"") }
    return value
  }

  func optionalString(_ key: String) throws -> String? {
    guard let value = present(key) else { return nil }
    guard let text = value as? String else { throw fail("\"\(prefix)\(key)\" must be a string") }
    return text
  }

  func positiveInt(_ key: String, max: Int) throws -> Int {
    guard let value = try optionalPositiveInt(key, max: max) else { throw fail("missing \"\(prefix)\(key)\"") }
    return value
  }

  func optionalPositiveInt(_ key: String, max: Int) throws -> Int? {
    guard let value = present(key) else { return nil }
    guard let integer = JSONNumbers.integer(value), integer > 0, integer <= max else {
      throw fail("\"\(prefix)\(key)\" must be an integer in 1...\(max), found \(value)")
    }
    return integer
  }

  func optionalNumber(_ key: String) throws -> Double? {
    guard let value = present(key) else { return nil }
    guard !(value is String), let number = value as? NSNumber, !JSONNumbers.isBoolean(number), number.doubleValue.isFinite else {
      throw fail("\"\(prefix)\(key)\" must be a number, found \(value)")
    }
    return number.doubleValue
  }

  func optionalBool(_ key: String) throws -> Bool? {
    guard let value = present(key) else { return nil }
    guard let flag = value as? Bool else { throw fail("\"\(prefix)\(key)\" must be true or false") }
    return flag
  }

  /// A token id or a list of them.
  func optionalTokenIds(_ key: String) throws -> [Int]? {
    guard let value = present(key) else { return nil }
    if let single = JSONNumbers.nonNegativeInteger(value) { return [single] }
    if let list = JSONNumbers.nonNegativeIntegers(value) { return list }
    throw fail("\"\(prefix)\(key)\" must be a token id or a list of them")
  }
}
