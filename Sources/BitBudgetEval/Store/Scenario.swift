import Foundation

/// One configuration evaluated on one task: the paper's axes (model, weight bits, KV policy,
/// token budget, G) plus sampling. Its `key` is stable: the FNV-1a 64-bit hash of its canonical
/// JSON (sorted keys), so a rerun of the same configuration finds its finished samples.
public struct Scenario: Codable, Sendable, Equatable, Hashable {
  /// The task's name (its file's name, or `aime25`, …), for people.
  public var task: String
  /// `EvalTask.contentDigest` of the questions as asked: two different files of the same name
  /// are different scenarios, and an edited question starts a new one. Nil in scenarios stored
  /// before tasks were identified by content (left out of the canonical JSON, keeping their
  /// keys).
  public var taskDigest: String?
  public var model: String
  /// 16, 8 or 4.
  public var weightBits: Int
  /// `--kv` spec, normalized.
  public var kv: String
  /// Thinking budget in tokens (nil: no budget forcing, only `maxTokens`).
  public var thinkingBudget: Int?
  /// `paper` when the budget is two-sided ("Wait" until it); nil when it only forces the answer
  /// (`cap`) or there is no budget, so scenarios stored before the mode existed, all `cap`, keep
  /// their keys. Read it as `budgetForcing`.
  public private(set) var budgetMode: BudgetMode?
  /// Most generated tokens per sample.
  public var maxTokens: Int
  /// Samples per question (pass@1 is their mean).
  public var samples: Int
  /// G: samples decoded together as one batch (their KV caches are alive at once), and the K of
  /// maj@K (averaged over random K-subsets when `samples` > G).
  public var parallel: Int
  public var temperature: Double
  public var topP: Double
  public var topK: Int
  public var seed: UInt64
  /// Where the samples come from: nil for the local engine, `openai:SERVED_MODEL` for an
  /// OpenAI-compatible server (then `model` names the memory model's preset or config, and `kv`
  /// only labels what the server runs). Left out of the canonical JSON when nil, so local keys
  /// are those of the first stores.
  public var backend: String?
  /// `Scenario.chatTemplateDigest` of the chat template questions were asked in, when it is not
  /// Qwen3's (which every scenario used before models brought their own, so theirs keep their
  /// keys); nil otherwise.
  public var chatTemplate: String?

  /// 16 hex digits of FNV-1a over a chat template's text.
  public static func chatTemplateDigest(_ source: String) -> String {
    var hash = ContentHash()
    hash.add(source)
    return hash.hex
  }

  public init(
    task: String, model: String, weightBits: Int, kv: String, thinkingBudget: Int?, maxTokens: Int, samples: Int,
    parallel: Int, temperature: Double, topP: Double, topK: Int, seed: UInt64, backend: String? = nil, taskDigest: String? = nil,
    budgetForcing: BudgetMode = .cap, chatTemplate: String? = nil
  ) {
    self.task = task
    self.chatTemplate = chatTemplate
    self.taskDigest = taskDigest
    self.model = model
    self.weightBits = weightBits
    self.kv = kv
    self.thinkingBudget = budgetForcing == .none ? nil : thinkingBudget
    self.budgetMode = budgetForcing == .paper && thinkingBudget != nil ? .paper : nil
    self.maxTokens = maxTokens
    self.samples = samples
    self.parallel = parallel
    self.temperature = temperature
    self.topP = topP
    self.topK = topK
    self.seed = seed
    self.backend = backend
  }

  /// How the thinking budget is enforced (`none` without one).
  public var budgetForcing: BudgetMode {
    thinkingBudget == nil ? .none : budgetMode ?? .cap
  }

  /// Canonical JSON: sorted keys, no whitespace.
  public var canonicalJSON: String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? ""
  }

  /// 16 hex digits of FNV-1a over the canonical JSON.
  public var key: String {
    var hash = ContentHash()
    hash.add(canonicalJSON)
    return hash.hex
  }
}

/// One generated sample of one question, as stored.
public struct SampleRecord: Codable, Sendable, Equatable {
  public var scenarioKey: String
  public var questionId: String
  public var sampleIndex: Int
  public var output: String
  public var tokens: Int
  public var thinkingTokens: Int
  /// `eos`, `length`, `budget`, or `error`.
  public var finish: String
  public var answer: String?
  /// Whether `answer` is the gold answer. Records read from a store are graded against the
  /// answer key of the task's last run, so a corrected key re-scores without regenerating.
  public var correct: Bool
  /// What went wrong when the sample could not be generated (the sweep goes on).
  public var error: String?
  public var seconds: Double
  /// The sample's KV cache at its end (bytes; storage shared with other samples included).
  public var kvBytes: Int?

  public init(
    scenarioKey: String, questionId: String, sampleIndex: Int, output: String, tokens: Int, thinkingTokens: Int,
    finish: String, answer: String?, correct: Bool, error: String? = nil, seconds: Double, kvBytes: Int? = nil
  ) {
    self.scenarioKey = scenarioKey
    self.questionId = questionId
    self.sampleIndex = sampleIndex
    self.output = output
    self.tokens = tokens
    self.thinkingTokens = thinkingTokens
    self.finish = finish
    self.answer = answer
    self.correct = correct
    self.error = error
    self.seconds = seconds
    self.kvBytes = kvBytes
  }
}
