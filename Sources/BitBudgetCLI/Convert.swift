import ArgumentParser
import BitBudgetEngine
import BitBudgetKernels
import BitBudgetMemory
import Foundation

struct Convert: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Convert a GGUF model into a Hugging Face model folder.",
    discussion: """
      Writes model.safetensors, config.json, generation_config.json, tokenizer.json and \
      tokenizer_config.json into --out, which transformers' from_pretrained and bitbudget's \
      --model both load. Quantized tensors are dequantized into --dtype (bf16: what --model \
      FILE.gguf computes with by default, so both give the same logits); vectors stored as F32 \
      stay F32. Files of an earlier conversion are replaced only with --overwrite.
      """)

  @Option(help: ArgumentHelp("The GGUF model to convert: a file or a Hub id.", valueName: "gguf"))
  var model: String

  @Option(help: ArgumentHelp("The folder to write (created if missing).", valueName: "dir"))
  var out: String

  @Option(help: "Storage type of the matrices: bf16 or f32.")
  var dtype: GGUFDType = .bf16

  @Flag(help: "Replace model files already in --out.")
  var overwrite = false

  @Flag(help: "Print one JSON object describing what was written.")
  var json = false

  func run() throws {
    let start = Date()
    let live = LiveLine()
    defer { live.clear() }
    let summary = try HuggingFaceExport.convert(
      gguf: try HubCache.resolve(model), to: out, matrixType: dtype == .f32 ? .f32 : .bf16, overwrite: overwrite
    ) { written, total in
      live.show("converting", done: written, total: total, detail: "\(ByteSize.readable(written)) of \(ByteSize.readable(total))")
    }
    if json {
      try Output.json(summary)
    } else {
      let megabytes = Double(summary.safetensorsBytes) / 1_048_576
      Output.line(
        "wrote \(summary.directory): \(summary.architecture), \(summary.tensors) tensors, "
          + String(format: "%.1f MiB of weights in %.1f s", megabytes, Date().timeIntervalSince(start)))
    }
  }
}
