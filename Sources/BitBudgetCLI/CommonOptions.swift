import Foundation
import ArgumentParser
import BitBudgetEngine
import BitBudgetEval
import BitBudgetLab
import BitBudgetKernels
import BitBudgetMemory
import BitBudgetTokenizer

/// Options shared by the commands that load a model.
struct ModelOptions: ParsableArguments {
  @Option(name: .long, help: ArgumentHelp(
    "Hugging Face model folder (config.json + safetensors), GGUF file, or Hub id ORG/NAME[@REVISION][:QUANT] (from the local Hugging Face cache, downloaded there when missing).",
    valueName: "dir-or-gguf"))
  var model: String

  @Option(name: .customLong("threads"), help: "Threads for the kernels (default: all processors).")
  var threadsOption: Int?

  var threads: Int { threadCount(threadsOption) }

  @Option(name: .customLong("kv-dtype"), help: "Storage type of the KV cache: bf16, f16 or f32.")
  var kvDType: KVDType = .bf16

  @Option(name: .long, help: ArgumentHelp(
    "KV cache policy: \(KVCacheSpec.acceptedForms).",
    valueName: "spec"))
  var kv = "full"

  @Option(name: .customLong("memory-limit"), help: ArgumentHelp(
    "Refuse to run, before generating, when weights + KV cache would exceed this (e.g. 8GiB).",
    valueName: "size"))
  var memoryLimit: String?

  @Option(name: .customLong("gguf-dtype"), help: ArgumentHelp(
    "Widen every quantized GGUF tensor at load to bf16 or f32. By default tensors of type Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K stay quantized at the file's size and other types are widened to bf16 (--weights also widens first).",
    valueName: "bf16|f32"))
  var ggufDType: GGUFDType?

  @Option(name: .long, help: ArgumentHelp(
    "Linear-layer weights: 16 (as stored), or 8 or 4 to quantize a 16-bit model round-to-nearest at load (symmetric, groups of --weight-group). GPTQ checkpoints load as stored; make them with `bitbudget quantize`.",
    valueName: "bits"))
  var weights: Int?

  @Option(name: .customLong("weight-group"), help: ArgumentHelp("Group size of --weights 8|4 (-1: one group per row).", valueName: "columns"))
  var weightGroup = 128

  @Option(name: .long, help: ArgumentHelp(
    "How activations meet the weights: rounded (quantized weights: int8 per block of 32, multiplied with AVX-512 VNNI in decode and prefill, or with AVX2 for symmetric 4/8-bit weights and every held GGUF type; bf16 weights: bf16, multiplied with AVX512-BF16, in prefill; attention over a bf16 KV cache: queries and softmax weights bf16, likewise, in prefill and decode; the default where this build has them, except for logits and perplexity's baseline) or exact (f32).",
    valueName: "rounded|exact"))
  var activations: LinearActivations?

  func validate() throws {
    if activations == .rounded && !LinearActivations.roundedAvailable {
      throw ValidationError("--activations rounded needs the int8 kernels, which this build lacks (x86-64 with AVX2, or AVX-512 VNNI, and AVX512-BF16 for bf16 weights); use exact")
    }
    guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256") }
    if let weights, ![4, 8, 16].contains(weights) { throw ValidationError("--weights must be 16, 8 or 4") }
    try checkWeightGroup(weightGroup)
    _ = try kvSpec()
    if let memoryLimit, ByteSize.parse(memoryLimit) == nil {
      throw ValidationError("--memory-limit \"\(memoryLimit)\" is not a size with a unit (\(ByteSize.examples))")
    }
  }

  /// These options as the lab's engine settings.
  func settings() throws -> EngineSettings {
    var settings = EngineSettings(
      modelPath: model, threads: threads, kv: try kvSpec(), kvElementType: kvDType.elementType, memoryLimit: memoryLimit.flatMap(ByteSize.parse))
    settings.setWeights(weights, groupSize: weightGroup == -1 ? nil : weightGroup, ggufWidening: ggufDType?.elementType)
    settings.activations = activations
    return settings
  }

