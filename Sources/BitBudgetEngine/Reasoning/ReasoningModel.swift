import BitBudgetKernels
import BitBudgetTokenizer
import Foundation

/// A reasoning model ready to answer: weights, tokenizer, chat template, stop and thinking
/// tokens, and the sampling defaults of its `generation_config.json`, over one
/// ``InferenceSession``.
///
/// ```swift
/// let model = try ReasoningModel(path: "Qwen3-0.6B")
/// for try await event in model.generate(messages: [ChatMessage(role: .user, content: "What is 17 × 23?")]) {
///   if case .token(let token) = event { print(token.text, terminator: "") }
/// }
/// ```
///
/// Generations run one at a time (they share the session's buffers and threads and the
/// tokenizer's cache); a second call waits for the first. Do not use ``session`` or ``tokenizer``
/// directly while a generation runs. `generate` streams events as tokens are drawn; ``sample(_:messages:options:)``
/// decodes n samples together (the weights are read once per step for all of them) and returns
/// them. Cost: one prefill of the prompt, then one forward pass per step over the live samples.
public final class ReasoningModel: @unchecked Sendable {
  public let model: DecoderModel
  /// nil for a model folder without tokenizer files: then prompts must be ``ReasoningPrompt/tokens(_:)``
  /// and tokens carry no text.
  public let tokenizer: Tokenizer?
  /// The model's own chat template (or the one given); nil when it has none.
  public let template: ChatTemplate?
  /// The delimiters the model thinks between; nil for a model that does not think in tags.
  public let thinkingTags: ThinkingTags?
  /// Tokens that end any generation (the generation config's end of sequence).
  public let stopTokens: Set<Int>
  /// Tokens that also end a chat reply: the tokenizer's end of sequence and the template's end
  /// of turn (`<|im_end|>`), which a base model's generation config may not list.
  public let chatStopTokens: Set<Int>
  /// Sampling when ``ReasoningOptions/sampling`` is nil: the model's `generation_config.json`.
  public let defaultSampling: SamplingParameters
  public let session: InferenceSession
  private let endOfThinking: Int?
  private let lock = NSLock()

  /// Loads a model folder, GGUF file or Hub id in the local Hugging Face cache (see
  /// ``DecoderModel/load(path:ggufWidening:quantize:progress:)``) with its own tokenizer and template.
  /// `chatTemplate` replaces the template (a `.jinja` file, a `tokenizer_config.json`, or `qwen3`).
  public convenience init(
    path: String, threads: Int = ThreadPool.defaultThreadCount, quantize: WeightQuantization? = nil,
    chatTemplate: String? = nil
  ) throws {
    let model = try DecoderModel.load(path: path, quantize: quantize)
    let tokenizer = try model.tokenizer()
    let template = try tokenizer.flatMap { tokenizer in
      try chatTemplate.map { try ChatTemplate.load($0, tokenizer: tokenizer) } ?? tokenizer.chatTemplate(name: model.path)
    }
    try self.init(model: model, tokenizer: tokenizer, template: template, session: InferenceSession(model: model, threads: threads))
  }

  /// A face over parts already loaded: `session` must run `model`.
  public init(model: DecoderModel, tokenizer: Tokenizer?, template: ChatTemplate?, session: InferenceSession) throws {
    guard session.model === model else { throw EngineError.invalidInput("the session runs another model") }
    self.model = model
    self.tokenizer = tokenizer
    self.template = template
    self.session = session
    thinkingTags = tokenizer?.thinkingTags
    endOfThinking = thinkingTags.flatMap { tokenizer?.id(of: $0.close) }
    stopTokens = Set(try model.stopTokenIds())
    var chatStops = stopTokens
    if let tokenizer {
      if let end = tokenizer.configuration.eosToken.flatMap(tokenizer.id(of:)) { chatStops.insert(end) }
      if let template { chatStops.formUnion(tokenizer.endOfTurnIds(template)) }
    }
    chatStopTokens = chatStops
    defaultSampling = try model.generationDefaults()
  }

  /// The prompt's token ids: messages rendered with the chat template (its `enable_thinking` set
  /// from `thinking`), text encoded with the beginning-of-sequence token, ids as given.
  public func tokens(of prompt: ReasoningPrompt, thinking: Bool = true) throws -> [Int] {
    try lock.withLock { try unlockedTokens(of: prompt, thinking: thinking) }
  }

  private func unlockedTokens(of prompt: ReasoningPrompt, thinking: Bool) throws -> [Int] {
    switch prompt {
    case .tokens(let ids):
      return ids
    case .text(let text):
      return try requireTokenizer().encodePrompt(text)
    case .messages(let messages):
      let tokenizer = try requireTokenizer()
      guard let template else {
        throw EngineError.invalidInput(
          "\(model.path) has no chat template (tokenizer_config.json chat_template, chat_template.jinja, or GGUF tokenizer.chat_template); give one to init(path:chatTemplate:)")
      }
      // A chat template writes BOS itself (transformers encodes its output without special tokens).
      return tokenizer.encode(try template.render(messages, options: .init(enableThinking: thinking)))
    }
  }

