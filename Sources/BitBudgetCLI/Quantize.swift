import ArgumentParser
import BitBudgetEngine
import BitBudgetLab
import BitBudgetKernels
import Foundation

struct Quantize: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Quantize linear layers to 8 or 4 bits (GPTQ or RTN).",
    discussion: """
      Reads a 16-bit model and writes a GPTQ checkpoint. \
      --method gptq (default) runs GPTQ layer by layer on calibration text (--calibration, a UTF-8 \
      text file, tokenized with the model's tokenizer and cut into --calibration-sequences \
      sequences of --sequence-length tokens); --method rtn rounds to nearest and needs no data. \
      Embeddings, lm_head and norms stay as they are, as in the paper. The folder written \
      (AutoGPTQ's "gptq" layout: qweight, qzeros, scales, g_idx) loads in bitbudget's --model, \
      transformers/optimum, GPTQModel and vLLM. Progress per layer goes to stderr.
      """)

  @Option(name: .long, help: ArgumentHelp("The 16-bit model: Hugging Face folder or GGUF file.", valueName: "dir-or-gguf"))
  var model: String

  @Option(help: ArgumentHelp("The folder to write (created if missing).", valueName: "dir"))
  var out: String

  @Option(help: ArgumentHelp("Bits per weight: 8 or 4.", valueName: "bits"))
  var weights: Int

  @Option(help: "gptq or rtn.")
  var method: Method = .gptq

  @Option(name: .customLong("weight-group"), help: ArgumentHelp("Columns per group (-1: one group per row); 32 or a multiple of 64.", valueName: "columns"))
  var weightGroup = 128

  @Flag(help: "Asymmetric groups (a zero point per group); default symmetric, as the paper.")
  var asymmetric = false

  @Flag(name: .customLong("act-order"), help: "GPTQ: quantize columns by decreasing Hessian diagonal (desc_act).")
  var actOrder = false

  @Option(help: "GPTQ: dampening, a fraction of the mean Hessian diagonal.")
  var damp = 0.01

  @Option(help: ArgumentHelp("GPTQ: calibration text (UTF-8).", valueName: "file"))
  var calibration: String?

  @Option(name: .customLong("calibration-sequences"), help: "GPTQ: number of calibration sequences.")
  var calibrationSequences = 32

  @Option(name: .customLong("sequence-length"), help: "GPTQ: tokens per calibration sequence.")
  var sequenceLength = 512

  @Option(name: .customLong("threads"), help: "Threads (default: all processors).")
  var threadsOption: Int?

  var threads: Int { threadCount(threadsOption) }

  @Flag(help: "Replace model files already in --out.")
  var overwrite = false

  @Flag(help: "Print one JSON object describing what was written.")
  var json = false

  enum Method: String, ExpressibleByArgument {
    case gptq, rtn
  }

  func validate() throws {
    guard weights == 4 || weights == 8 else { throw ValidationError("--weights must be 8 or 4") }
    try checkWeightGroup(weightGroup)
    guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256") }
    if method == .gptq {
      guard calibration != nil else { throw ValidationError("--method gptq needs --calibration FILE (or use --method rtn)") }
      guard damp > 0, damp < 1 else { throw ValidationError("--damp must be in (0, 1)") }
      guard calibrationSequences > 0, sequenceLength > 1 else {
        throw ValidationError("--calibration-sequences must be positive and --sequence-length above 1")
      }
    } else if actOrder || calibration != nil {
      throw ValidationError("--act-order and --calibration apply to --method gptq only")
    }
  }

  func run() throws {
    let start = Date()
    // Refused before the (long) quantization, not after it.
    _ = try HuggingFaceExport.checkOutput(out, writing: GPTQExport.fileNames, overwrite: overwrite, input: try HubCache.resolve(model))
    // A GGUF is widened to bf16 first: quantizers start from 16-bit weights.
    let live = LiveLine()
    defer { live.clear() }
    let loaded = try DecoderModel.load(path: model, ggufWidening: .bf16) { done, total in
      live.show("loading", done: done, total: total, detail: "layer \(done)/\(total)")
    }
    let quantization = WeightQuantization(bits: weights, groupSize: weightGroup == -1 ? nil : weightGroup, symmetric: !asymmetric)
    live.restart()
    let progress: (QuantizationProgress) -> Void = { step in
      live.log(step.message)
      live.show("quantizing (\(method.rawValue))", done: step.layersDone, total: step.layers, detail: "layer \(step.layersDone)/\(step.layers)", force: true)
    }
    let quantized: QuantizedModel
    switch method {
    case .rtn:
      quantized = try ModelQuantizer.roundToNearest(loaded, quantization, progress: progress)
    case .gptq:
      let sequences = try calibrationSequences(loaded)
      live.restart()
      live.log("calibrating on \(sequences.count) sequences of \(sequences.map(\.count).max() ?? 0) tokens")
      let options = GPTQ.Options(quantization: quantization, dampening: damp, actOrder: actOrder)
      quantized = try ModelQuantizer.gptq(loaded, calibration: sequences, options: options, threads: threads, progress: progress)
    }
    live.show("writing \(out)", force: true)
    let summary = try GPTQExport.write(quantized, to: out, overwrite: overwrite)
    live.clear()
    if summary.format == GPTQConfig.Format.v2.rawValue {
      Output.progress("note: some asymmetric group has zero point 0, which GPTQ's v1 layout cannot store; wrote checkpoint_format gptq_v2 (GPTQModel reads it; tools that assume v1 do not)")
    }
    let seconds = Date().timeIntervalSince(start)
    if json {
      try Output.json(Report(summary: summary, seconds: seconds, peakRssBytes: ProcessMemory.peakResidentBytes))
    } else {
      Output.line(String(
        format: "wrote %@: %@ %d-bit, group %d, %@ format, %.1f MiB in %.1f s (peak RSS %.0f MiB)", summary.directory,
        summary.method, summary.weightBits, summary.weightGroup, summary.format, Double(summary.safetensorsBytes) / 1_048_576, seconds,
        Double(ProcessMemory.peakResidentBytes) / 1_048_576))
    }
  }

  /// The calibration text tokenized and cut into sequences.
  func calibrationSequences(_ model: DecoderModel) throws -> [[Int]] {
    guard let calibration else { return [] }
    guard let data = FileManager.default.contents(atPath: calibration) else {
      throw CommandFailure(message: "cannot read --calibration \(calibration)")
    }
    guard let text = String(data: data, encoding: .utf8), !text.isEmpty else {
      throw CommandFailure(message: "--calibration \(calibration) is not UTF-8 text, or is empty")
    }
    guard let tokenizer = try model.tokenizer() else {
      throw CommandFailure(message: "\(model.path) has no tokenizer to read the calibration text with")
    }
    let tokens = tokenizer.encode(text)
    var sequences: [[Int]] = []
    var first = 0
    while first + 1 < tokens.count && sequences.count < calibrationSequences {
      sequences.append(Array(tokens[first..<min(tokens.count, first + sequenceLength)]))
      first += sequenceLength
    }
    guard !sequences.isEmpty else { throw CommandFailure(message: "--calibration \(calibration) gives fewer than 2 tokens") }
    return sequences
  }

  struct Report: Encodable {
    let summary: GPTQExport.Summary
    let seconds: Double
    let peakRssBytes: Int
  }
}
