import BitBudgetEngine
import BitBudgetEval
import BitBudgetKernels
import BitBudgetMemory
import BitBudgetTokenizer
import Foundation

/// Runs scenarios on the local engine: one loaded model, any number of scenarios (each with its
/// own KV policy from `Scenario.kv`). Questions are asked as one user turn in the model's chat
/// template (or `settings.chatTemplate`) with `enable_thinking` on; the G samples of a batch share one prefill and are committed in one transaction.
public final class LocalScenarioBackend: ScenarioBackend {
  public let model: DecoderModel
  public let tokenizer: Tokenizer
  public let chatTemplate: ChatTemplate
  public let settings: EngineSettings
  let session: InferenceSession
  let stops: Set<Int>
  let endOfThinking: Int?
  /// The model's thinking delimiters (nil: it has none, and budgets are refused).
  let thinkingTags: ThinkingTags?

  /// `settings` give the threads, kernels, KV storage type and memory limit; their `kv` is
  /// replaced by each scenario's.
  public init(model: DecoderModel, settings: EngineSettings) throws {
    self.model = model
    self.settings = settings
    guard let tokenizer = try model.tokenizer() else {
      throw LabError.invalidScenario("\(model.path) has no tokenizer; evaluation needs one to build prompts")
    }
    self.tokenizer = tokenizer
    chatTemplate = try ChatTemplate.forModel(model, tokenizer: tokenizer, explicit: settings.chatTemplate)
    session = try settings.session(model)
    var stops = Set(try model.stopTokenIds())
    if let end = tokenizer.configuration.eosToken.flatMap(tokenizer.id(of:)) { stops.insert(end) }
    stops.formUnion(tokenizer.endOfTurnIds(chatTemplate))
    self.stops = stops
    thinkingTags = tokenizer.thinkingTags
    endOfThinking = thinkingTags.flatMap { tokenizer.id(of: $0.close) }
  }

  public var label: String? { nil }

  public var chatTemplateKey: String? { chatTemplate.scenarioKey }

  public func weightBits(asked: Int?) -> Int { model.weights.format.bits }

  public func weightsBytes(_ scenario: Scenario) -> Int? { model.weights.byteCount }

  /// The thinking budget of `scenario` as the engine enforces it, or nil without one.
  func thinkingBudget(_ scenario: Scenario, answerTokens: Int) throws -> ThinkingBudget? {
    try scenario.thinkingBudget.map { tokens in
      guard let end = endOfThinking, let tags = thinkingTags else {
        throw LabError.invalidScenario("the tokenizer has no end-of-thinking token (</think> or [/THINK]), so thinking cannot be budgeted")
      }
      let twoSided = scenario.budgetForcing == .paper
      return ThinkingBudget(
        budget: tokens, answerTokens: answerTokens, endOfThinking: end, forcedTokens: tokenizer.encode(tags.closing(BudgetForcing.forcedText)),
        minimumThinking: twoSided ? tokens : 0, waitTokens: twoSided ? tokenizer.encode(BudgetForcing.waitText) : [])
    }
  }

  /// The settings of `scenario`: its KV policy, checked against the model (a policy the model
  /// cannot hold is refused, not recorded per sample).
  func settings(for scenario: Scenario) throws -> EngineSettings {
    var settings = self.settings
    do {
      settings.kv = try KVCacheSpec.parse(scenario.kv)
      _ = try settings.makeCache(session)
    } catch let error as EngineError {
      throw LabError.invalidScenario("kv \"\(scenario.kv)\": \(error.description)")
    }
    return settings
  }

  /// The question's prompt: the task's template as a user turn of the chat template, thinking on.
  func prompt(_ item: TaskItem, task: EvalTask) throws -> [Int] {
    let messages = [ChatMessage(role: .user, content: task.prompt(for: item))]
    do {
      return tokenizer.encode(try chatTemplate.render(messages, options: .init(enableThinking: true)))
    } catch {
      throw LabError.invalidScenario(error.description)
    }
  }

  /// Tokens a sample holds after its prompt: the limit plus what budget forcing may insert.
  func heldTokens(_ scenario: Scenario, budget: ThinkingBudget?) -> Int {
    scenario.maxTokens + (budget?.maxInsertedTokens ?? 0)
  }

  public func admit(_ scenario: Scenario, task: EvalTask, items: [TaskItem]) throws {
    let settings = try settings(for: scenario)
    guard settings.memoryLimit != nil else { return }
    try checkMemoryLimit(scenario, settings: settings, longestPrompt: try items.map { try prompt($0, task: task).count }.max() ?? 1)
  }

