import BitBudgetEngine
import BitBudgetEval
import BitBudgetMemory
import BitBudgetTokenizer
import Foundation

/// Runs scenarios on an OpenAI-compatible server: the prompt is the chat template (by default
/// Qwen3's, the paper's models' own: the server's model files are not here) rendered as text, budget forcing continues the raw prompt (`RemoteSampler`), and the memory is the
/// memory model's (the paper's convention: weights + KV of G samples of the token limit; the
/// server's own memory is not observable here).
public final class RemoteScenarioBackend: ScenarioBackend {
  public let client: CompletionClient
  /// The memory model for `scenario.model` (a preset such as `qwen3-8b`, or a model folder/GGUF).
  public let memory: MemoryModel
  /// Bytes a scenario may take (memory model, paper convention).
  public let memoryLimit: Int?
  /// What questions are rendered in before they are sent.
  public let chatTemplate: ChatTemplate

  public init(backend: RemoteBackend, memoryModel: String, memoryLimit: Int? = nil, chatTemplate: ChatTemplate = .qwen3()) throws {
    self.chatTemplate = chatTemplate
    do {
      memory = try MemoryModel.load(memoryModel)
    } catch {
      throw LabError.invalidScenario(
        "with a remote backend, the model \"\(memoryModel)\" names the memory model: a preset (\(ModelPresets.all.map(\.name).joined(separator: ", "))) or a model folder or GGUF (\(error))")
    }
    client = CompletionClient(backend: backend)
    self.memoryLimit = memoryLimit
  }

  public var label: String? { client.backend.scenarioLabel }

  public var chatTemplateKey: String? { chatTemplate.scenarioKey }

  public func weightBits(asked: Int?) -> Int { asked ?? 16 }

  public func weightsBytes(_ scenario: Scenario) -> Int? { memory.estimate(for: scenario, convention: .paper)?.weightsBytes }

  /// The memory model's estimate of `scenario` (paper convention).
  public func estimatedBytes(_ scenario: Scenario) -> Int? {
    memory.estimate(for: scenario, convention: .paper)?.totalBytes
  }

  /// Refuses, with the numbers, a scenario whose estimate exceeds the memory limit.
  public func checkMemoryLimit(_ scenario: Scenario) throws {
    guard let memoryLimit, let estimate = estimatedBytes(scenario), estimate > memoryLimit else { return }
    throw LabError.memoryLimit(
      "\(scenario.model) \(scenario.weightBits)-bit with \(scenario.parallel) × \(scenario.maxTokens) tokens needs \(ByteSize.gib(estimate)) (memory model, paper convention), more than --memory-limit \(ByteSize.readable(memoryLimit))")
  }

  public func admit(_ scenario: Scenario, task: EvalTask, items: [TaskItem]) throws {
    try checkMemoryLimit(scenario)
  }

  public func run(
    _ scenario: Scenario, task: EvalTask, items: [TaskItem], answerTokens: Int, store: ResultStore,
    progress: @escaping @Sendable (ScenarioProgress) throws -> Void
  ) throws -> Int {
    try checkMemoryLimit(scenario)
    let runner = RemoteScenarioRunner(
      sampler: RemoteSampler(client: client, forcedText: BudgetForcing.forcedText, waitText: BudgetForcing.waitText))
    // Rendered up front: a template that refuses a question fails the scenario before any request.
    var prompts: [String: String] = [:]
    for item in items {
      do {
        prompts[item.id] = try chatTemplate.render([ChatMessage(role: .user, content: task.prompt(for: item))], options: .init(enableThinking: true))
      } catch {
        throw LabError.invalidScenario(error.description)
      }
    }
    let rendered = prompts
    let generated = try blocking {
      try await runner.run(
        scenario, task: task, items: items,
        prompt: { item in rendered[item.id] ?? "" },
        answerTokens: answerTokens, store: store,
        progress: { done, total, passAt1 in try progress(ScenarioProgress(done: done, total: total, passAt1: passAt1)) })
    }
    try store.recordRun(scenario.key, estimatedBytes: estimatedBytes(scenario), peakRssBytes: nil)
    return generated
  }

  /// Closes the HTTP client (call once, when no run is in flight).
  public func shutdown() {
    let client = self.client
    _ = try? blocking { await client.shutdown() }
  }
}

extension MemoryModel {
  /// The estimate of a stored scenario: weights + KV of G samples of its token limit (nil when
  /// its KV policy does not parse or does not fit the model's geometry).
  public func estimate(for scenario: Scenario, convention: MemoryConvention) -> MemoryEstimate? {
    guard let kv = try? KVCacheSpec.parse(scenario.kv) else { return nil }
    return try? estimate(
      weightsBits: scenario.weightBits, tokens: scenario.maxTokens, samples: scenario.parallel, kv: kv, convention: convention)
  }
}

/// Runs async work from synchronous code and waits for it (the lab is synchronous: the local
/// engine runs on its own thread pool).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
  let box = ResultBox<T>()
  let done = DispatchSemaphore(value: 0)
  Task {
    do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
    done.signal()
  }
  done.wait()
  guard let result = box.result else { throw LabError.invalidScenario("internal: an async task ended without a result") }
  return try result.get()
}

/// The result of `blocking`'s task, written once before the semaphore is signalled.
private final class ResultBox<T>: @unchecked Sendable {
  var result: Result<T, Error>?
}
