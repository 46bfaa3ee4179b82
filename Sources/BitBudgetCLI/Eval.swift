import ArgumentParser
import BitBudgetEngine
import BitBudgetEval
import BitBudgetKernels
import BitBudgetMemory
import BitBudgetTokenizer
import Foundation

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate one scenario (model × weights × KV policy × token budget × G) on a task, resumably.",
    discussion: """
      --task is a JSONL file (AIME-style: problem/question, answer, id; --answer-type integer by \
      default) or GPQA's official CSV (letters; choices shuffled by --gpqa-seed). Each question is \
      asked in the Qwen3 chat template (thinking on) with the task's prompt template; G samples \
      share one prefill. Every finished sample is committed to --db (SQLite) at once; rerunning the \
      same command skips finished samples, so a killed run resumes where it stopped. Prints pass@1 \
      (mean over samples) and maj@G.
      """)

  @OptionGroup var options: ModelOptions

  @Option(help: ArgumentHelp("Task file: .jsonl or GPQA's .csv.", valueName: "file"))
  var task: String

  @Option(name: .customLong("answer-type"), help: "integer, letter, number or string (default: integer for JSONL, letter for CSV).")
  var answerType: AnswerType?

  @Option(name: .customLong("gpqa-seed"), help: "Seed of GPQA's choice shuffle.")
  var gpqaSeed: UInt64 = 0

  @Option(help: ArgumentHelp("Results database (SQLite), created if missing.", valueName: "file"))
  var db: String

  @Option(help: "Parallel samples G per question.")
  var samples = 1

  @Option(name: .customLong("thinking-budget"), help: "Thinking tokens before budget forcing closes the thinking (paper preset).")
  var thinkingBudget: Int?

  @Option(name: .customLong("answer-tokens"), help: "Tokens allowed after the forced end of thinking.")
  var answerTokens = 256

  @Option(name: .customLong("max-tokens"), help: "Most tokens per sample (default: budget + answer tokens, or 1024).")
  var maxTokens: Int?

  @Option(help: "Sampling temperature (Qwen3 thinking mode: 0.6; 0 = greedy).")
  var temperature: Float = 0.6

  @Option(name: .customLong("top-p"), help: "Top-p.")
  var topP: Float = 0.95

  @Option(name: .customLong("top-k"), help: "Top-k.")
  var topK = 20

  @Option(help: "Seed; sample i of every question draws from stream i.")
  var seed: UInt64 = 0

  @Option(help: "Only the first N questions.")
  var questions: Int?

  @Flag(help: "Print one JSON object.")
  var json = false



  func validate() throws {
    guard (1...4096).contains(samples) else { throw ValidationError("--samples must be in 1...4096") }
    if let thinkingBudget { guard (1...(1 << 24)).contains(thinkingBudget) else { throw ValidationError("--thinking-budget must be in 1...\(1 << 24)") } }
    if let maxTokens { guard (1...(1 << 24)).contains(maxTokens) else { throw ValidationError("--max-tokens must be in 1...\(1 << 24)") } }
    guard (0...(1 << 24)).contains(answerTokens) else { throw ValidationError("--answer-tokens must be in 0...\(1 << 24)") }
    if let questions { guard questions > 0 else { throw ValidationError("--questions must be positive") } }
    guard temperature >= 0, topP > 0, topP <= 1, topK >= 0 else { throw ValidationError("sampling settings out of range") }
  }

  func loadTask() throws -> EvalTask {
    let isCSV = task.lowercased().hasSuffix(".csv")
    do {
      if isCSV {
        guard answerType == nil || answerType == .letter else { throw ValidationError("a GPQA CSV has letter answers") }
        return try EvalTask.gpqa(csvPath: task, seed: gpqaSeed, name: (task as NSString).lastPathComponent)
      }
      return try EvalTask.jsonl(path: task, answerType: answerType ?? .integer)
    } catch let error as EvalError {
      throw CommandFailure(message: error.description)
    }
  }

  func run() throws {
    let evalTask = try loadTask()
    let items = Array(evalTask.items.prefix(questions ?? .max))
    let model = try options.loadModel()
    guard let tokenizer = try modelTokenizer(model, explicit: nil) else {
      throw CommandFailure(message: "\(model.path) has no tokenizer; eval needs one to build prompts")
    }
    var stops = Set(try model.stopTokenIds())
    if let end = tokenizer.id(of: "<|im_end|>") { stops.insert(end) }
    let budget: ThinkingBudget? = try thinkingBudget.map { tokens in
      guard let end = tokenizer.id(of: "</think>") else {
        throw CommandFailure(message: "the tokenizer has no </think> token, so thinking cannot be budgeted")
      }
      return ThinkingBudget(
        budget: tokens, answerTokens: answerTokens, endOfThinking: end,
        forcedTokens: tokenizer.encode(Generate.budgetPresets["paper"] ?? ""), minimumThinking: 0, waitTokens: [])
    }
    let limit = maxTokens ?? (budget.map { $0.budget + $0.answerTokens } ?? 1024)
    let sampling = temperature == 0 ? SamplingParameters.greedy : SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: 0)
    let scenario = Scenario(
      task: evalTask.name, model: options.model, weightBits: model.weights.format.bits, kv: try options.kvSpec().description,
      thinkingBudget: thinkingBudget, maxTokens: limit, samples: samples, temperature: Self.decimal(temperature),
      topP: Self.decimal(topP), topK: topK, seed: seed)

    let store: ResultStore
    do {
      store = try ResultStore(path: db)
      try store.register(scenario)
    } catch let error as EvalError {
      throw CommandFailure(message: error.description)
    }
    let finished = try store.finishedSamples(scenario.key)
    let session = try InferenceSession(model: model, threads: options.threads)
    let generator = Generator(session: session)
    let endOfThinking = tokenizer.id(of: "</think>")
    let start = Date()
    var generated = 0
    for (number, item) in items.enumerated() {
      let missing = (0..<samples).filter { !finished.contains(SampleKey(questionId: item.id, sampleIndex: $0)) }
      guard !missing.isEmpty else { continue }
      let text = QwenChatTemplate.render([ChatMessage(role: .user, content: evalTask.prompt(for: item))], enableThinking: true)
      let prompt = tokenizer.encode(text)
      // Contiguous missing samples decode as one batch, each on its own stream.
      for run in Self.contiguousRuns(missing) {
        let began = Date()
        var generation = GenerationOptions(
          maxTokens: limit, sampling: sampling, samples: run.count, seed: seed, stopTokens: stops,
          vocabularyLimit: min(tokenizer.vocabularySize, model.config.vocabSize), thinkingBudget: budget)
        generation.firstStream = UInt64(run.lowerBound)
        do {
          try options.checkMemoryLimit(
            model: model, promptTokens: prompt.count, tokens: limit + (budget?.forcedTokens.count ?? 0), samples: run.count,
            prefillChunk: InferenceSession.defaultMaxRows)
          let result = try generator.generate(prompt: prompt, options: generation, cache: try options.makeCache(session))
          let seconds = Date().timeIntervalSince(began) / Double(run.count)
          for (offset, sample) in result.samples.enumerated() {
            let output = try tokenizer.decode(sample.tokens)
            let answer = evalTask.extractAnswer(output)
            let thinking = endOfThinking.map { end in sample.tokens.firstIndex(of: end) ?? sample.tokens.count } ?? 0
            try store.record(SampleRecord(
              scenarioKey: scenario.key, questionId: item.id, sampleIndex: run.lowerBound + offset, output: output,
              tokens: sample.tokens.count, thinkingTokens: thinking, finish: sample.finish.rawValue, answer: answer,
              correct: evalTask.isCorrect(answer, gold: item.gold), seconds: seconds))
            generated += sample.tokens.count
          }
        } catch let error as CommandFailure {
          throw error
        } catch {
          for index in run {
            try store.record(SampleRecord(
              scenarioKey: scenario.key, questionId: item.id, sampleIndex: index, output: "", tokens: 0, thinkingTokens: 0,
              finish: "error", answer: nil, correct: false, error: String(describing: error), seconds: 0))
          }
        }
      }
      if !json {
        let score = ScenarioScore(task: evalTask, records: try store.samples(scenario.key))
        Output.progress(String(format: "question %d/%d (%@): pass@1 so far %.3f over %d questions", number + 1, items.count, item.id, score.passAt1, score.questions))
      }
    }
    let records = try store.samples(scenario.key).filter { record in items.contains { $0.id == record.questionId } }
    let score = ScenarioScore(task: evalTask, records: records)
    let wall = Date().timeIntervalSince(start)
    let report = Report(
      scenario: scenario, scenarioKey: scenario.key, score: score, generatedThisRun: generated,
      secondsThisRun: wall, tokensPerSThisRun: wall > 0 ? Double(generated) / wall : 0,
      weightsBytes: model.weights.byteCount, peakRssBytes: ProcessMemory.peakResidentBytes)
    if json {
      try Output.json(report)
    } else {
      Output.line(String(
        format: "%@ on %@: %d questions × %d samples, pass@1 %.3f, maj@%d %.3f, %d errors (scenario %@)",
        options.model, evalTask.name, score.questions, samples, score.passAt1, samples, score.majorityAtK, score.errors, scenario.key))
    }
  }

  /// A Float as the decimal it was written as (0.6, not 0.6000000238).
  static func decimal(_ value: Float) -> Double { Double(String(describing: value)) ?? Double(value) }

  /// Consecutive index runs of a sorted list: [0, 1, 3] → [0..<2, 3..<4].
  static func contiguousRuns(_ indices: [Int]) -> [Range<Int>] {
    var runs: [Range<Int>] = []
    for index in indices {
      if let last = runs.last, last.upperBound == index {
        runs[runs.count - 1] = last.lowerBound..<(index + 1)
      } else {
        runs.append(index..<(index + 1))
      }
    }
    return runs
  }

  struct Report: Encodable {
    let scenario: Scenario
    let scenarioKey: String
    let score: ScenarioScore
    let generatedThisRun: Int
    let secondsThisRun: Double
    let tokensPerSThisRun: Double
    let weightsBytes: Int
    let peakRssBytes: Int
  }
}

extension AnswerType: ExpressibleByArgument {}
