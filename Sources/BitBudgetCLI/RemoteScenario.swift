import ArgumentParser
import BitBudgetEngine
import BitBudgetEval
import BitBudgetMemory
import BitBudgetTokenizer
import Foundation

/// Runs a scenario on an OpenAI-compatible server for `eval --endpoint` and sweeps with a
/// `backend:` mapping: the prompt is the Qwen3 chat template rendered as text, budget forcing
/// uses the paper's forced text, and the memory is the memory model's (the paper's convention:
/// weights + KV of G samples of `max tokens`; the server's own memory is not observable here).
struct RemoteScenario {
  let client: CompletionClient
  /// The memory model for `scenario.model` (a preset such as `qwen3-8b`, or a model folder/GGUF).
  let memory: MemoryModel

  init(backend: RemoteBackend, memoryModel: String) throws {
    do {
      memory = try MemoryModel.load(memoryModel)
    } catch {
      throw CommandFailure(
        message: "with a remote backend, the model \"\(memoryModel)\" names the memory model: a preset (\(ModelPresets.all.map(\.name).joined(separator: ", "))) or a model folder or GGUF (\(error))")
    }
    client = CompletionClient(backend: backend)
  }

  /// The memory model's estimate of `scenario` (paper convention).
  func estimatedBytes(_ scenario: Scenario) -> Int? {
    memory.estimate(for: scenario, convention: .paper)?.totalBytes
  }

  /// Refuses, with the numbers, a scenario whose estimate exceeds `--memory-limit`.
  func checkMemoryLimit(_ scenario: Scenario, limit: String?) throws {
    guard let limit, let bytes = ByteSize.parse(limit), let estimate = estimatedBytes(scenario), estimate > bytes else { return }
    throw CommandFailure(
      message: "\(scenario.model) \(scenario.weightBits)-bit with \(scenario.parallel) × \(scenario.maxTokens) tokens needs \(ByteSize.gib(estimate)) (memory model, paper convention), more than --memory-limit \(limit)")
  }

  /// Generates the missing samples (blocking until done); returns the tokens generated.
  func run(
    _ scenario: Scenario, task: EvalTask, items: [TaskItem], answerTokens: Int, store: ResultStore,
    progress: RemoteScenarioRunner.Progress?
  ) throws -> Int {
    let runner = RemoteScenarioRunner(sampler: RemoteSampler(client: client, forcedText: BudgetForcing.forcedText, waitText: BudgetForcing.waitText))
    let generated = try blocking {
      try await runner.run(
        scenario, task: task, items: items,
        prompt: { item in QwenChatTemplate.render([ChatMessage(role: .user, content: task.prompt(for: item))], enableThinking: true) },
        answerTokens: answerTokens, store: store, progress: progress)
    }
    try store.recordRun(scenario.key, estimatedBytes: estimatedBytes(scenario), peakRssBytes: nil)
    return generated
  }

  func shutdown() {
    let client = self.client
    _ = try? blocking { await client.shutdown() }
  }
}

extension MemoryModel {
  /// The estimate of a stored scenario: weights + KV of G samples of its token limit (nil when
  /// its KV policy does not parse or does not fit the model's geometry).
  func estimate(for scenario: Scenario, convention: MemoryConvention) -> MemoryEstimate? {
    guard let kv = try? KVCacheSpec.parse(scenario.kv) else { return nil }
    return try? estimate(
      weightsBits: scenario.weightBits, tokens: scenario.maxTokens, samples: scenario.parallel, kv: kv, convention: convention)
  }
}

/// Runs async work from a synchronous command and waits for it (the commands are synchronous:
/// the local engine runs on its own thread pool).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
  let box = ResultBox<T>()
  let done = DispatchSemaphore(value: 0)
  Task {
    do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
    done.signal()
  }
  done.wait()
  guard let result = box.result else { throw CommandFailure(message: "internal: an async task ended without a result") }
  return try result.get()
}

/// The result of `blocking`'s task, written once before the semaphore is signalled.
private final class ResultBox<T>: @unchecked Sendable {
  var result: Result<T, Error>?
}

/// `--endpoint` and its settings (eval).
struct RemoteOptions: ParsableArguments {
  @Option(name: .customLong("endpoint"), help: ArgumentHelp(
    "An OpenAI-compatible server's base URL (http://host:8000/v1); repeat to spread samples over several. --model then names the memory model (a preset such as qwen3-8b, or a folder).",
    valueName: "url"))
  var endpoints: [String] = []

  @Option(name: .customLong("served-model"), help: "The model name the server expects (default: --model).")
  var servedModel: String?

  @Option(help: "Requests in flight per endpoint.")
  var concurrency = RemoteBackend.defaultConcurrency

  @Option(name: .customLong("request-timeout"), help: "Seconds one request may take before it is retried.")
  var requestTimeout = RemoteBackend.defaultTimeoutSeconds

  @Option(help: "Retries of a failed request (timeouts, connection errors, HTTP 408/429/5xx) before the sample is recorded as an error.")
  var retries = RemoteBackend.defaultRetries

  var isRemote: Bool { !endpoints.isEmpty }

  func validate() throws {
    if isRemote { _ = try backend(model: servedModel ?? "model") }
  }

  /// The backend, with the API key from BITBUDGET_API_KEY or OPENAI_API_KEY.
  func backend(model: String) throws -> RemoteBackend {
    do {
      return try RemoteBackend(
        endpoints: endpoints, model: servedModel ?? model, concurrency: concurrency, timeoutSeconds: requestTimeout,
        retries: retries, apiKey: apiKeyFromEnvironment())
    } catch let error as EvalError {
      throw ValidationError(error.description)
    }
  }
}

func apiKeyFromEnvironment() -> String? {
  let environment = ProcessInfo.processInfo.environment
  return environment["BITBUDGET_API_KEY"] ?? environment["OPENAI_API_KEY"]
}
