import ArgumentParser
import BitBudgetEngine
import BitBudgetLab
import BitBudgetTokenizer
import Foundation

struct Perplexity: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Perplexity and KL of a KV policy or model against a baseline.",
    discussion: """
      The text's first --prompt-tokens tokens are one prefill; every later token is fed alone, as in \
      decoding, to two caches at once (--kv and --baseline-kv, full by default), so eviction and \
      quantization act as they would while generating. Reported: perplexity with each cache, the \
      mean and 99th-percentile KL(baseline ‖ --kv) of the next-token distributions (nats), how often \
      their most likely tokens agree, and both caches' resident bytes at the end.
      """)

  @OptionGroup var options: ModelOptions

  @Option(help: ArgumentHelp("A tokenizer file or folder (default: the model's).", valueName: "file-or-dir"))
  var tokenizer: String?

  @Option(name: .customLong("text-file"), help: ArgumentHelp("UTF-8 text to score (default: standard input).", valueName: "file"))
  var textFile: String?

  @Option(help: "Score at most this many tokens of the text (default: all that fit the context).")
  var tokens: Int?

  @Option(name: .customLong("prompt-tokens"), help: "Tokens fed as one prefill before scoring starts.")
  var promptTokens = 128

  @Option(name: .customLong("baseline-kv"), help: ArgumentHelp("The KV cache policy to compare against.", valueName: "spec"))
  var baselineKV = "full"

  @Option(name: .customLong("baseline-model"), help: ArgumentHelp(
    "Compare --model against this model instead of against another KV cache (e.g. quantized weights against their 16-bit original): windows of --window tokens, scored at prefill speed with full caches.",
    valueName: "dir-or-gguf"))
  var baselineModel: String?

  @Option(help: "Tokens per independent window with --baseline-model.")
  var window = 1024

  @Flag(help: "Print one JSON object.")
  var json = false

  func validate() throws {
    guard (1...1 << 20).contains(promptTokens) else { throw ValidationError("--prompt-tokens must be in 1...\(1 << 20)") }
    if let tokens, !(2...1 << 24).contains(tokens) { throw ValidationError("--tokens must be in 2...\(1 << 24)") }
    do { _ = try KVCacheSpec.parse(baselineKV) } catch let error as EngineError { throw ValidationError("--baseline-kv: \(error)") }
  }

  func run() throws {
    let data: Data
    if let textFile {
      guard let contents = FileManager.default.contents(atPath: textFile) else {
        throw CommandFailure(message: "cannot read \(textFile)")
      }
      data = contents
    } else {
      data = FileHandle.standardInput.readDataToEndOfFile()
    }
    guard let text = String(validating: data, as: UTF8.self) else { throw CommandFailure(message: "the text is not UTF-8") }
    let model = try options.loadModel()
    guard let tokenizer = try model.tokenizer(explicit: self.tokenizer) else {
      throw CommandFailure(message: "\(model.path) has no tokenizer files; give --tokenizer FILE_OR_DIR")
    }
    // With --baseline-model the text is scored in independent windows, so it may be longer than
    // the context.
    let limit = baselineModel == nil ? min(tokens ?? Int.max, model.config.maxPositions) : tokens ?? Int.max
    let ids = Array(tokenizer.encode(text).prefix(limit))
    if let baselineModel {
      guard (2...model.config.maxPositions).contains(window) else {
        throw CommandFailure(message: "--window must be in 2...\(model.config.maxPositions) (the model's context)")
      }
      let baseline = try DecoderModel.load(path: baselineModel, ggufWidening: options.ggufDType?.elementType)
      let session = try options.session(model, maxRows: 64, maxLogitRows: 64)
      // The baseline is the reference: exact activations unless --activations says otherwise.
      let baselineSession = try options.session(baseline, maxRows: 64, maxLogitRows: 64, defaultActivations: .exact)
      let score = try TextScoring.compareModels(session: session, baseline: baselineSession, tokens: ids, window: window)
      if json {
        try Output.json(Report(kv: "full", baselineKv: "full", weights: model.weights.format.description, score: score))
      } else {
        Output.line(String(
          format: "%d tokens scored: perplexity %.4f (baseline model %.4f), KL mean %.5f / p99 %.5f nats, top-1 agreement %.2f%%, weights %.1f MiB (baseline %.1f MiB), %.1f s",
          score.scoredTokens, score.perplexity, score.baselinePerplexity, score.meanKL, score.kl99, 100 * score.top1Agreement,
          Double(model.weights.byteCount) / 1_048_576, Double(baseline.weights.byteCount) / 1_048_576, score.seconds))
      }
      return
    }
    let session = try options.session(model, maxRows: max(64, 2 * promptTokens), maxLogitRows: 2)
    let cache = try options.makeCache(session)
    let baseline = try session.makeCache(spec: try KVCacheSpec.parse(baselineKV), elementType: options.kvDType.elementType)
    let score = try TextScoring.score(session: session, tokens: ids, promptTokens: promptTokens, cache: cache, baseline: baseline)
    if json {
      try Output.json(Report(kv: try options.kvSpec().description, baselineKv: baselineKV, weights: model.weights.format.description, score: score))
    } else {
      Output.line(
        String(
          format: "%d tokens scored: perplexity %.4f (baseline %.4f), KL mean %.5f / p99 %.5f nats, top-1 agreement %.2f%%, KV %.2f MiB (baseline %.2f MiB), %.1f s",
          score.scoredTokens, score.perplexity, score.baselinePerplexity, score.meanKL, score.kl99, 100 * score.top1Agreement,
          Double(score.kvBytes) / 1_048_576, Double(score.baselineKVBytes) / 1_048_576, score.seconds))
    }
  }

  struct Report: Encodable {
    let kv: String
    let baselineKv: String
    let weights: String
    let score: TextScore
  }
}
