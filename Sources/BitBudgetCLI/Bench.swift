import ArgumentParser
import BitBudgetEngine
import Foundation

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure prefill and decode speed and peak memory.",
    discussion: """
      As llama-bench's pp and tg tests: prefill of --prompt-tokens random token ids into an empty \
      KV cache, and decode of --gen-tokens tokens (greedy, stop tokens ignored) after --depth \
      tokens of context (at least 1). Each is run --repetitions times with a fresh cache; the \
      median rates are reported.
      """)

  @OptionGroup var options: ModelOptions

  @Option(name: .customLong("prompt-tokens"), help: "Prompt length for the prefill measurement.")
  var promptTokens: Int = 512

  @Option(name: .customLong("gen-tokens"), help: "Tokens to decode after the prompt.")
  var genTokens: Int = 128

  @Option(help: "Tokens of context before the decode measurement (llama-bench -d).")
  var depth: Int = 0

  @Option(help: "G: samples decoded together in the decode measurement (its rate counts all of them).")
  var parallel: Int = 1

  @Option(help: "Runs; the median of each rate is reported.")
  var repetitions: Int = 3

  @Option(help: "Seed of the random prompt.")
  var seed: UInt64 = 1

  @Flag(help: "Print one JSON object.")
  var json = false

  func validate() throws {
    guard promptTokens >= 1 else { throw ValidationError("--prompt-tokens must be at least 1") }
    guard genTokens >= 1 else { throw ValidationError("--gen-tokens must be at least 1") }
    guard (1...100).contains(repetitions) else { throw ValidationError("--repetitions must be in 1...100") }
    guard depth >= 0 else { throw ValidationError("--depth must not be negative") }
    guard (1...256).contains(parallel) else { throw ValidationError("--parallel must be in 1...256") }
  }

  func run() throws {
    let model = try options.loadModel()
    let config = model.config
    let context = config.maxPositions
    guard promptTokens <= context else {
      throw CommandFailure(message: "--prompt-tokens \(promptTokens) exceeds the model's context of \(context) positions")
    }
    guard max(1, depth) <= context, genTokens <= context - max(1, depth) else {
      throw CommandFailure(message: "--depth \(depth) plus --gen-tokens \(genTokens) exceed the model's context of \(context) positions")
    }
    try options.checkMemoryLimit(
      model: model, promptTokens: max(promptTokens, max(1, depth)), tokens: genTokens, samples: parallel, prefillChunk: InferenceSession.defaultMaxRows)
    let session = try options.session(model)
    var random = SplitMix64(seed: seed)
    let randomTokens = { (count: Int) in (0..<count).map { _ in Int(random.next() % UInt64(config.vocabSize)) } }
    let prompt = randomTokens(promptTokens)
    let contextTokens = randomTokens(max(1, depth))
    var prefillRates: [Double] = []
    var decodeRates: [Double] = []
    var kvBytes = 0
    var maintenanceShares: [Double] = []
    let generator = Generator(session: session)
    for _ in 0..<repetitions {
      // The prefill test's cache is gone before the decode test builds its own.
      do {
        let prefillCache = try options.makeCache(session)
        let start = Date()
        _ = try session.prefill(prompt, cache: prefillCache)
        prefillRates.append(Double(promptTokens) / Date().timeIntervalSince(start))
        kvBytes = max(kvBytes, prefillCache.residentBytes)
      }

      let cache = try options.makeCache(session)
      let result = try generator.generate(
        prompt: contextTokens, options: GenerationOptions(maxTokens: genTokens + 1, samples: parallel), cache: cache)
      decodeRates.append(Double(result.decodedTokens) / result.decodeSeconds)
      if let compressed = cache as? CompressedKVCache, parallel == 1 {
        maintenanceShares.append(compressed.decodeMaintenanceSeconds / result.decodeSeconds)
      }
      kvBytes = max(kvBytes, result.kvBytes)
    }
    let report = BenchReport(
      model: model.path, threads: session.pool.threadCount, promptTokens: promptTokens,
      genTokens: genTokens, depth: max(1, depth), parallel: parallel, repetitions: repetitions, kvDtype: options.kvDType.rawValue, kv: try options.kvSpec().description,
      prefillTokensPerS: median(prefillRates), decodeTokensPerS: median(decodeRates),
      prefillTokensPerSAll: prefillRates, decodeTokensPerSAll: decodeRates,
      kvMaintenanceShare: maintenanceShares.isEmpty ? nil : median(maintenanceShares),
      weights: model.weights.format.description, weightsBytes: model.weights.byteCount, kvBytes: kvBytes, scratchBytes: session.scratchBytes,
      peakRssBytes: ProcessMemory.peakResidentBytes)
    if json {
      try Output.json(report)
    } else {
      Output.line(String(format: "prefill %d tokens: %.1f tokens/s", promptTokens, report.prefillTokensPerS))
      let samples = parallel == 1 ? "" : " × G = \(parallel)"
      Output.line("decode  \(genTokens) tokens\(samples) at depth \(report.depth): " + String(format: "%.1f tokens/s", report.decodeTokensPerS))
      if let share = report.kvMaintenanceShare {
        Output.line(String(format: "KV compression/quantization: %.1f%% of decode time", 100 * share))
      }
      Output.line(String(format: "weights %.1f MiB, KV %.1f MiB, scratch %.1f MiB, peak RSS %.1f MiB",
        Double(report.weightsBytes) / 1_048_576, Double(kvBytes) / 1_048_576,
        Double(report.scratchBytes) / 1_048_576, Double(report.peakRssBytes) / 1_048_576))
    }
  }

  private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
  }
}

struct BenchReport: Encodable {
  let model: String
  let threads: Int
  let promptTokens: Int
  let genTokens: Int
  /// Tokens of context before the decode measurement (--depth, at least 1).
  let depth: Int
  let parallel: Int
  let repetitions: Int
  let kvDtype: String
  /// The KV cache policy (`--kv`, normalized).
  let kv: String
  let prefillTokensPerS: Double
  let decodeTokensPerS: Double
  let prefillTokensPerSAll: [Double]
  let decodeTokensPerSAll: [Double]
  /// Share of decode time spent compressing/quantizing the KV cache (one sample; nil for full).
  let kvMaintenanceShare: Double?
  /// How the linear layers are stored (dense, gptq …, rtn …).
  let weights: String
  let weightsBytes: Int
  let kvBytes: Int
  let scratchBytes: Int
  let peakRssBytes: Int
}

/// A small seeded generator (Steele et al.'s SplitMix64) for reproducible benchmark prompts.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