  /// G samples of the longest prompt, the token limit and what budget forcing may insert.
  private func checkMemoryLimit(_ scenario: Scenario, settings: EngineSettings, longestPrompt: Int) throws {
    try settings.checkMemoryLimit(
      model: model, promptTokens: longestPrompt, tokens: heldTokens(scenario, budget: try thinkingBudget(scenario, answerTokens: 0)),
      samples: scenario.parallel)
  }

  public func run(
    _ scenario: Scenario, task: EvalTask, items: [TaskItem], answerTokens: Int, store: ResultStore,
    progress: @escaping @Sendable (ScenarioProgress) throws -> Void
  ) throws -> Int {
    let settings = try settings(for: scenario)
    // Every question's prompt, tokenized once: the longest sizes the memory check and estimate.
    let prompts = try items.map { try prompt($0, task: task) }
    let longestPrompt = prompts.map(\.count).max() ?? 1
    try checkMemoryLimit(scenario, settings: settings, longestPrompt: longestPrompt)
    try store.register(scenario)
    try store.recordAnswerKey(task)
    try store.reuseSamples(for: scenario)
    // The peak RSS of this scenario alone, not of a larger model loaded earlier in a sweep.
    ProcessMemory.resetPeak()
    let finished = try store.finishedSamples(scenario.key)
    let budget = try thinkingBudget(scenario, answerTokens: answerTokens)
    let sampling = scenario.temperature == 0
      ? SamplingParameters.greedy
      : SamplingParameters(temperature: Float(scenario.temperature), topK: scenario.topK, topP: Float(scenario.topP), minP: 0)
    let generator = Generator(session: session)
    let wanted = Set(items.map(\.id))
    var generated = 0
    for (item, prompt) in zip(items, prompts) {
      let missing = (0..<scenario.samples).filter { !finished.contains(SampleKey(questionId: item.id, sampleIndex: $0)) }
      // Contiguous missing samples decode in batches of G, each sample on its own stream.
      for run in Self.contiguousRuns(missing, maxLength: scenario.parallel) {
        generated += try generate(
          run, item: item, prompt: prompt, scenario: scenario, settings: settings, task: task, budget: budget, sampling: sampling,
          generator: generator, store: store)
      }
      let stored = try store.samples(scenario.key).filter { wanted.contains($0.questionId) && $0.error == nil }
      try progress(ScenarioProgress(
        done: stored.count, total: items.count * scenario.samples,
        passAt1: stored.isEmpty ? 0 : Double(stored.filter(\.correct).count) / Double(stored.count)))
    }
    let estimate = try? settings.estimate(
      model: model, promptTokens: longestPrompt, tokens: heldTokens(scenario, budget: budget), samples: scenario.parallel
    ).totalBytes
    try store.recordRun(scenario.key, estimatedBytes: estimate, peakRssBytes: ProcessMemory.peakResidentBytes)
    return generated
  }

  /// One batch; a failure is recorded per sample (the run goes on).
  private func generate(
    _ run: Range<Int>, item: TaskItem, prompt: [Int], scenario: Scenario, settings: EngineSettings, task: EvalTask,
    budget: ThinkingBudget?, sampling: SamplingParameters, generator: Generator, store: ResultStore
  ) throws -> Int {
    let began = Date()
    var generation = GenerationOptions(
      maxTokens: scenario.maxTokens, sampling: sampling, samples: run.count, seed: scenario.seed, stopTokens: stops,
      vocabularyLimit: min(tokenizer.vocabularySize, model.config.vocabSize), thinkingBudget: budget)
    generation.firstStream = UInt64(run.lowerBound)
    let records: [SampleRecord]
    do {
      let result = try generator.generate(prompt: prompt, options: generation, cache: try settings.makeCache(session))
      let seconds = Date().timeIntervalSince(began) / Double(run.count)
      records = try result.samples.enumerated().map { offset, sample in
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
    } catch {
      try store.record(run.map { index in
        SampleRecord(
          scenarioKey: scenario.key, questionId: item.id, sampleIndex: index, output: "", tokens: 0, thinkingTokens: 0,
          finish: "error", answer: nil, correct: false, error: String(describing: error), seconds: 0)
      })
      return 0
    }
    // The batch's G samples in one transaction.
    try store.record(records)
    return records.reduce(0) { $0 + $1.tokens }
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
