import BitBudgetKernels
import BitBudgetTestSupport
import Testing

@testable import BitBudgetEngine

@Suite struct ParallelSamplingTests {
  static let name = "qwen3-gqa-tied-f32"

  static func run(
    samples: Int, firstStream: UInt64 = 0, threads: Int = 2, sampling: SamplingParameters = SamplingParameters(temperature: 1.2),
    maxTokens: Int = 24, budget: ThinkingBudget? = nil, prompt: [Int]? = nil, maxLogitRows: Int = 16, stops: Set<Int> = [1],
    kv: String = "full"
  ) throws -> GenerationResult {
    let reference = try Fixtures.reference(name)
    let model = try DecoderModel.load(path: Fixtures.modelPath(name))
    let session = try InferenceSession(model: model, threads: threads, maxLogitRows: maxLogitRows)
    var options = GenerationOptions(maxTokens: maxTokens, sampling: sampling, samples: samples, seed: 42, stopTokens: stops, thinkingBudget: budget)
    options.firstStream = firstStream
    return try Generator(session: session).generate(
      prompt: prompt ?? reference.inputIds, options: options, cache: session.makeCache(spec: KVCacheSpec.parse(kv)))
  }

  /// Each of G samples decoded together gets exactly the tokens it gets alone.
  @Test func batchedSamplesEqualSamplesAlone() throws {
    let together = try Self.run(samples: 5)
    #expect(together.samples.count == 5)
    #expect(Set(together.samples.map(\.tokens)).count > 1, "samples should differ")
    for index in 0..<5 {
      let alone = try Self.run(samples: 1, firstStream: UInt64(index))
      #expect(alone.samples[0].tokens == together.samples[index].tokens, "sample \(index)")
      #expect(alone.samples[0].finish == together.samples[index].finish)
    }
  }

  /// With a prompt of two full cache blocks (or of quantized blocks, which forks share until
  /// their first compression), the samples read those blocks together (`Attention.attendSharing`)
  /// and still get exactly the tokens each gets alone.
  @Test(arguments: ["full", "hqq:4,group=16", "rkv:100,buffer=16+hqq:4,group=16"])
  func samplesReadingSharedBlocksEqualSamplesAlone(_ kv: String) throws {
    let ids = try Fixtures.reference(Self.name).inputIds
    let prompt = Array(Array(repeating: ids, count: 140 / ids.count + 1).joined().prefix(140))
    let together = try Self.run(samples: 4, prompt: prompt, kv: kv)
    #expect(Set(together.samples.map(\.tokens)).count > 1, "samples should differ")
    for index in 0..<4 {
      #expect(try Self.run(samples: 1, firstStream: UInt64(index), prompt: prompt, kv: kv).samples[0].tokens == together.samples[index].tokens)
    }
  }

  /// More samples than logit rows per pass are spread over several passes per step.
  @Test func moreSamplesThanLogitRowsPerPass() throws {
    let together = try Self.run(samples: 7, maxLogitRows: 3)
    for index in [0, 4, 6] {
      #expect(try Self.run(samples: 1, firstStream: UInt64(index)).samples[0].tokens == together.samples[index].tokens)
    }
  }

  @Test func samplesDoNotDependOnTheThreadCount() throws {
    let reference = try Self.run(samples: 3, threads: 1)
    for threads in [2, 3] {
      #expect(try Self.run(samples: 3, threads: threads).samples.map(\.tokens) == reference.samples.map(\.tokens))
    }
  }

  /// Forked caches share the prompt's full blocks: G samples hold less than G separate caches.
  @Test func samplesShareThePromptCache() throws {
    let prompt = Array((try Fixtures.reference(Self.name).inputIds + Fixtures.reference(Self.name).inputIds).prefix(70))
    let one = try Self.run(samples: 1, maxTokens: 4, prompt: prompt)
    let four = try Self.run(samples: 4, maxTokens: 4, prompt: prompt)
    #expect(four.kvBytes < 4 * one.kvBytes)
    #expect(four.kvBytes > one.kvBytes)
  }

  // MARK: Budget forcing (greedy, so the tokens are the fixture's known continuation)

  static func greedy() throws -> [Int] {
    try Fixtures.reference(name).greedy
  }

