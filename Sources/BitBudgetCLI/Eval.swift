import ArgumentParser
import BitBudgetEngine
import BitBudgetEval
import BitBudgetKernels
import BitBudgetLab
import BitBudgetMemory
import BitBudgetTokenizer
import Foundation

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Score one scenario on a task (resumable).",
    discussion: """
      A scenario is model × weights × KV policy × token budget × G. \
      --task is a JSONL file (AIME-style: problem/question, answer, id; --answer-type integer by \
      default) or GPQA's official CSV (letters; choices shuffled by --gpqa-seed). Each question is \
      asked in the model's own chat template (Qwen3's with --endpoint; --chat-template to \
      override), enable_thinking on, with the task's prompt template; G samples \
      share one prefill. Every finished sample is committed to --db (SQLite) at once; rerunning the \
      same command skips finished samples, so a killed run resumes where it stopped. Prints pass@1 \
      (mean over samples) and maj@G.

      With --endpoint, the samples come from OpenAI-compatible servers (vLLM, SGLang, llama.cpp's \
      llama-server) through /v1/completions with the chat template applied here, so budget forcing \
      works remotely; --model then names the memory model (a preset such as qwen3-8b, or a model \
      folder), --weights and --kv label what the server runs, and the memory recorded is the \
      memory model's. Requests run --concurrency at a time per endpoint, time out after \
      --request-timeout seconds and are retried with backoff; a sample that still fails is \
      recorded as an error and redone by the next run.
      """)

  @OptionGroup var options: ModelOptions

  @OptionGroup var remote: RemoteOptions

  @Option(
    name: .customLong("chat-template"),
    help: ArgumentHelp(
      "The template questions are asked in (a .jinja file, a tokenizer_config.json, or qwen3); default: the model's own, or Qwen3's with --endpoint.",
      valueName: "file"))
  var chatTemplate: String?

  @Option(help: ArgumentHelp("Task file (.jsonl, or GPQA's .csv), or aime25 | gpqa-diamond from the task folder ($BITBUDGET_TASKS, else ~/.cache/bitbudget/tasks).", valueName: "file|name"))
  var task: String

  @Option(name: .customLong("answer-type"), help: "integer, letter, number or string (default: integer for JSONL, letter for CSV).")
  var answerType: AnswerType?

  @Option(name: .customLong("gpqa-seed"), help: "Seed of GPQA's choice shuffle.")
  var gpqaSeed: UInt64 = 0

  @Option(help: ArgumentHelp("Results database (SQLite), created if missing.", valueName: "file"))
  var db: String

  @Option(help: "Samples per question (pass@1 is their mean).")
  var samples = 1

  @Option(help: "G: samples decoded together (their KV caches alive at once) and the K of maj@K (default: --samples).")
  var parallel: Int?

  @Option(name: .customLong("thinking-budget"), help: "Thinking tokens before budget forcing closes the thinking (paper preset).")
  var thinkingBudget: Int?

  @Option(name: .customLong("budget-mode"), help: "How --thinking-budget T is enforced: paper (an earlier end of thinking becomes \"Wait\", the answer is forced at T: every sample thinks T tokens), cap (the answer forced at T only), none (no forcing).")
  var budgetMode = BudgetMode.standard

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
    if let parallel { guard (1...samples).contains(parallel) else { throw ValidationError("--parallel must be in 1...--samples") } }
    if let thinkingBudget { guard (1...(1 << 24)).contains(thinkingBudget) else { throw ValidationError("--thinking-budget must be in 1...\(1 << 24)") } }
    if let maxTokens { guard (1...(1 << 24)).contains(maxTokens) else { throw ValidationError("--max-tokens must be in 1...\(1 << 24)") } }
    if budgetMode == .paper, let thinkingBudget, let maxTokens, maxTokens < thinkingBudget {
      throw ValidationError("--max-tokens \(maxTokens) is below --thinking-budget \(thinkingBudget): --budget-mode paper thinks until the budget (raise --max-tokens, or use --budget-mode cap)")
    }
    guard (0...(1 << 24)).contains(answerTokens) else { throw ValidationError("--answer-tokens must be in 0...\(1 << 24)") }
    if let questions { guard questions > 0 else { throw ValidationError("--questions must be positive") } }
    guard temperature >= 0, topP > 0, topP <= 1, topK >= 0 else { throw ValidationError("sampling settings out of range") }
  }

  func loadTask() throws -> EvalTask {
    do {
      return try EvalTask.load(task, answerType: answerType, gpqaSeed: gpqaSeed)
    } catch let error as EvalError {
      throw CommandFailure(message: error.description)
    }
  }

  func run() throws {
    let evalTask = try loadTask()
    let items = Array(evalTask.items.prefix(questions ?? .max))
    let store = try openStore(db)
    let start = Date()
    let backend: any ScenarioBackend
    if remote.isRemote {
      backend = try RemoteScenarioBackend(
        backend: try remote.backend(model: options.model), memoryModel: options.model, memoryLimit: options.memoryLimit.flatMap(ByteSize.parse),
        chatTemplate: try ChatTemplate.load(chatTemplate ?? "qwen3", tokenizer: nil))
    } else {
      var settings = try options.settings()
      settings.chatTemplate = chatTemplate
      backend = try LocalScenarioBackend(model: try options.loadModel(), settings: settings)
    }
    defer { (backend as? RemoteScenarioBackend)?.shutdown() }
    let scenario = Scenario(
      task: evalTask.name, model: options.model, weightBits: backend.weightBits(asked: options.weights), kv: try options.kvSpec().description,
      thinkingBudget: thinkingBudget, maxTokens: maxTokens ?? (thinkingBudget.map { $0 + answerTokens } ?? 1024), samples: samples,
      parallel: parallel ?? samples, temperature: Self.decimal(temperature), topP: Self.decimal(topP), topK: topK, seed: seed,
      backend: backend.label, taskDigest: evalTask.contentDigest, budgetForcing: budgetMode, chatTemplate: backend.chatTemplateKey)
    // A bar on a terminal (with --json too); in a log a line per sample, unless --json.
    let live = LiveLine()
    defer { live.clear() }
    let logs = !json && !LiveLine.available
    let generated = try backend.run(scenario, task: evalTask, items: items, answerTokens: answerTokens, store: store) { progress in
      if logs { Output.progress(String(format: "sample %d/%d: pass@1 so far %.3f", progress.done, progress.total, progress.passAt1)) }
      live.show("evaluating", done: progress.done, total: progress.total, detail: String(format: "pass@1 so far %.3f", progress.passAt1))
    }
    live.clear()
    let records = try store.samples(scenario.key).filter { record in items.contains { $0.id == record.questionId } }
    let score = ScenarioScore(task: evalTask, records: records, majorityK: scenario.parallel)
    let wall = Date().timeIntervalSince(start)
    let report = Report(
      scenario: scenario, scenarioKey: scenario.key, score: score, generatedThisRun: generated,
      secondsThisRun: wall, tokensPerSThisRun: wall > 0 ? Double(generated) / wall : 0,
      weightsBytes: backend.weightsBytes(scenario), peakRssBytes: backend.label == nil ? ProcessMemory.peakResidentBytes : nil,
      run: try store.runMeasurements(scenario.key))
    if json {
      try Output.json(report)
    } else {
      Output.line(String(
        format: "%@ on %@: %@ × %@, pass@1 %.3f, maj@%d %.3f, %@ (scenario %@)",
        options.model, evalTask.name, counted(score.questions, "question"), counted(samples, "sample"), score.passAt1, scenario.parallel,
        score.majorityAtK, counted(score.errors, "error"), scenario.key))
    }
  }

  /// A Float as the decimal it was written as (0.6, not 0.6000000238).
  static func decimal(_ value: Float) -> Double { Double(String(describing: value)) ?? Double(value) }

  struct Report: Encodable {
    let scenario: Scenario
    let scenarioKey: String
    let score: ScenarioScore
    let generatedThisRun: Int
    let secondsThisRun: Double
    let tokensPerSThisRun: Double
    /// Weights bytes (remote: the memory model's, paper convention).
    let weightsBytes: Int?
    /// This process's peak RSS (nil for a remote backend).
    let peakRssBytes: Int?
    /// Memory estimate, wall time and tokens summed over the scenario's runs.
    let run: RunMeasurements?
  }
}

extension AnswerType: ExpressibleByArgument {}
extension BudgetMode: ExpressibleByArgument {}
