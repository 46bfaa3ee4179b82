// No @testable imports: this file sees what a package depending on BitBudget sees.
import BitBudgetEngine
import BitBudgetLab
import BitBudgetMemory
import BitBudgetTestSupport
import BitBudgetTokenizer
import Foundation
import Testing

/// The documentation's examples (`GettingStarted.md`, `KVCachePolicies.md`, `BitBudgetMemory.md`)
/// run through public API only, on the SmolLM2-135M GGUF the test assets fetch: a chat prompt,
/// four samples on an evicting 4-bit cache, a policy registered from outside the engine, and the
/// memory model's estimate equal to what the run held.
@Suite struct PublicAPITests {
  static let gguf = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

  @Test func gettingStartedRuns() throws {
    let model = try DecoderModel.load(path: Self.gguf)
    let tokenizer = try #require(try model.tokenizer())
    let template = try ChatTemplate.forModel(model, tokenizer: tokenizer, explicit: nil)
    let prompt = tokenizer.encode(
      try template.render([ChatMessage(role: .user, content: "What is 17 × 23?")], options: .init()))
    let session = try InferenceSession(model: model, threads: 2)
    var stops = Set(try model.stopTokenIds())
    stops.formUnion(tokenizer.endOfTurnIds(template))
    let options = GenerationOptions(maxTokens: 40, sampling: try model.generationDefaults(), samples: 4, seed: 1, stopTokens: stops)
    let spec = try KVCacheSpec.parse("rkv:32,buffer=8+hqq:4,group=32")
    let result = try Generator(session: session).generate(prompt: prompt, options: options, cache: session.makeCache(spec: spec))
    #expect(result.samples.count == 4)
    for sample in result.samples {
      #expect(!sample.tokens.isEmpty && sample.kvTokens <= 32 + 8)
      _ = try tokenizer.decode(sample.tokens, skipSpecialTokens: true)
    }
    let estimate = try MemoryModel.load(Self.gguf).estimate(
      weightsBits: model.weights.format.bits, tokens: 39, promptTokens: prompt.count, samples: 4, kv: spec, threads: 2)
    #expect(estimate.kvBytes == result.kvBytes)
  }

  @Test func aPolicyFromOutsideTheEngine() throws {
    KVPolicies.register(KeepNewestPolicy.self)
    let spec = try KVCacheSpec.parse("keep-newest:24+hqq:8,group=32")
    let model = try DecoderModel.load(path: Self.gguf)
    let session = try InferenceSession(model: model, threads: 2)
    let cache = try session.makeCache(spec: spec)
    let result = try Generator(session: session).generate(
      prompt: Array(1...40), options: GenerationOptions(maxTokens: 20), cache: cache)
    #expect(result.samples[0].kvTokens <= 24 + 16)
    #expect(KVCacheSpec.acceptedForms.contains("keep-newest:B"))
  }

  /// `ReasoningModel` is the engine below it: the same chat prompt, sampling defaults and stops,
  /// built by hand from the model's parts, give the same tokens; the streamed text is the decoded
  /// text without special tokens; a model without thinking tags answers with all of it.
  @Test func reasoningModelStreamsWhatTheEngineGenerates() async throws {
    let reasoning = try ReasoningModel(path: Self.gguf, threads: 2)
    let messages = [ChatMessage(role: .user, content: "What is 17 × 23?")]
    let options = ReasoningOptions(maxTokens: 24, sampling: SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95), seed: 5)
    var streamed: [Int] = []
    var text = ""
    var finished: ReasoningResult?
    for try await event in reasoning.generate(messages: messages, options: options) {
      switch event {
      case .token(let token):
        streamed.append(token.id)
        text += token.text
        #expect(!token.isThinking && token.origin == .drawn && token.sample == 0)
      case .finished(let result): finished = result
      default: Issue.record("a model without thinking tags reported \(event)")
      }
    }
    let result = try #require(finished)
    let sample = try #require(result.samples.first)
    #expect(sample.tokens == streamed && !streamed.isEmpty)

    let model = reasoning.model
    let tokenizer = try #require(reasoning.tokenizer)
    #expect(text == (try tokenizer.decode(streamed, skipSpecialTokens: true)))
    #expect(sample.text == (try tokenizer.decode(streamed)))
    #expect(sample.answer == sample.text && sample.thinking == nil && sample.thinkingTokens == 0)

    let template = try ChatTemplate.forModel(model, tokenizer: tokenizer, explicit: nil)
    let prompt = tokenizer.encode(try template.render(messages, options: .init()))
    var stops = Set(try model.stopTokenIds())
    stops.formUnion(tokenizer.endOfTurnIds(template))
    stops.insert(try #require(tokenizer.id(of: "<|im_end|>")))
    let session = try InferenceSession(model: model, threads: 2)
    let direct = try Generator(session: session).generate(
      prompt: prompt,
      options: GenerationOptions(maxTokens: 24, sampling: options.sampling!, seed: 5, stopTokens: stops, vocabularyLimit: tokenizer.vocabularySize),
      cache: session.makeCache())
    #expect(direct.samples[0].tokens == streamed)
    #expect(result.generation.promptTokens == prompt.count)
  }

