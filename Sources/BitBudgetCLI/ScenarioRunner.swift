import BitBudgetEngine
import BitBudgetEval
import BitBudgetKernels
import BitBudgetTokenizer
import Foundation

/// Runs one scenario's questions on the local engine and commits every sample to the results
/// store as soon as its batch finishes; samples already stored are skipped, so an interrupted run
/// resumes. Shared by `eval` and `sweep`: one runner per loaded model; each run takes the
/// options (KV policy, KV dtype, memory limit) of its own scenario.
struct ScenarioRunner {
  let model: DecoderModel
  let tokenizer: Tokenizer
  let session: InferenceSession
  let stops: Set<Int>
  let endOfThinking: Int?

  init(options: ModelOptions, model: DecoderModel) throws {
    self.model = model
    guard let tokenizer = try modelTokenizer(model, explicit: nil) else {
      throw CommandFailure(message: "\(model.path) has no tokenizer; evaluation needs one to build prompts")
    }
    self.tokenizer = tokenizer
    session = try options.session(model)
    var stops = Set(try model.stopTokenIds())
    if let end = tokenizer.id(of: "<|im_end|>") { stops.insert(end) }
    self.stops = stops
    endOfThinking = tokenizer.id(of: "</think>")
  }

  /// The results database; `readOnly` for commands that only read (they then work on a database
  /// the user may not write).
  static func openStore(_ path: String, readOnly: Bool = false) throws -> ResultStore {
    do {
      return try ResultStore(path: path, readOnly: readOnly)
    } catch let error as EvalError {
      throw CommandFailure(message: error.description)
    }
  }

  /// Generates the missing samples of `scenario` for `items`; returns the tokens generated.
  /// `progress(questionsDone, questions, score)` is called after each question.
  func run(
    _ scenario: Scenario, options: ModelOptions, task: EvalTask, items: [TaskItem], answerTokens: Int, store: ResultStore,
    progress: (Int, Int, ScenarioScore) -> Void
  ) throws -> Int {
    guard try options.kvSpec().description == scenario.kv else {
      throw CommandFailure(message: "internal: scenario KV policy \(scenario.kv) differs from the options' \(try options.kvSpec())")
    }
    try store.register(scenario)
    try store.recordAnswerKey(task)
    try store.reuseSamples(for: scenario)
    // The peak RSS of this scenario alone, not of a larger model loaded earlier in a sweep.
    ProcessMemory.resetPeak()
    let finished = try store.finishedSamples(scenario.key)
    let budget: ThinkingBudget? = try scenario.thinkingBudget.map { tokens in
      guard let end = endOfThinking else {
        throw CommandFailure(message: "the tokenizer has no </think> token, so thinking cannot be budgeted")
      }
      let twoSided = scenario.budgetForcing == .paper
      return ThinkingBudget(
        budget: tokens, answerTokens: answerTokens, endOfThinking: end, forcedTokens: tokenizer.encode(BudgetForcing.forcedText),
        minimumThinking: twoSided ? tokens : 0, waitTokens: twoSided ? tokenizer.encode(BudgetForcing.waitText) : [])
    }
    let sampling = scenario.temperature == 0
      ? SamplingParameters.greedy
      : SamplingParameters(temperature: Float(scenario.temperature), topK: scenario.topK, topP: Float(scenario.topP), minP: 0)
    let generator = Generator(session: session)
    var generated = 0
    var longestPrompt = 1
    for (number, item) in items.enumerated() {
      let missing = (0..<scenario.samples).filter { !finished.contains(SampleKey(questionId: item.id, sampleIndex: $0)) }
      let text = QwenChatTemplate.render([ChatMessage(role: .user, content: task.prompt(for: item))], enableThinking: true)
      let prompt = tokenizer.encode(text)  // also for skipped questions: the memory estimate takes the longest
      longestPrompt = max(longestPrompt, prompt.count)
      if !missing.isEmpty {
        // Contiguous missing samples decode in batches of G, each sample on its own stream.
        for run in Self.contiguousRuns(missing, maxLength: scenario.parallel) {
          generated += try generate(
            run, item: item, prompt: prompt, scenario: scenario, options: options, task: task, budget: budget, sampling: sampling,
            generator: generator, store: store)
        }
      }
      progress(number + 1, items.count, ScenarioScore(task: task, records: try store.samples(scenario.key), majorityK: scenario.parallel))
    }
    let estimate = try? options.estimatedBytes(
      model: model, promptTokens: longestPrompt, tokens: scenario.maxTokens + (budget?.maxInsertedTokens ?? 0),
      samples: scenario.parallel, prefillChunk: InferenceSession.defaultMaxRows).0
    try store.recordRun(scenario.key, estimatedBytes: estimate, peakRssBytes: ProcessMemory.peakResidentBytes)
    return generated
  }