  /// With --memory-limit: throws, with the numbers, when the weights plus the KV caches' peak
  /// plus the session's scratch (the memory model's engine convention) of `samples` samples
  /// holding `tokens` tokens after a `promptTokens`-token prompt exceed it.
  func checkMemoryLimit(model: DecoderModel, promptTokens: Int, tokens: Int, samples: Int, prefillChunk: Int) throws {
    try settings().checkMemoryLimit(model: model, promptTokens: promptTokens, tokens: tokens, samples: samples, prefillChunk: prefillChunk)
  }

  /// A session for `model` with these options' kernels; `defaultActivations` applies without
  /// `--activations`.
  func session(
    _ model: DecoderModel, maxRows: Int = InferenceSession.defaultMaxRows, maxLogitRows: Int = 16,
    defaultActivations: LinearActivations = .fastest
  ) throws -> InferenceSession {
    try settings().session(model, maxRows: maxRows, maxLogitRows: maxLogitRows, defaultActivations: defaultActivations)
  }

  func kvSpec() throws -> KVCacheSpec {
    do {
      return try KVCacheSpec.parse(kv)
    } catch let error as EngineError {
      throw ValidationError("--kv: \(error.description)")
    }
  }

  /// A new empty cache as --kv and --kv-dtype ask.
  func makeCache(_ session: InferenceSession) throws -> any KVCache {
    try settings().makeCache(session)
  }

  /// Loads --model, with a progress bar on a terminal when loading takes a while (GGUF repacking,
  /// --weights quantizing at load).
  func loadModel() throws -> DecoderModel {
    let live = LiveLine()
    defer { live.clear() }
    let name = (model as NSString).lastPathComponent
    return try settings().loadModel { done, total in live.show("loading \(name)", done: done, total: total, detail: "layer \(done)/\(total)") }
  }
}

/// `--weight-group`: what the kernels hold (the 32-column blocks of the int8 path, whole 64-column
/// chunks) or -1 for one group per row.
func checkWeightGroup(_ columns: Int) throws {
  guard columns == -1 || columns == 32 || (columns > 0 && columns % 64 == 0) else {
    throw ValidationError("--weight-group must be -1, 32 or a positive multiple of 64")
  }
}

/// `--threads` when given, else every processor (at most 256). The default is computed here,
/// not written into the option, whose help would print this machine's count as if it were fixed.
func threadCount(_ option: Int?) -> Int { option ?? min(256, ThreadPool.defaultThreadCount) }

/// The results database; `readOnly` for commands that only read (they then work on a database
/// the user may not write).
func openStore(_ path: String, readOnly: Bool = false) throws -> ResultStore {
  do {
    return try ResultStore(path: path, readOnly: readOnly)
  } catch let error as EvalError {
    throw CommandFailure(message: error.description)
  }
}

enum GGUFDType: String, ExpressibleByArgument, CaseIterable {
  case bf16, f32

  var elementType: ElementType { self == .f32 ? .f32 : .bf16 }
}

enum KVDType: String, ExpressibleByArgument, CaseIterable {
  case bf16, f16, f32

  var elementType: ElementType {
    switch self {
    case .bf16: .bf16
    case .f16: .f16
    case .f32: .f32
    }
  }
}

/// A comma-separated list of token ids, e.g. `3,17,42`.
struct TokenIds: ExpressibleByArgument {
  let values: [Int]

  init?(argument: String) {
    var values: [Int] = []
    for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
      guard let id = Int(part.trimmingCharacters(in: .whitespaces)), id >= 0 else { return nil }
      values.append(id)
    }
    guard !values.isEmpty else { return nil }
    self.values = values
  }

  static var defaultCompletionKind: CompletionKind { .default }
}

extension LinearActivations: ExpressibleByArgument {}