  @Test func budgetForcingInsertsTheTextAfterExactlyTheBudget() throws {
    let greedy = try Self.greedy()
    let forced = [500, 7, 8]
    let budget = ThinkingBudget(budget: 5, answerTokens: 4, endOfThinking: 500, forcedTokens: forced)
    let result = try Self.run(samples: 1, sampling: .greedy, maxTokens: 100, budget: budget)
    let sample = result.samples[0]
    #expect(Array(sample.tokens.prefix(5)) == Array(greedy.prefix(5)))
    #expect(Array(sample.tokens[5..<8]) == forced)
    #expect(sample.tokens.count == 5 + forced.count + 4)
    #expect(sample.thinkingTokens == 5)
    #expect(sample.forced)
    #expect(sample.finish == .budget)
  }

  @Test func thinkingThatEndsInTimeIsNotForced() throws {
    let greedy = try Self.greedy()
    // The model's 4th greedy token plays the part of </think>.
    let end = greedy[3]
    let budget = ThinkingBudget(budget: 10, answerTokens: 2, endOfThinking: end, forcedTokens: [end, 9])
    let result = try Self.run(samples: 1, sampling: .greedy, maxTokens: 12, budget: budget)
    let sample = result.samples[0]
    #expect(Array(sample.tokens.prefix(4)) == Array(greedy.prefix(4)))
    #expect(sample.thinkingTokens == 3)
    #expect(!sample.forced)
    #expect(sample.finish == .length)
    #expect(sample.tokens.count == 12)
  }

  @Test func earlyEndOfThinkingBecomesWait() throws {
    let greedy = try Self.greedy()
    let end = greedy[3]
    let wait = [11, 12]
    let budget = ThinkingBudget(budget: 50, answerTokens: 2, endOfThinking: end, forcedTokens: [end], minimumThinking: 6, waitTokens: wait)
    let result = try Self.run(samples: 1, sampling: .greedy, maxTokens: 20, budget: budget)
    let sample = result.samples[0]
    #expect(Array(sample.tokens.prefix(3)) == Array(greedy.prefix(3)))
    #expect(Array(sample.tokens[3..<5]) == wait)
    #expect(sample.waits >= 1)
    // No end of thinking is kept before the minimum (thinking = 3 sampled + 2 "Wait" + …).
    let close = sample.tokens.firstIndex(of: end) ?? sample.tokens.count
    #expect(close >= 6)
    #expect(sample.thinkingTokens >= 6)
  }

  /// "Wait" counts toward the budget: a minimum equal to the budget forces right after it.
  @Test func waitCountsTowardTheBudget() throws {
    let greedy = try Self.greedy()
    let end = greedy[3]
    let budget = ThinkingBudget(budget: 5, answerTokens: 2, endOfThinking: end, forcedTokens: [end, 9], minimumThinking: 5, waitTokens: [11, 12])
    let sample = try Self.run(samples: 1, sampling: .greedy, maxTokens: 30, budget: budget).samples[0]
    #expect(Array(sample.tokens.prefix(7)) == Array(greedy.prefix(3)) + [11, 12] + [end, 9])
    #expect(sample.thinkingTokens == 5)
    #expect(sample.finish == .budget)
    #expect(sample.tokens.count == 7 + 2)
  }

  /// The paper's two-sided forcing (minimum = budget): every sample, whatever it samples, thinks
  /// exactly the budget. A three-token "Wait" that would cross the budget is cut at it.
  @Test func minimumEqualToTheBudgetThinksExactlyTheBudget() throws {
    let greedy = try Self.greedy()
    let end = greedy[3]
    let forced = [end, 9]
    let budget = ThinkingBudget(budget: 9, answerTokens: 3, endOfThinking: end, forcedTokens: forced, minimumThinking: 9, waitTokens: [11, 12, 13])
    let result = try Self.run(samples: 6, sampling: SamplingParameters(temperature: 1.5), maxTokens: 40, budget: budget, stops: [1, greedy[5]])
    #expect(result.samples.contains { $0.waits > 0 })
    for sample in result.samples {
      #expect(sample.thinkingTokens == 9)
      #expect(sample.forced && sample.finish == .budget)
      #expect(!sample.tokens.prefix(9).contains(end) && !sample.tokens.prefix(9).contains(1))
      #expect(Array(sample.tokens[9..<11]) == forced)
    }
    // Greedy: three sampled tokens, then the model's end of thinking replaced by the whole "Wait".
    let alone = try Self.run(samples: 1, sampling: .greedy, maxTokens: 40, budget: budget).samples[0]
    #expect(Array(alone.tokens.prefix(6)) == Array(greedy.prefix(3)) + [11, 12, 13])
    #expect(alone.thinkingTokens == 9)
  }