  /// One batch; a failure is recorded per sample (the run goes on), except a memory refusal.
  private func generate(
    _ run: Range<Int>, item: TaskItem, prompt: [Int], scenario: Scenario, options: ModelOptions, task: EvalTask,
    budget: ThinkingBudget?, sampling: SamplingParameters, generator: Generator, store: ResultStore
  ) throws -> Int {
    let began = Date()
    var generation = GenerationOptions(
      maxTokens: scenario.maxTokens, sampling: sampling, samples: run.count, seed: scenario.seed, stopTokens: stops,
      vocabularyLimit: min(tokenizer.vocabularySize, model.config.vocabSize), thinkingBudget: budget)
    generation.firstStream = UInt64(run.lowerBound)
    try options.checkMemoryLimit(
      model: model, promptTokens: prompt.count, tokens: scenario.maxTokens + (budget?.maxInsertedTokens ?? 0), samples: run.count,
      prefillChunk: InferenceSession.defaultMaxRows)
    do {
      let result = try generator.generate(prompt: prompt, options: generation, cache: try options.makeCache(session))
      let seconds = Date().timeIntervalSince(began) / Double(run.count)
      let records = try result.samples.enumerated().map { offset, sample in
        let output = try tokenizer.decode(sample.tokens)
        let answer = task.extractAnswer(output)
        // With a budget the generator counts thinking ("Wait" tokens in, the forced text out).
        let thinking = budget != nil ? sample.thinkingTokens
          : endOfThinking.map { end in sample.tokens.firstIndex(of: end) ?? sample.tokens.count } ?? 0
        return SampleRecord(
          scenarioKey: scenario.key, questionId: item.id, sampleIndex: run.lowerBound + offset, output: output,
          tokens: sample.tokens.count, thinkingTokens: thinking, finish: sample.finish.rawValue, answer: answer,
          correct: task.isCorrect(answer, gold: item.gold), seconds: seconds, kvBytes: sample.kvBytes)
      }
      // The batch's G samples in one transaction.
      try store.record(records)
      return records.reduce(0) { $0 + $1.tokens }
    } catch let error as EvalError {
      throw CommandFailure(message: error.description)
    } catch {
      try store.record(run.map { index in
        SampleRecord(
          scenarioKey: scenario.key, questionId: item.id, sampleIndex: index, output: "", tokens: 0, thinkingTokens: 0,
          finish: "error", answer: nil, correct: false, error: String(describing: error), seconds: 0)
      })
      return 0
    }
  }

  /// Consecutive index runs of a sorted list, at most `maxLength` long: [0, 1, 3] → [0..<2, 3..<4].
  static func contiguousRuns(_ indices: [Int], maxLength: Int) -> [Range<Int>] {
    var runs: [Range<Int>] = []
    for index in indices {
      if let last = runs.last, last.upperBound == index, last.count < maxLength {
        runs[runs.count - 1] = last.lowerBound..<(index + 1)
      } else {
        runs.append(index..<(index + 1))
      }
    }
    return runs
  }
}
