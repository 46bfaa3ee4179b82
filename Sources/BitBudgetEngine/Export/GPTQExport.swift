import BitBudgetKernels
import BitBudgetTokenizer
import Foundation

/// Writes a quantized model as a GPTQ checkpoint folder in AutoGPTQ's layout (`GPTQTensors`),
/// which transformers/optimum, GPTQModel, vLLM and BitBudget load: `model.safetensors` (the
/// linears of every layer as qweight/qzeros/scales/g_idx, everything else as in the source; a
/// mixture of experts' per-expert linears under the Hub's names, checked by reloading here only),
/// `config.json` with `quantization_config`, `quantize_config.json`, and the source's generation
/// and tokenizer files.
public enum GPTQExport {
  /// What was written: the folder, the method, bits and group size, and sizes.
  public struct Summary: Sendable, Codable {
    public let directory: String
    public let method: String
    /// Bits per weight (JSON `weight_bits`, as `--weights`).
    public let weightBits: Int
    /// Columns per group, -1 for one group per row (JSON `weight_group`, as `--weight-group`).
    public let weightGroup: Int
    public let format: String
    public let tensors: Int
    public let safetensorsBytes: Int
  }

  static let sideFiles = [
    "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
    "chat_template.jinja",
  ]
  /// The files a checkpoint may consist of (those written, and the side files copied).
  public static let fileNames = ["model.safetensors", "config.json", "quantize_config.json"] + sideFiles

  /// Writes `quantized` into `directory` (see `HuggingFaceExport.checkOutput` for what is
  /// refused; callers check that before quantizing).
  public static func write(_ quantized: QuantizedModel, to requestedDirectory: String, overwrite: Bool = false) throws -> Summary {
    let model = quantized.source
    let directory = try HuggingFaceExport.checkOutput(requestedDirectory, writing: fileNames, overwrite: overwrite, input: model.path)
    let config = model.config
    let source = model.weights.source
    let format = GPTQTensors.format(for: quantized.layers.flatMap { $0.map(\.matrix) })
    let gptq = GPTQConfig(quantization: quantized.quantization, descendingActivationOrder: quantized.actOrder, format: format)
    var tokenizer: Tokenizer?
    if let gguf = model.gguf { tokenizer = try Tokenizer.fromGGUF(gguf) }
    try HuggingFaceExport.prepare(directory, replacing: fileNames, overwrite: overwrite, input: model.path)

    // Tensor list: the source's tensors, each quantized linear's weight replaced by GPTQ's four.
    var quantizedByName: [String: QuantizedMatrix] = [:]
    for (l, linears) in quantized.layers.enumerated() {
      for (name, storage) in zip(quantized.source.config.linearNames(layer: l), linears) { quantizedByName[name] = storage.matrix }
    }
    enum Payload {
      case dense(String)
      /// Tensor `index` (in `GPTQTensors.suffixes` order) of a quantized matrix.
      case gptq(QuantizedMatrix, index: Int)
    }
    var entries: [SafetensorsWriter.Entry] = []
    var payloads: [Payload] = []
    var matrixType = ElementType.bf16
    for (name, shape) in config.tensorShapes {
      if name.hasSuffix(".weight"), let m = quantizedByName[String(name.dropLast(7))] {
        let prefix = String(name.dropLast(7))
        for (index, (suffix, shape)) in zip(GPTQTensors.suffixes, GPTQTensors.shapes(of: m)).enumerated() {
          entries.append(.init(name: prefix + "." + suffix, dtype: index == 2 ? .f16 : .i32, shape: shape))
          payloads.append(.gptq(m, index: index))
        }
        continue
      }
      let type = try source.resolve(name).elementType
      if name == "model.embed_tokens.weight" { matrixType = type }
      entries.append(.init(name: name, dtype: HuggingFaceExport.tensorDType(type), shape: shape))
      payloads.append(.dense(name))
    }
    let path = (directory as NSString).appendingPathComponent("model.safetensors")
    let writer = try SafetensorsWriter(path: path, entries: entries)
    // One matrix's GPTQ tensors are made when its first is written, so memory holds one at a time.
    var current: [(dtype: TensorDType, shape: [Int], data: Data)] = []
    for payload in payloads {
      switch payload {
      case .dense(let name):
        let tensor = try source.resolve(name)
        try writer.append(UnsafeRawBufferPointer(start: tensor.pointer, count: tensor.byteCount))
      case .gptq(let m, let index):
        if index == 0 { current = GPTQTensors.tensors(of: m, format: format) }
        try current[index].data.withUnsafeBytes { try writer.append($0) }
      }
    }
    try writer.finish()

    func write(_ name: String, _ data: Data) throws { try HuggingFaceExport.writeFile(name, data, in: directory) }
    let quantizationObject = gptq.jsonObject(dampening: quantized.dampening, method: quantized.method.rawValue)
    let configData = try HuggingFaceExport.configJSON(config, matrixType: matrixType)
    guard var root = try JSONSerialization.jsonObject(with: configData) as? [String: Any] else {
      throw EngineError.invalidConfig(path: directory, reason: "could not build config.json")
    }
    root["quantization_config"] = quantizationObject
    try write("config.json", try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys]))
    try write("quantize_config.json", try JSONSerialization.data(withJSONObject: quantizationObject, options: [.prettyPrinted, .sortedKeys]))
    if let folder = model.directory {
      for name in sideFiles {
        let from = (folder as NSString).appendingPathComponent(name)
        if let data = FileManager.default.contents(atPath: from) { try write(name, data) }
      }
    } else if let gguf = model.gguf, let tokenizer {
      try write("generation_config.json", try HuggingFaceExport.generationConfigJSON(config, sampling: DecoderModel.samplingDefaults(gguf)))
      try write("tokenizer.json", try tokenizer.tokenizerJSON())
      try write("tokenizer_config.json", try HuggingFaceExport.tokenizerConfigJSON(tokenizer, config: config))
    }
    return Summary(
      directory: directory, method: quantized.method.rawValue, weightBits: quantized.quantization.bits,
      weightGroup: quantized.quantization.groupSize ?? -1, format: format.rawValue, tensors: entries.count,
      safetensorsBytes: entries.reduce(0) { $0 + $1.byteCount })
  }
}