  /// The context check counts what "Wait" can really add: with a one-token "Wait", nothing, so a
  /// budget that fills the context with the prompt, the forced text and the answer is accepted.
  @Test func aBudgetThatFillsTheContextIsAccepted() throws {
    let greedy = try Self.greedy()
    let end = greedy[3]
    let prompt = try Fixtures.reference(Self.name).inputIds
    let context = try DecoderModel.load(path: Fixtures.modelPath(Self.name)).config.maxPositions
    let forced = [end, 9, 10]
    let tokens = context - prompt.count - forced.count - 4
    let budget = ThinkingBudget(budget: tokens, answerTokens: 4, endOfThinking: end, forcedTokens: forced, minimumThinking: tokens, waitTokens: [11])
    #expect(budget.maxInsertedTokens == forced.count)
    let sample = try Self.run(samples: 1, sampling: .greedy, maxTokens: tokens + 4, budget: budget).samples[0]
    #expect(sample.thinkingTokens == tokens && sample.forced)
    // A longer "Wait" can add at most its length − 1 per insertion.
    #expect(ThinkingBudget(budget: 10, endOfThinking: end, forcedTokens: forced, minimumThinking: 10, waitTokens: [11, 12, 13]).maxInsertedTokens == 3 + 10 - 4)
    #expect(ThinkingBudget(budget: 10, endOfThinking: end, forcedTokens: forced, minimumThinking: 4, waitTokens: [11, 12, 13]).maxInsertedTokens == 3 + 6 - 2)
  }

  @Test func zeroAnswerTokensStopsAfterTheForcedText() throws {
    let budget = ThinkingBudget(budget: 4, answerTokens: 0, endOfThinking: 500, forcedTokens: [500, 7])
    let sample = try Self.run(samples: 1, sampling: .greedy, maxTokens: 30, budget: budget).samples[0]
    #expect(sample.tokens.count == 4 + 2)
    #expect(sample.finish == .budget)
  }

  /// A stop token while thinking ends the sample (it is kept, finish eos).
  @Test func stopTokenWhileThinking() throws {
    let greedy = try Self.greedy()
    let budget = ThinkingBudget(budget: 50, answerTokens: 4, endOfThinking: 500, forcedTokens: [500])
    let sample = try Self.run(samples: 1, sampling: .greedy, maxTokens: 30, budget: budget, stops: [greedy[2]]).samples[0]
    #expect(sample.tokens == Array(greedy.prefix(3)))
    #expect(sample.finish == .eos)
    #expect(!sample.forced)
  }

  @Test func rejectsBadOptions() throws {
    #expect(throws: EngineError.self) { try Self.run(samples: 0) }
    #expect(throws: EngineError.self) { try Self.run(samples: 300) }
    #expect(throws: EngineError.self) {
      try Self.run(samples: 1, budget: ThinkingBudget(budget: 0, endOfThinking: 5, forcedTokens: [5]))
    }
    #expect(throws: EngineError.self) {
      try Self.run(samples: 1, budget: ThinkingBudget(budget: 4, endOfThinking: 5, forcedTokens: [5], minimumThinking: 3))
    }
    #expect(throws: EngineError.self) {
      try Self.run(samples: 1, budget: ThinkingBudget(budget: 4, endOfThinking: 5, forcedTokens: [5], minimumThinking: 6, waitTokens: [3]))
    }
    #expect(throws: EngineError.self) {
      try Self.run(samples: 1, budget: ThinkingBudget(budget: 4, endOfThinking: 5, forcedTokens: [5, 100_000]))
    }
  }
}
