import BitBudgetKernels
import BitBudgetTokenizer
import Foundation

/// Converts a GGUF model into a Hugging Face model folder that transformers (and this engine) load:
/// `model.safetensors`, `config.json`, `generation_config.json`, `tokenizer.json` and
/// `tokenizer_config.json`.
///
/// Matrices are written in `matrixType` (bf16 by default: what the engine widens quantized GGUF
/// tensors to, so the folder computes exactly what the GGUF does); vectors (norms, biases) stored
/// as F32 in the GGUF stay F32, losslessly. llama's q/k rows come out in transformers' order.
/// Memory stays at one widened tensor (plus its converted copy) at a time.
public enum HuggingFaceExport {
  /// What a conversion wrote.
  public struct Summary: Sendable, Codable {
    public let directory: String
    public let architecture: String
    public let tensors: Int
    public let safetensorsBytes: Int
    public let files: [String]
  }

  /// The files a conversion writes.
  public static let fileNames = ["model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]

  /// Converts the GGUF file at `path` into a Hugging Face folder; `progress` gets the bytes of
  /// `model.safetensors` written so far and their total.
  public static func convert(
    gguf path: String, to requestedDirectory: String, matrixType: ElementType = .bf16, overwrite: Bool = false,
    progress: (_ bytesWritten: Int, _ bytes: Int) -> Void = { _, _ in }
  ) throws -> Summary {
    let directory = try checkOutput(requestedDirectory, writing: fileNames, overwrite: overwrite, input: path)
    let file = try GGUFFile(path: path)
    let config = try ModelConfig.fromGGUF(file)
    // The tokenizer is read before anything is written, so an unsupported one fails early.
    let tokenizer = try Tokenizer.fromGGUF(file)
    let sampling = try DecoderModel.samplingDefaults(file)
    let weights = GGUFWeights(file: file, config: config, widenedType: matrixType == .f32 ? .f32 : .bf16)

    try prepare(directory, replacing: fileNames, overwrite: overwrite, input: path)

    var entries: [SafetensorsWriter.Entry] = []
    for (name, shape) in config.tensorShapes {
      guard let ggufName = GGUFWeights.ggufName(name), let info = file.tensors[ggufName] else {
        throw EngineError.invalidWeights(reason: "tensor \(name) (\(GGUFWeights.ggufName(name) ?? "?")) is missing in \(path)")
      }
      guard Array(info.dimensions.reversed()) == shape else {
        throw EngineError.invalidWeights(
          reason: "tensor \(ggufName) in \(path) has shape \(Array(info.dimensions.reversed())); the config implies \(shape)")
      }
      let type: ElementType = shape.count == 1 && info.type.name == "F32" ? .f32 : matrixType
      entries.append(.init(name: name, dtype: tensorDType(type), shape: shape))
    }
    let safetensorsPath = (directory as NSString).appendingPathComponent("model.safetensors")
    let writer = try SafetensorsWriter(path: safetensorsPath, entries: entries)
    var totalBytes = 0
    let allBytes = entries.reduce(0) { $0 + $1.byteCount }
    for entry in entries {
      let target = entry.dtype.elementType ?? .bf16
      try weights.withTensor(entry.name) { tensor in
        let count = entry.shape.reduce(1, *)
        if tensor.elementType == target {
          try writer.append(UnsafeRawBufferPointer(start: tensor.pointer, count: tensor.byteCount))
        } else {
          let converted = UnsafeMutableRawPointer.allocate(byteCount: count * target.byteCount, alignment: 64)
          defer { converted.deallocate() }
          let chunk = 16_384
          let row = UnsafeMutablePointer<Float>.allocate(capacity: chunk)
          defer { row.deallocate() }
          var start = 0
          while start < count {
            let n = min(chunk, count - start)
            loadConverted(from: tensor.pointer, at: start, count: n, as: tensor.elementType, into: row)
            storeConverted(row, count: n, to: converted, at: start, as: target)
            start += n
          }
          try writer.append(UnsafeRawBufferPointer(start: converted, count: count * target.byteCount))
        }
      }
      totalBytes += entry.byteCount
      progress(totalBytes, allBytes)
    }
    try writer.finish()

    func write(_ name: String, _ data: Data) throws { try writeFile(name, data, in: directory) }
    try write("config.json", try configJSON(config, matrixType: matrixType))
    try write("generation_config.json", try generationConfigJSON(config, sampling: sampling))
    try write("tokenizer.json", try tokenizer.tokenizerJSON())
    try write("tokenizer_config.json", try tokenizerConfigJSON(tokenizer, config: config))
    return Summary(
      directory: directory, architecture: config.architecture.modelType, tensors: entries.count,
      safetensorsBytes: totalBytes, files: fileNames)
  }

  /// Writes `data` to `name` in `directory`, atomically.
  static func writeFile(_ name: String, _ data: Data, in directory: String) throws {
    try OutputPath.write(data, to: (directory as NSString).appendingPathComponent(name))
  }

  /// Checks, before any work and without changing anything, that `names` can be written into
  /// `directory`: it resolves (see `OutputPath.resolve`), is a folder or nothing yet, is not the
  /// input model or inside it, and each file is new or a regular file that `overwrite` allows
  /// replacing (never one of the input's). Returns the resolved folder, where writes then go.
  public static func checkOutput(_ directory: String, writing names: [String], overwrite: Bool, input: String) throws -> String {
    let resolved = try OutputPath.resolve(directory, followingFinalLink: true)
    try OutputPath.checkNotInput(resolved, input: input)
    guard let type = OutputPath.fileType(resolved) else { return resolved }
    guard type == .typeDirectory else { throw EngineError.unwritableFile(path: directory, reason: "it exists and is not a folder") }
    var existing: [String] = []
    for name in names {
      let target = (resolved as NSString).appendingPathComponent(name)
      try OutputPath.checkFileTarget(target)
      try OutputPath.checkNotInput(target, input: input)
      if OutputPath.fileType(target) != nil { existing.append(name) }
    }
    if !existing.isEmpty && !overwrite {
      throw EngineError.unwritableFile(
        path: directory, reason: "it already holds \(existing.joined(separator: ", ")) (pass --overwrite to replace them)")
    }
    return resolved
  }

  /// `checkOutput` again (the folder may have changed during the work), then creates the folder.
  static func prepare(_ directory: String, replacing names: [String], overwrite: Bool, input: String) throws {
    let resolved = try checkOutput(directory, writing: names, overwrite: overwrite, input: input)
    do {
      try FileManager.default.createDirectory(atPath: resolved, withIntermediateDirectories: true)
    } catch {
      throw EngineError.unwritableFile(path: directory, reason: error.localizedDescription)
    }
  }

  static func tensorDType(_ type: ElementType) -> TensorDType {
    switch type {
    case .f32: .f32
    case .f16: .f16
    case .bf16: .bf16
    }
  }

  static func torchName(_ type: ElementType) -> String {
    switch type {
    case .f32: "float32"
    case .f16: "float16"
    case .bf16: "bfloat16"
    }
  }

  /// A Float as the shortest decimal that reads back as it (1e-05, not 9.99999974737875e-06).
  static func decimal(_ value: Float) -> Double { Double(String(describing: value)) ?? Double(value) }

  /// `config.json` in transformers' vocabulary for the architecture.
  public static func configJSON(_ config: ModelConfig, matrixType: ElementType = .bf16) throws -> Data {
    var root: [String: Any] = [
      "model_type": config.architecture.modelType,
      "architectures": [config.architecture.exportClass],
      "vocab_size": config.vocabSize,
      "hidden_size": config.hiddenSize,
      "intermediate_size": config.intermediateSize,
      "num_hidden_layers": config.layerCount,
      "num_attention_heads": config.queryHeads,
      "num_key_value_heads": config.kvHeads,
      "head_dim": config.headDim,
      "hidden_act": "silu",
      "rms_norm_eps": decimal(config.rmsNormEpsilon),
      "rope_theta": config.ropeTheta,
      "rope_scaling": config.ropeScaling.configObject ?? NSNull(),
      "max_position_embeddings": config.maxPositions,
      "tie_word_embeddings": config.tiedEmbeddings,
      "torch_dtype": torchName(matrixType),
      "initializer_range": 0.02,
      "attention_dropout": 0.0,
      "use_cache": true,
      "bos_token_id": config.bosTokenId.map { $0 as Any } ?? NSNull(),
      "eos_token_id": config.eosTokenIds.count == 1 ? config.eosTokenIds[0] as Any : config.eosTokenIds as Any,
    ]
    config.architecture.exportConfig(config, &root)
    return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
  }

  /// `generation_config.json`: the stop tokens and, when the GGUF names them, sampling settings.
  static func generationConfigJSON(_ config: ModelConfig, sampling: SamplingParameters) throws -> Data {
    var root: [String: Any] = [
      "bos_token_id": config.bosTokenId.map { $0 as Any } ?? NSNull(),
      "eos_token_id": config.eosTokenIds.count == 1 ? config.eosTokenIds[0] as Any : config.eosTokenIds as Any,
    ]
    if !sampling.isGreedy {
      root["do_sample"] = true
      root["temperature"] = decimal(sampling.temperature)
      root["top_k"] = sampling.topK
      root["top_p"] = decimal(sampling.topP)
      root["min_p"] = decimal(sampling.minP)
    }
    return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
  }

  /// `tokenizer_config.json`: the class (Qwen2's for Qwen's pre-tokenizer, the generic fast
  /// tokenizer otherwise; tokenizer.json defines the pipeline either way), special tokens, the
  /// chat template and every added token.
  static func tokenizerConfigJSON(_ tokenizer: Tokenizer, config: ModelConfig) throws -> Data {
    func content(_ id: Int?) -> Any {
      guard let id else { return NSNull() }
      if let added = tokenizer.addedTokens.first(where: { $0.id == id }) { return added.content }
      return tokenizer.token(id).flatMap { Tokenizer.byteLevelDecoded($0) } ?? NSNull()
    }
    var decoder: [String: Any] = [:]
    for token in tokenizer.addedTokens {
      decoder[String(token.id)] = [
        "content": token.content, "lstrip": false, "rstrip": false, "normalized": false, "single_word": false,
        "special": token.special,
      ]
    }
    let root: [String: Any] = [
      "tokenizer_class": tokenizer.preTokenizer == .qwen2 ? "Qwen2Tokenizer" : "PreTrainedTokenizerFast",
      "bos_token": content(config.bosTokenId),
      "eos_token": content(config.eosTokenIds.first),
      "pad_token": NSNull(),
      "unk_token": NSNull(),
      "add_bos_token": tokenizer.configuration.addBosToken,
      "add_eos_token": false,
      "added_tokens_decoder": decoder,
      "chat_template": tokenizer.configuration.chatTemplate.map { $0 as Any } ?? NSNull(),
      "clean_up_tokenization_spaces": false,
      "errors": "replace",
      "model_max_length": config.maxPositions,
      "split_special_tokens": false,
    ]
    return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
  }
}
