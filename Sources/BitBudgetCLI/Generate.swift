import ArgumentParser
import BitBudgetEngine
import BitBudgetLab
import BitBudgetMemory
import BitBudgetEval
import BitBudgetTokenizer
import Foundation

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate text (or G samples) from a prompt.",
    discussion: """
      The prompt is text (--prompt, encoded with the model folder's tokenizer or --tokenizer; \
      --chat wraps it as one user turn in the model's own chat template, or --chat-template) or \
      token ids (--ids). Sampling \
      defaults to the model's generation_config.json (greedy without one). --parallel G decodes G \
      samples together after one prefill. --thinking-budget N closes thinking after N tokens with \
      the --budget-text (budget forcing) and leaves --answer-tokens for the answer. On a terminal \
      the text streams as it is generated (with G > 1 each sample is shown at the end, with its \
      answer and the majority); --json prints one object with the samples (tokens, \
      text, thinking_tokens, answer, finish), memory and timing.
      """)

  @OptionGroup var options: ModelOptions

  @Option(help: "Prompt text.")
  var prompt: String?

  @Option(help: ArgumentHelp("Prompt token ids, comma-separated.", valueName: "ids"))
  var ids: TokenIds?

  @Flag(help: "Format --prompt as a user turn of the model's chat template (enable_thinking on).")
  var chat = false

  @Flag(name: .customLong("no-thinking"), help: "With --chat: enable_thinking off (Qwen3: an empty <think></think>).")
  var noThinking = false

  @Option(
    name: .customLong("chat-template"),
    help: ArgumentHelp("With --chat: this template instead of the model's (a .jinja file, a tokenizer_config.json, or qwen3).", valueName: "file"))
  var chatTemplate: String?

  @Option(help: ArgumentHelp("Tokenizer file or folder (default: the model folder).", valueName: "file-or-dir"))
  var tokenizer: String?

  @Option(name: .customLong("max-tokens"), help: "Most tokens a sample generates (default 256, or budget + answer tokens with --thinking-budget).")
  var maxTokens: Int?

  @Flag(help: "Greedy decoding (argmax at every step).")
  var greedy = false

  @Option(help: "Sampling temperature (0 = greedy).")
  var temperature: Float?

  @Option(name: .customLong("top-p"), help: "Top-p (nucleus) mass, in (0, 1].")
  var topP: Float?

  @Option(name: .customLong("top-k"), help: "Top-k (0 = off).")
  var topK: Int?

  @Option(name: .customLong("min-p"), help: "Min-p, in [0, 1).")
  var minP: Float?

  @Option(help: "Seed; sample i draws from its own stream of this seed.")
  var seed: UInt64 = 0

  @Option(help: "G: samples decoded together after one prefill.")
  var parallel: Int = 1

  @Option(name: .customLong("thinking-budget"), help: "Thinking tokens before budget forcing closes the thinking.")
  var thinkingBudget: Int?

  @Option(name: .customLong("answer-tokens"), help: "Tokens allowed for the answer after forcing.")
  var answerTokens: Int = 256

  @Option(
    name: .customLong("budget-text"),
    help: "Text that closes forced thinking: paper, qwen3, s1, or any text (\\n, \\t and \\\\ are unescaped).")
  var budgetText: String = "paper"

  @Option(name: .customLong("min-thinking"), help: "Replace an earlier end of thinking with --wait-text until this many thinking tokens.")
  var minThinking: Int = 0

  @Option(name: .customLong("wait-text"), help: "Text inserted by --min-thinking.")
  var waitText: String = BudgetForcing.waitText

  @Flag(help: "Print one JSON object.")
  var json = false

  /// The forced texts by preset name.
  static let budgetPresets = BudgetForcing.presets

  func validate() throws {
    guard (prompt == nil) != (ids == nil) else { throw ValidationError("give the prompt as --prompt TEXT or as --ids, not both") }
    guard !chat || prompt != nil else { throw ValidationError("--chat formats --prompt; it does not apply to --ids") }
    guard !noThinking || chat else { throw ValidationError("--no-thinking applies only with --chat") }
    guard chatTemplate == nil || chat else { throw ValidationError("--chat-template applies only with --chat") }
    if let maxTokens { guard maxTokens >= 0 else { throw ValidationError("--max-tokens must not be negative") } }
    guard (1...256).contains(parallel) else { throw ValidationError("--parallel must be in 1...256") }
    if let temperature { guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be a number ≥ 0") } }
    if let topP { guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") } }
    if let topK { guard topK >= 0 else { throw ValidationError("--top-k must not be negative") } }
    if let minP { guard minP >= 0, minP < 1 else { throw ValidationError("--min-p must be in [0, 1)") } }
    if greedy && (temperature != nil || topP != nil || topK != nil || minP != nil) {
      throw ValidationError("--greedy cannot be combined with --temperature/--top-p/--top-k/--min-p")
    }
    // Larger values cannot fit any model's context; bounding them keeps the sums below exact.
    let limit = 1 << 30
    if let maxTokens { guard maxTokens <= limit else { throw ValidationError("--max-tokens is larger than any context") } }
    if let thinkingBudget {
      guard (1...limit).contains(thinkingBudget) else { throw ValidationError("--thinking-budget must be in 1...\(limit)") }
      guard !noThinking else { throw ValidationError("--thinking-budget does not apply with --no-thinking (the prompt already closes the thinking)") }
    }
    guard (0...limit).contains(answerTokens) else { throw ValidationError("--answer-tokens must be in 0...\(limit)") }
    guard (0...limit).contains(minThinking) else { throw ValidationError("--min-thinking must be in 0...\(limit)") }
  }

  func run() throws {
    let wallStart = Date()
    let model = try options.loadModel()
    let tokenizer = try loadTokenizer(model: model)
    if thinkingBudget != nil, tokenizer == nil {
      throw CommandFailure(message: "--thinking-budget needs a tokenizer (to find </think> and encode --budget-text); give --tokenizer")
    }
    let template = try chat ? tokenizer.map { try ChatTemplate.forModel(model, tokenizer: $0, explicit: chatTemplate) } : nil
    let session = try options.session(model)
    let reasoning = try ReasoningModel(model: model, tokenizer: tokenizer, template: template, session: session)
    let request: ReasoningPrompt =
      if let prompt { chat ? .messages([ChatMessage(role: .user, content: prompt)]) : .text(prompt) } else { .tokens(ids?.values ?? []) }

    var settings = ReasoningOptions(maxTokens: maxTokens, seed: seed, thinking: !noThinking, thinkingBudget: thinkingBudget, answerTokens: answerTokens, kv: try options.kvSpec())
    settings.kvElementType = options.kvDType.elementType
    var sampling = greedy ? SamplingParameters.greedy : reasoning.defaultSampling
    if let temperature { sampling.temperature = temperature }
    if let topK { sampling.topK = topK }
    if let topP { sampling.topP = topP }
    if let minP { sampling.minP = minP }
    settings.sampling = sampling
    settings.budgetText = Self.budgetPresets[budgetText] == nil ? Self.unescape(budgetText) : budgetText
    settings.minimumThinking = minThinking
    settings.waitText = Self.unescape(waitText)

    let generation: GenerationOptions
    do {
      generation = try reasoning.generationOptions(for: request, samples: parallel, options: settings)
    } catch let error as EngineError {
      throw CommandFailure(message: error.description.replacingOccurrences(of: "the budget text", with: "--budget-text"))
    }
    let promptTokens = try reasoning.tokens(of: request, thinking: !noThinking).count
    try options.checkMemoryLimit(
      model: model, promptTokens: promptTokens, tokens: generation.maxTokens + (generation.thinkingBudget?.maxInsertedTokens ?? 0),
      samples: parallel, prefillChunk: InferenceSession.defaultMaxRows)
    let terminal = !json && isatty(STDOUT_FILENO) != 0
    var style = TextStyle(enabled: terminal)
    let streams = terminal && parallel == 1
    var shown = Array(repeating: ShownText(), count: parallel)
    // Whatever is not streamed shows its progress on stderr (also with --json).
    let progress = streams ? nil : LiveLine()
    defer { progress?.clear() }
    // An error while thinking must not leave the terminal dimmed.
    defer { if streams { Output.write(style.switching(to: false)) } }
    var drawn = 0
    let result = try reasoning.generate(request, samples: parallel, options: settings) { event in
      guard case .token(let token) = event else { return }
      let text = tokenizer == nil ? "\(token.id) " : token.text
      shown[token.sample].append(text, thinking: token.isThinking)
      if streams { Output.write(style.switching(to: token.isThinking) + text) }
      drawn += 1
      progress?.show("generating: \(drawn) tokens" + (parallel > 1 ? " over G = \(parallel) samples" : ""))
    }
    progress?.clear()
    // As eval reads answers (the part after the thinking first, then the whole text), from the
    // text as shown: an end-of-turn token is not part of an answer.
    let answers: [String?] = shown.map { tokenizer == nil ? nil : AnswerExtractor.math($0.plain).map(MathNormalizer.normalize) }
    let majority = parallel > 1 ? AccuracyMetrics.majority(answers) : nil

    if json {
      let reports = zip(result.samples, answers).map { sample, extracted in
        GenerateReport.Sample(
          tokens: sample.tokens, text: tokenizer == nil ? nil : sample.text,
          thinkingTokens: reasoning.thinkingTags == nil && !noThinking ? nil : sample.thinkingTokens, answer: tokenizer == nil ? nil : sample.answer,
          extractedAnswer: extracted, finish: sample.finish.rawValue, kvTokens: sample.kvTokens, kvBytes: sample.kvBytes)
      }
      let report = GenerateReport(
        samples: reports, majorityAnswer: majority, promptTokens: result.generation.promptTokens, seed: seed, sampling: sampling.description,
        memory: .init(
          kv: settings.kv.description, kvDtype: options.kvDType.rawValue,
          weights: model.weights.format.description, weightBits: model.weights.format.bits, weightsBytes: model.weights.byteCount, kvBytes: result.generation.kvBytes, scratchBytes: session.scratchBytes,
          peakRssBytes: ProcessMemory.peakResidentBytes),
        timing: .init(result.generation, wallSeconds: Date().timeIntervalSince(wallStart)))
      try Output.json(report)
      return
    }
    if streams {
      Output.line(style.switching(to: false))
    } else {
      for (sample, text) in zip(result.samples, shown) {
        if parallel > 1 {
          Output.line(style.heading("── sample \(sample.index + 1) of \(parallel) · \(sample.tokens.count) tokens · \(sample.finish.rawValue)"))
        }
        Output.line(text.rendered(style).trimmingCharacters(in: tokenizer == nil ? .whitespaces : []))
      }
    }
    if parallel > 1, tokenizer != nil {
      if let majority {
        let votes = answers.filter { $0 == majority }.count
        Output.line(style.heading("majority answer: \(majority) (\(votes) of \(parallel) samples; answers: \(answers.map { Self.abbreviated($0 ?? "none") }.joined(separator: ", ")))"))
      } else {
        Output.line(style.heading("majority answer: none (no sample gave a final answer)"))
      }
    }
    let timing = GenerateReport.Timing(result.generation, wallSeconds: Date().timeIntervalSince(wallStart))
    let tokens = result.samples.map(\.tokens.count).reduce(0, +)
    let finishes = Dictionary(grouping: result.samples.map(\.finish.rawValue), by: { $0 }).map { "\($0.key)\($0.value.count > 1 ? " × \($0.value.count)" : "")" }.sorted()
    let summary = [
      "\(counted(tokens, "token")) (\(finishes.joined(separator: ", ")))",
      String(format: "prefill %d tokens at %.0f tokens/s", result.generation.promptTokens, timing.prefillTokensPerS),
      String(format: "decode %.1f tokens/s", timing.decodeTokensPerS),
      "weights \(ByteSize.readable(model.weights.byteCount)) + KV \(ByteSize.readable(result.generation.kvBytes)) + scratch \(ByteSize.readable(session.scratchBytes))",
      "peak RSS \(ByteSize.readable(ProcessMemory.peakResidentBytes))",
    ]
    Output.progress(TextStyle(enabled: !json && isatty(STDERR_FILENO) != 0).dim(summary.joined(separator: " · ")))
  }

  /// An extracted answer cut to 24 characters for the majority line (a fallback extraction can
  /// take a whole sentence).
  static func abbreviated(_ answer: String) -> String {
    answer.count <= 24 ? answer : String(answer.prefix(23)) + "…"
  }

  /// `\n`, `\t` and `\\` in a command-line text.
  static func unescape(_ text: String) -> String {
    var result = ""
    var escaping = false
    for character in text {
      if escaping {
        switch character {
        case "n": result.append("\n")
        case "t": result.append("\t")
        default: result.append(character)
        }
        escaping = false
      } else if character == "\\" {
        escaping = true
      } else {
        result.append(character)
      }
    }
    if escaping { result.append("\\") }
    return result
  }

  /// --tokenizer, else the model's own (a GGUF file's, or the model folder's files); required for
  /// --prompt.
  private func loadTokenizer(model: DecoderModel) throws -> Tokenizer? {
    let found = try model.tokenizer(explicit: tokenizer)
    if found == nil, prompt != nil, let folder = model.directory {
      throw CommandFailure(message: "\(folder) has no tokenizer files; give --tokenizer FILE_OR_DIR to encode --prompt")
    }
    return found
  }
}

struct GenerateReport: Encodable {
  struct Sample: Encodable {
    let tokens: [Int]
    /// The decoded tokens (when a tokenizer is known).
    let text: String?
    /// Tokens before the first `</think>` (all if none), when the tokenizer has `</think>`.
    let thinkingTokens: Int?
    /// The text after `</think>`, if the sample closed its thinking; all of it for a model that
    /// does not think in tags or with --no-thinking.
    let answer: String?
    /// The final answer pulled out of the text (the last `\boxed{}`, else "the answer is …",
    /// else the last number), normalized as eval's string answers; what the majority counts.
    let extractedAnswer: String?
    let finish: String
    /// Tokens the sample's KV cache holds at the end (fewer than the sequence when it evicts).
    let kvTokens: Int
    /// Bytes of the sample's KV cache, storage shared with other samples included.
    let kvBytes: Int
  }

  struct Memory: Encodable {
    /// The KV cache policy (`--kv`, normalized) and storage type.
    let kv: String
    let kvDtype: String
    /// How the linear layers are stored: dense, `gptq 4-bit, group 128, symmetric`, `rtn …`.
    let weights: String
    /// 16 for dense linears, else 8 or 4.
    let weightBits: Int
    let weightsBytes: Int
    /// KV storage of all samples, storage shared since the prompt counted once.
    let kvBytes: Int
    let scratchBytes: Int
    let peakRssBytes: Int
  }

  struct Timing: Encodable {
    let prefillSeconds: Double
    let decodeSeconds: Double
    let wallSeconds: Double
    let prefillTokensPerS: Double
    /// Tokens fed through the model per second after the prompt, over all samples.
    let decodeTokensPerS: Double

    init(_ result: GenerationResult, wallSeconds: Double) {
      prefillSeconds = result.prefillSeconds
      decodeSeconds = result.decodeSeconds
      self.wallSeconds = wallSeconds
      prefillTokensPerS = result.prefillSeconds > 0 ? Double(result.promptTokens) / result.prefillSeconds : 0
      decodeTokensPerS = result.decodeSeconds > 0 ? Double(result.decodedTokens) / result.decodeSeconds : 0
    }
  }

  let samples: [Sample]
  /// With G > 1: the most frequent extracted answer (ties to the earliest), else null.
  let majorityAnswer: String?
  let promptTokens: Int
  let seed: UInt64
  let sampling: String
  let memory: Memory
  let timing: Timing
}