  /// Streams one reply to `messages`. Dropping the stream (or cancelling the task iterating it)
  /// stops the generation at the next token.
  public func generate(
    messages: [ChatMessage], options: ReasoningOptions = ReasoningOptions()
  ) -> AsyncThrowingStream<ReasoningEvent, any Error> {
    stream(.messages(messages), samples: 1, options: options)
  }

  /// Streams `samples` samples after `prompt`, decoded together; their events interleave.
  public func stream(
    _ prompt: ReasoningPrompt, samples: Int = 1, options: ReasoningOptions = ReasoningOptions()
  ) -> AsyncThrowingStream<ReasoningEvent, any Error> {
    let (stream, continuation) = AsyncThrowingStream.makeStream(of: ReasoningEvent.self)
    let stopped = StopFlag()
    continuation.onTermination = { _ in stopped.stop() }
    // A generation blocks its thread for its whole length: it runs on a thread of its own, not
    // on the cooperative pool.
    let thread = Thread {
      do {
        _ = try self.generate(prompt, samples: samples, options: options, stopped: { stopped.isStopped }) { event in
          if stopped.isStopped { throw CancellationError() }
          continuation.yield(event)
        }
        continuation.finish()
      } catch {
        continuation.finish(throwing: error)
      }
    }
    // As the server's decode thread: template rendering and the decode loop get room to recurse
    // whatever the platform's default thread stack.
    thread.stackSize = 8 << 20
    thread.start()
    return stream
  }

  /// `n` samples of a reply to `messages`, decoded together after one prefill (G parallel
  /// samples; the prompt's cache blocks are shared until written).
  public func sample(
    _ n: Int, messages: [ChatMessage], options: ReasoningOptions = ReasoningOptions()
  ) async throws -> ReasoningResult {
    for try await event in stream(.messages(messages), samples: n, options: options) {
      if case .finished(let result) = event { return result }
    }
    throw CancellationError()
  }

  /// Generates `samples` samples after `prompt` on the calling thread, reporting each event to
  /// `onEvent` as it happens (an error it throws ends the generation). The last event is
  /// ``ReasoningEvent/finished(_:)`` with what is returned; it comes after the model is free
  /// again, so its handler may start the next generation.
  public func generate(
    _ prompt: ReasoningPrompt, samples: Int = 1, options: ReasoningOptions = ReasoningOptions(),
    onEvent: (ReasoningEvent) throws -> Void = { _ in }
  ) throws -> ReasoningResult {
    try generate(prompt, samples: samples, options: options, stopped: { false }, onEvent: onEvent)
  }

  private func generate(
    _ prompt: ReasoningPrompt, samples: Int, options: ReasoningOptions, stopped: () -> Bool,
    onEvent: (ReasoningEvent) throws -> Void
  ) throws -> ReasoningResult {
    let reasoning = try lock.withLock {
      // A consumer gone while this waited for the model: nothing to do.
      if stopped() { throw CancellationError() }
      return try unlockedGenerate(prompt, samples: samples, options: options, onEvent: onEvent)
    }
    try onEvent(.finished(reasoning))
    return reasoning
  }

  /// The tokenizer and the session serve one request at a time: callers hold `lock`.
  private func unlockedGenerate(
    _ prompt: ReasoningPrompt, samples: Int, options: ReasoningOptions, onEvent: (ReasoningEvent) throws -> Void
  ) throws -> ReasoningResult {
    guard (1...256).contains(samples) else { throw EngineError.invalidInput("samples must be in 1...256, not \(samples)") }
    let promptIds = try unlockedTokens(of: prompt, thinking: options.thinking)
    let generation = try unlockedGenerationOptions(for: prompt, samples: samples, options: options)
    let isChat = if case .messages = prompt { true } else { false }
    // A prompt that closed the thinking (thinking off) leaves only answer; a model without tags
    // never thinks in them.
    let thinks = endOfThinking != nil && !(isChat && !options.thinking)
    var streams = (0..<samples).map { _ in
      SampleStream(decoder: tokenizer.map { StreamingDecoder(tokenizer: $0, skipSpecialTokens: true) }, thinking: thinks)
    }
    let cache = try session.makeCache(spec: options.kv, elementType: options.kvElementType)
    // The handler lives only as long as this call's batch.
    let result = try withoutActuallyEscaping(onEvent) { onEvent in
      try Generator(session: session).generate(prompt: promptIds, options: generation, cache: cache) { appended in
        try streams[appended.sample].report(appended, endOfThinking: self.endOfThinking, onEvent: onEvent)
      }
    }
    return ReasoningResult(
      samples: try result.samples.enumerated().map { try self.sample($0.offset, $0.element, thinks: thinks) }, generation: result)
  }

