import ArgumentParser
import BitBudgetEngine
import BitBudgetTokenizer
import Foundation

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate tokens after a prompt.",
    discussion: """
      The prompt is text (--prompt, encoded with the model folder's tokenizer or --tokenizer; \
      --chat wraps it in the Qwen3 chat template as one user turn) or token ids (--ids). Prints the \
      generated text as it comes on a terminal (token ids without a tokenizer); with --json, one \
      object with the samples (tokens, text, answer after </think>, finish), memory and timing.
      """)

  @OptionGroup var options: ModelOptions

  @Option(help: "Prompt text.")
  var prompt: String?

  @Option(help: ArgumentHelp("Prompt token ids, comma-separated.", valueName: "ids"))
  var ids: TokenIds?

  @Flag(help: "Format --prompt as a user turn of the Qwen3 chat template (thinking mode).")
  var chat = false

  @Flag(name: .customLong("no-thinking"), help: "With --chat: the template's non-thinking variant (empty <think></think>).")
  var noThinking = false

  @Option(help: ArgumentHelp("Tokenizer file or folder (default: the model folder).", valueName: "file-or-dir"))
  var tokenizer: String?

  @Option(name: .customLong("max-tokens"), help: "Maximum number of new tokens.")
  var maxTokens: Int = 256

  @Flag(help: "Greedy decoding (argmax at every step).")
  var greedy = false

  @Flag(help: "Print one JSON object.")
  var json = false

  func validate() throws {
    guard (prompt == nil) != (ids == nil) else { throw ValidationError("give the prompt as --prompt TEXT or as --ids, not both") }
    guard !chat || prompt != nil else { throw ValidationError("--chat formats --prompt; it does not apply to --ids") }
    guard !noThinking || chat else { throw ValidationError("--no-thinking applies only with --chat") }
    guard maxTokens >= 0 else { throw ValidationError("--max-tokens must not be negative") }
    guard greedy else {
      throw ValidationError("only greedy decoding is implemented so far: pass --greedy")
    }
  }

  func run() throws {
    let wallStart = Date()
    let model = try options.loadModel()
    let tokenizer = try loadTokenizer(model: model)
    let promptIds: [Int]
    if let prompt, let tokenizer {
      let text = chat ? QwenChatTemplate.render([ChatMessage(role: .user, content: prompt)], enableThinking: !noThinking) : prompt
      promptIds = tokenizer.encode(text)
    } else {
      promptIds = ids?.values ?? []
    }
    var stops = Set(try model.stopTokenIds())
    if chat, let tokenizer, let end = tokenizer.id(of: "<|im_end|>") { stops.insert(end) }

    let session = try InferenceSession(model: model, threads: options.threads)
    let cache = session.makeCache(elementType: options.kvDType.elementType)
    let terminal = !json && isatty(STDOUT_FILENO) != 0
    var decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
    let result = try Generator(session: session).generateGreedy(
      prompt: promptIds, maxTokens: maxTokens, stopTokens: stops, cache: cache,
      vocabularyLimit: tokenizer.map { min($0.vocabularySize, model.config.vocabSize) },
      onToken: terminal ? { token in
        if var streaming = decoder {
          Output.write(try streaming.append(token))
          decoder = streaming
        } else {
          Output.write("\(token) ")
        }
      } : nil)
    let text = try tokenizer?.decode(result.tokens)
    if json {
      let report = GenerateReport(
        samples: [.init(tokens: result.tokens, text: text, answer: text.flatMap { QwenChatTemplate.splitThinking($0).answer },
                        finish: result.finish.rawValue)],
        promptTokens: result.promptTokens,
        memory: .init(
          weightsBytes: model.weights.byteCount, kvBytes: cache.residentBytes,
          kvTokens: cache.residentTokens, scratchBytes: session.scratchBytes,
          peakRssBytes: ProcessMemory.peakResidentBytes),
        timing: .init(result, wallSeconds: Date().timeIntervalSince(wallStart)))
      try Output.json(report)
    } else {
      if terminal {
        Output.line(decoder?.finish() ?? "")
      } else {
        Output.line(text ?? result.tokens.map(String.init).joined(separator: " "))
      }
      FileHandle.standardError.write(Data("finish: \(result.finish.rawValue), \(result.tokens.count) tokens\n".utf8))
    }
  }

  /// --tokenizer, else the model folder's tokenizer if it has one; required for --prompt.
  private func loadTokenizer(model: DecoderModel) throws -> Tokenizer? {
    if let path = tokenizer { return try Tokenizer.load(from: path) }
    let folder = model.directory
    let hasTokenizer = ["tokenizer.json", "vocab.json"].contains {
      FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0))
    }
    if hasTokenizer { return try Tokenizer.load(from: folder) }
    if prompt != nil {
      throw CommandFailure(message: "\(folder) has no tokenizer files; give --tokenizer FILE_OR_DIR to encode --prompt")
    }
    return nil
  }
}

struct GenerateReport: Encodable {
  struct Sample: Encodable {
    let tokens: [Int]
    /// The decoded tokens (when a tokenizer is known).
    let text: String?
    /// The text after `</think>`, if the sample closed its thinking.
    let answer: String?
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