  /// Budget forcing through the face, on a random model with Qwen3's vocabulary: each of two
  /// samples thinks exactly the budget, then `budgetReached`, the forced text (thinking up to and
  /// including `</think>`, then `thinkingEnded`), then at most the answer allowance.
  @Test func reasoningModelReportsTheForcedBudget() throws {
    let folder = try Fixtures.makeRandomQwen3(vocab: 151_669)
    defer { try? FileManager.default.removeItem(at: folder) }
    let model = try DecoderModel.load(path: folder.path)
    let tokenizer = try Tokenizer.load(from: Fixtures.qwen3TokenizerDirectory)
    let reasoning = try ReasoningModel(
      model: model, tokenizer: tokenizer, template: try ChatTemplate.load("qwen3", tokenizer: tokenizer),
      session: InferenceSession(model: model, threads: 2))
    var options = ReasoningOptions(sampling: SamplingParameters(temperature: 1), seed: 3, thinkingBudget: 5, answerTokens: 3)
    options.kv = try KVCacheSpec.parse("streaming:64")
    var events: [[ReasoningEvent]] = [[], []]
    let result = try reasoning.generate(.messages([ChatMessage(role: .user, content: "What is 2+2?")]), samples: 2, options: options) { event in
      switch event {
      case .token(let token): events[token.sample].append(event)
      case .budgetReached(let sample), .thinkingEnded(let sample), .thinkingExtended(let sample): events[sample].append(event)
      case .finished: break
      }
    }
    let forced = tokenizer.encode(BudgetForcing.forcedText)
    let close = try #require(tokenizer.id(of: "</think>"))
    let closeAt = try #require(forced.firstIndex(of: close))
    for (index, sample) in result.samples.enumerated() {
      #expect(sample.finish == .budget && sample.forced)
      #expect(Array(sample.tokens[5..<(5 + forced.count)]) == forced)
      #expect(sample.tokens.count <= 5 + forced.count + 3)
      #expect(sample.thinkingTokens == 5 + closeAt)
      #expect(sample.answer?.hasPrefix("**Final Answer**") == true)
      var sawBudget = false, sawEnd = false, position = 0
      for event in events[index] {
        switch event {
        case .token(let token):
          #expect(token.id == sample.tokens[position])
          #expect(token.origin == (position < 5 || position >= 5 + forced.count ? .drawn : .forced))
          #expect(token.isThinking == (position <= 5 + closeAt))
          position += 1
        case .budgetReached:
          #expect(position == 5 && !sawBudget)
          sawBudget = true
        case .thinkingEnded:
          #expect(position == 5 + closeAt + 1 && !sawEnd)
          sawEnd = true
        default: Issue.record("unexpected \(event)")
        }
      }
      #expect(sawBudget && sawEnd && position == sample.tokens.count)
    }
    // Thinking off: the prompt closed the thinking, so there is nothing to budget.
    #expect(throws: EngineError.self) {
      try reasoning.generationOptions(
        for: .messages([ChatMessage(role: .user, content: "Hi")]), options: ReasoningOptions(thinking: false, thinkingBudget: 5))
    }
    // Beyond any context: an error, not an overflow.
    #expect(throws: EngineError.self) {
      try reasoning.generationOptions(for: .text("Hi"), options: ReasoningOptions(thinkingBudget: .max))
    }
  }

  /// A cache type from outside the engine cannot be driven by it: a clear error, not a crash.
  @Test func aForeignCacheIsRefused() throws {
    final class ForeignCache: KVCache {
      let geometry: KVCacheGeometry
      init(_ geometry: KVCacheGeometry) { self.geometry = geometry }
      var nextPosition: Int { 0 }
      var residentTokens: Int { 0 }
      var residentBytes: Int { 0 }
      func fork() -> any KVCache { ForeignCache(geometry) }
    }
    let model = try DecoderModel.load(path: Self.gguf)
    let session = try InferenceSession(model: model, threads: 2)
    let error = #expect(throws: EngineError.self) {
      try Generator(session: session).generate(
        prompt: [1, 2, 3], options: GenerationOptions(maxTokens: 2), cache: ForeignCache(KVCacheGeometry(model.config)))
    }
    #expect(error?.description.contains("is not one of the engine's KV caches") == true)
  }

  /// A consumer that stops listening stops the generation; the model serves the next request.
  @Test(.timeLimit(.minutes(2))) func reasoningModelStopsWhenTheConsumerDoes() async throws {
    let reasoning = try ReasoningModel(path: Self.gguf, threads: 2)
    var seen = 0
    for try await event in reasoning.stream(.text("Once upon a time"), options: ReasoningOptions(maxTokens: 400)) {
      if case .token = event { seen += 1 }
      if seen == 3 { break }
    }
    struct Enough: Error {}
    var reported = 0
    #expect(throws: Enough.self) {
      try reasoning.generate(.text("Once upon a time"), options: ReasoningOptions(maxTokens: 50)) { event in
        reported += 1
        if reported == 4 { throw Enough() }
      }
    }
    #expect(reported == 4)
    // The last event comes after the model is free: its handler may run the next generation.
    var chained: ReasoningResult?
    try reasoning.generate(.text("Once"), options: ReasoningOptions(maxTokens: 2)) { event in
      if case .finished = event, chained == nil {
        chained = try reasoning.generate(.text("Twice"), options: ReasoningOptions(maxTokens: 2))
      }
    }
    #expect(chained?.samples.first?.tokens.isEmpty == false)
    let next = try await reasoning.sample(3, messages: [ChatMessage(role: .user, content: "Hi")], options: ReasoningOptions(maxTokens: 4))
    #expect(next.samples.count == 3 && next.samples.allSatisfy { (1...4).contains($0.tokens.count) })
  }
}

/// The newest `budget` tokens, every 16 steps.
struct KeepNewestPolicy: EvictionPolicy {
  static let name = "keep-newest"
  static let form = "keep-newest:B"
  static let conformanceSpecs = ["keep-newest:40"]
  var budget: Int
  init(budget: Int, options: inout KVSpecOptions) throws { self.budget = budget }
  var description: String { "keep-newest:\(budget)" }
  var interval: Int { 16 }
  func keptRows(_ request: EvictionRequest) -> [[Int]] {
    Array(repeating: Array((request.length - budget)..<request.length), count: request.kvHeads)
  }
}
