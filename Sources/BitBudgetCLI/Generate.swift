import ArgumentParser
import BitBudgetEngine
import Foundation

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate tokens after a prompt.",
    discussion: "Prints the new token ids, or with --json the samples, memory and timing.")

  @OptionGroup var options: ModelOptions

  @Option(help: ArgumentHelp("Prompt token ids, comma-separated.", valueName: "ids"))
  var ids: TokenIds

  @Option(name: .customLong("max-tokens"), help: "Maximum number of new tokens.")
  var maxTokens: Int = 256

  @Flag(help: "Greedy decoding (argmax at every step).")
  var greedy = false

  @Flag(help: "Print one JSON object.")
  var json = false

  func validate() throws {
    guard maxTokens >= 0 else { throw ValidationError("--max-tokens must not be negative") }
    guard greedy else {
      throw ValidationError("only greedy decoding is implemented so far: pass --greedy")
    }
  }

  func run() throws {
    let wallStart = Date()
    let model = try options.loadModel()
    let session = try InferenceSession(model: model, threads: options.threads)
    let cache = session.makeCache(elementType: options.kvDType.elementType)
    let stops = Set(try model.stopTokenIds())
    let streaming = !json && isatty(STDOUT_FILENO) != 0
    let result = try Generator(session: session).generateGreedy(
      prompt: ids.values, maxTokens: maxTokens, stopTokens: stops, cache: cache,
      onToken: streaming ? { Output.write("\($0) ") } : nil)
    if json {
      let report = GenerateReport(
        samples: [.init(tokens: result.tokens, finish: result.finish.rawValue)],
        promptTokens: result.promptTokens,
        memory: .init(
          weightsBytes: model.weights.byteCount, kvBytes: cache.residentBytes,
          kvTokens: cache.residentTokens, scratchBytes: session.scratchBytes,
          peakRssBytes: ProcessMemory.peakResidentBytes),
        timing: .init(result, wallSeconds: Date().timeIntervalSince(wallStart)))
      try Output.json(report)
    } else {
      if streaming { Output.line("") } else { Output.line(result.tokens.map(String.init).joined(separator: " ")) }
      FileHandle.standardError.write(Data("finish: \(result.finish.rawValue), \(result.tokens.count) tokens\n".utf8))
    }
  }
}

struct GenerateReport: Encodable {
  struct Sample: Encodable {
    let tokens: [Int]
    let finish: String
  }

  struct Memory: Encodable {
    let weightsBytes: Int
    let kvBytes: Int
    let kvTokens: Int
    let scratchBytes: Int
    let peakRssBytes: Int
  }

  struct Timing: Encodable {
    let prefillSeconds: Double
    let decodeSeconds: Double
    let wallSeconds: Double
    let prefillTokensPerS: Double
    let decodeTokensPerS: Double

    init(_ result: GenerationResult, wallSeconds: Double) {
      prefillSeconds = result.prefillSeconds
      decodeSeconds = result.decodeSeconds
      self.wallSeconds = wallSeconds
      prefillTokensPerS = result.prefillSeconds > 0 ? Double(result.promptTokens) / result.prefillSeconds : 0
      decodeTokensPerS = result.decodeSeconds > 0 ? Double(result.decodeSteps) / result.decodeSeconds : 0
    }
  }

  let samples: [Sample]
  let promptTokens: Int
  let memory: Memory
  let timing: Timing
}