  /// The engine's options for a request: stops (a chat reply's included for messages), sampling,
  /// the thinking budget in this vocabulary, and the token limit. What to check a memory budget
  /// against before generating: `maxTokens` plus the budget's `maxInsertedTokens`.
  public func generationOptions(
    for prompt: ReasoningPrompt, samples: Int = 1, options: ReasoningOptions = ReasoningOptions()
  ) throws -> GenerationOptions {
    try lock.withLock { try unlockedGenerationOptions(for: prompt, samples: samples, options: options) }
  }

  private func unlockedGenerationOptions(
    for prompt: ReasoningPrompt, samples: Int, options: ReasoningOptions
  ) throws -> GenerationOptions {
    // Larger values cannot fit any context; bounding them keeps the sum below exact.
    let largest = 1 << 30
    for (name, value) in [("maxTokens", options.maxTokens ?? 0), ("thinkingBudget", options.thinkingBudget ?? 0), ("answerTokens", options.answerTokens), ("minimumThinking", options.minimumThinking)] {
      guard (0...largest).contains(value) else { throw EngineError.invalidInput("\(name) must be in 0...\(largest), not \(value)") }
    }
    let chat = if case .messages = prompt { true } else { false }
    if chat && !options.thinking && options.thinkingBudget != nil {
      throw EngineError.invalidInput("a thinking budget does not apply with thinking off (the prompt already closes the thinking)")
    }
    let budget = try options.thinkingBudget.map { tokens -> ThinkingBudget in
      guard tokens > 0 else { throw EngineError.invalidInput("the thinking budget must be positive, not \(tokens)") }
      return try ThinkingBudget.forTokenizer(
        requireTokenizer(), budget: tokens, answerTokens: options.answerTokens, text: options.budgetText,
        minimumThinking: options.minimumThinking, waitText: options.waitText)
    }
    let limit = options.maxTokens ?? (budget.map { $0.budget + $0.answerTokens } ?? 256)
    guard limit >= 0 else { throw EngineError.invalidInput("maxTokens must not be negative, not \(limit)") }
    return GenerationOptions(
      maxTokens: limit, sampling: options.sampling ?? defaultSampling, samples: samples, seed: options.seed,
      stopTokens: chat ? chatStopTokens : stopTokens,
      vocabularyLimit: tokenizer.map { min($0.vocabularySize, model.config.vocabSize) }, thinkingBudget: budget)
  }

  private func sample(_ index: Int, _ result: SampleResult, thinks: Bool) throws -> ReasoningSample {
    let text = try tokenizer?.decode(result.tokens) ?? ""
    var thinking: String?
    var answer: String? = text
    var thinkingTokens = 0
    if thinks, let tags = thinkingTags, let end = endOfThinking {
      (thinking, answer) = ThinkingSplit.split(text, open: tags.open, close: tags.close)
      thinkingTokens = result.tokens.firstIndex(of: end) ?? result.tokens.count
    }
    return ReasoningSample(
      index: index, tokens: result.tokens, text: text, thinking: thinking, answer: answer, thinkingTokens: thinkingTokens,
      finish: result.finish, forced: result.forced, kvTokens: result.kvTokens, kvBytes: result.kvBytes)
  }

  private func requireTokenizer() throws -> Tokenizer {
    guard let tokenizer else {
      throw EngineError.invalidInput("\(model.path) has no tokenizer files; only token ids can be generated from")
    }
    return tokenizer
  }
}

/// One sample's text and phase while it is generated.
private struct SampleStream {
  var decoder: StreamingDecoder?
  var thinking: Bool

  mutating func report(
    _ appended: DecodeBatch.AppendedToken, endOfThinking: Int?, onEvent: (ReasoningEvent) throws -> Void
  ) throws {
    let sample = appended.sample
    // One event per insertion, before its first token.
    if appended.startsInsertion {
      switch appended.origin {
      case .forced: try onEvent(.budgetReached(sample: sample))
      case .wait: try onEvent(.thinkingExtended(sample: sample))
      case .drawn: break
      }
    }
    let text = try decoder?.append(appended.token) ?? ""
    try onEvent(.token(ReasoningToken(sample: sample, id: appended.token, text: text, isThinking: thinking, origin: appended.origin)))
    if thinking && appended.token == endOfThinking {
      thinking = false
      try onEvent(.thinkingEnded(sample: sample))
    }
  }
}

/// Set once when a stream's consumer goes away; read by the generating thread.
private final class StopFlag: @unchecked Sendable {
  private let lock = NSLock()
  private var stopped = false

  var isStopped: Bool { lock.withLock { stopped } }
  func stop() { lock.withLock { stopped = true } }
}
