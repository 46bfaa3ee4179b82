import ArgumentParser
import BitBudgetEngine
import BitBudgetKernels
import BitBudgetMemory
import Foundation

struct Memory: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Estimate weights + KV-cache memory, or what fits a memory budget.",
    discussion: """
      --convention engine (default) is what BitBudget allocates, to the byte (checked against its \
      caches and loaded weights; 8/4-bit weights as `--weights` quantizes them at load, or a GPTQ \
      checkpoint as stored); \
      --convention paper is the paper's Table 1 accounting (GPTQ 4/8-bit weights, 16-bit KV, \
      the prompt not counted). --model takes a model folder, a GGUF file, or a preset: \
      \(ModelPresets.all.map(\.name).joined(separator: ", ")). With --budget, prints the longest \
      --tokens (or, with --solve parallel, the largest --parallel) that fit.
      """)

  @Option(help: ArgumentHelp("Model folder, GGUF file, or preset name.", valueName: "dir|gguf|preset"))
  var model: String

  @Option(help: "Weight precision: 16, 8 or 4 bits (default: as the model stores them; 16 for presets).")
  var weights: Int?

  @Option(name: .customLong("weight-group"), help: ArgumentHelp("Group size of 8/4-bit weights in the engine convention (-1: one group per row), as generate's --weight-group.", valueName: "columns"))
  var weightGroup = 128

  @Option(help: "Tokens each sample holds after the prompt (thinking budget + answer).")
  var tokens: Int?

  @Option(name: .customLong("prompt-tokens"), help: "Prompt tokens, shared by the samples (engine convention).")
  var promptTokens = 1

  @Option(help: "G: samples decoded together, each with its own KV cache.")
  var parallel = 1

  @Option(help: ArgumentHelp("KV cache policy (as generate's --kv).", valueName: "spec"))
  var kv = "full"

  @Option(name: .customLong("kv-dtype"), help: "Storage type of the KV cache: bf16, f16 or f32.")
  var kvDType: KVDType = .bf16

  @Option(name: .customLong("gguf-dtype"), help: ArgumentHelp(
    "Widen every quantized GGUF tensor to bf16 or f32, as generate's --gguf-dtype (default: tensors of type Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K stay quantized).",
    valueName: "bf16|f32"))
  var ggufDType: GGUFDType?

  @Option(name: .customLong("threads"), help: "Threads the run would use; the engine's scratch grows with them (default: all processors).")
  var threadsOption: Int?

  var threads: Int { threadCount(threadsOption) }

  @Option(help: "engine or paper.")
  var convention: MemoryConvention = .engine

  @Option(help: ArgumentHelp("A memory budget (e.g. 8GiB, 16GB, 512MiB): find what fits.", valueName: "size"))
  var budget: String?

  @Option(help: "With --budget: solve for tokens (per sample) or parallel (G).")
  var solve: Solve = .tokens

  @Flag(help: "Print one JSON object.")
  var json = false

  enum Solve: String, ExpressibleByArgument, CaseIterable {
    case tokens, parallel
  }

  func validate() throws {
    if let weights, ![4, 8, 16].contains(weights) { throw ValidationError("--weights must be 16, 8 or 4") }
    try checkWeightGroup(weightGroup)
    guard (1...4096).contains(parallel) else { throw ValidationError("--parallel must be in 1...4096") }
    guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256") }
    guard (1...(1 << 24)).contains(promptTokens) else { throw ValidationError("--prompt-tokens must be in 1...\(1 << 24)") }
    if let tokens, !(0...(1 << 24)).contains(tokens) { throw ValidationError("--tokens must be in 0...\(1 << 24)") }
    if let budget, ByteSize.parse(budget) == nil {
      throw ValidationError("--budget \"\(budget)\" is not a size with a unit (\(ByteSize.examples))")
    }
    if budget == nil && tokens == nil { throw ValidationError("give --tokens, or --budget to find how many fit") }
    if budget != nil && solve == .parallel && tokens == nil { throw ValidationError("--solve parallel needs --tokens") }
    do { _ = try KVCacheSpec.parse(kv) } catch let error as EngineError { throw ValidationError("--kv: \(error)") }
  }

  func run() throws {
    // GGUF tensors as `--weights` loads them: widened to bf16 when bits are asked for.
    var memory = try MemoryModel.load(model, ggufWidening: ggufDType?.elementType ?? (weights != nil ? .bf16 : nil))
    memory.quantizedGroupSize = weightGroup == -1 ? nil : weightGroup
    let weights = self.weights ?? memory.layout.linearBits
    let spec = try KVCacheSpec.parse(kv)
    let kvType = kvDType.elementType
    let context = memory.config.maxPositions
    var solved: Int?
    var tokens = self.tokens ?? 0
    var parallel = self.parallel
    if let budget, let bytes = ByteSize.parse(budget) {
      switch solve {
      case .tokens:
        solved = try memory.maxTokens(
          fitting: bytes, limit: max(0, context - promptTokens), weightsBits: weights, promptTokens: promptTokens,
          samples: parallel, kv: spec, kvElementType: kvType, convention: convention, threads: threads)
        tokens = solved ?? 0
      case .parallel:
        solved = try memory.maxSamples(
          fitting: bytes, weightsBits: weights, tokens: tokens, promptTokens: promptTokens, kv: spec,
          kvElementType: kvType, convention: convention, threads: threads)
        parallel = solved ?? 1
      }
      guard solved != nil else {
        let minimum = try memory.estimate(
          weightsBits: weights, tokens: solve == .tokens ? 0 : tokens, promptTokens: promptTokens, samples: 1, kv: spec,
          kvElementType: kvType, convention: convention, threads: threads)
        throw CommandFailure(
          message: "nothing fits \(budget): the smallest configuration needs \(ByteSize.gib(minimum.totalBytes)) (weights \(ByteSize.gib(minimum.weightsBytes)), KV \(ByteSize.gib(minimum.kvPeakBytes)))")
      }
    }
    let estimate = try memory.estimate(
      weightsBits: weights, tokens: tokens, promptTokens: promptTokens, samples: parallel, kv: spec,
      kvElementType: kvType, convention: convention, threads: threads)
    if json {
      try Output.json(Report(model: memory.name, estimate: estimate, budgetBytes: budget.flatMap(ByteSize.parse),
                             maxTokens: solve == .tokens ? solved : nil, maxParallel: solve == .parallel ? solved : nil))
      return
    }
    if let solved {
      Output.line(solve == .tokens ? "longest that fits: \(counted(solved, "token")) per sample" : "largest G that fits: \(solved)")
    }
    Output.line("\(memory.name), \(weights)-bit weights, KV \(spec.shortDescription), \(counted(tokens, "token")) per sample, G = \(parallel) (\(convention.rawValue) convention)")
    Output.line("  weights  \(ByteSize.readable(estimate.weightsBytes))")
    let kvEnd = estimate.kvBytes == estimate.kvPeakBytes ? "" : " at most (\(ByteSize.readable(estimate.kvBytes)) at the end)"
    Output.line("  KV       \(ByteSize.readable(estimate.kvPeakBytes))\(kvEnd)")
    if estimate.scratchBytes > 0 { Output.line("  scratch  \(ByteSize.readable(estimate.scratchBytes)) (activations, kernel panels, attention tiles)") }
    Output.line("  total    \(ByteSize.readable(estimate.totalBytes))")
  }

  struct Report: Encodable {
    let model: String
    let convention: String
    let weightBits: Int
    let tokens: Int
    let promptTokens: Int
    let parallel: Int
    let kv: String
    let weightsBytes: Int
    let kvBytes: Int
    let kvPeakBytes: Int
    let scratchBytes: Int
    let totalBytes: Int
    let budgetBytes: Int?
    let maxTokens: Int?
    let maxParallel: Int?

    init(model: String, estimate e: MemoryEstimate, budgetBytes: Int?, maxTokens: Int?, maxParallel: Int?) {
      self.model = model
      convention = e.convention.rawValue
      weightBits = e.weightsBits
      tokens = e.tokens
      promptTokens = e.promptTokens
      parallel = e.samples
      kv = e.kv
      weightsBytes = e.weightsBytes
      kvBytes = e.kvBytes
      kvPeakBytes = e.kvPeakBytes
      scratchBytes = e.scratchBytes
      totalBytes = e.totalBytes
      self.budgetBytes = budgetBytes
      self.maxTokens = maxTokens
      self.maxParallel = maxParallel
    }
  }
}
extension MemoryConvention: ExpressibleByArgument {}
