import Foundation

/// Why a sample stopped.
public enum FinishReason: String, Sendable, Codable {
  /// It produced a stop token (kept in its tokens).
  case eos
  /// It reached the maximum number of generated tokens (or, after budget forcing, of answer
  /// tokens without thinking budget).
  case length
  /// Its thinking reached the budget and was closed by the forced text (whatever ended the answer).
  case budget
}

/// A thinking budget enforced by budget forcing (s1): when a sample has generated `budget` tokens
/// without closing its thinking, `forcedTokens` (which close it, e.g. "\n</think>\n\n**Final
/// Answer**\n\\boxed{") are appended and fed through the model, and the sample answers within
/// `answerTokens` more tokens. With `minimumThinking`, a sample that closes its thinking (or stops)
/// earlier has the closing token replaced by `waitTokens` ("Wait") and goes on thinking.
public struct ThinkingBudget: Sendable, Equatable {
  public var budget: Int
  public var answerTokens: Int
  /// The token that ends thinking (`</think>`).
  public var endOfThinking: Int
  public var forcedTokens: [Int]
  public var minimumThinking: Int
  public var waitTokens: [Int]

  public init(
    budget: Int, answerTokens: Int = 256, endOfThinking: Int, forcedTokens: [Int],
    minimumThinking: Int = 0, waitTokens: [Int] = []
  ) {
    self.budget = budget
    self.answerTokens = answerTokens
    self.endOfThinking = endOfThinking
    self.forcedTokens = forcedTokens
    self.minimumThinking = minimumThinking
    self.waitTokens = waitTokens
  }

  /// Most positions a sample's inserted tokens can take beyond its sampled tokens: the forced
  /// text, plus what the "Wait" insertions add. Each insertion replaces one sampled token (the
  /// early end of thinking, not fed) with at most `waitTokens.count` tokens, all counted as
  /// thinking, and none goes past the budget, so the "Wait" tokens of a sample total at most
  /// S = min(minimumThinking − 1 + waitTokens.count, budget) over at least ⌈S / waitTokens.count⌉
  /// insertions. With a one-token "Wait" (Qwen3's) that adds nothing.
  public var maxInsertedTokens: Int {
    guard minimumThinking > 0, !waitTokens.isEmpty else { return forcedTokens.count }
    let waits = min(minimumThinking - 1 + waitTokens.count, budget)
    let insertions = (waits + waitTokens.count - 1) / waitTokens.count
    return forcedTokens.count + waits - insertions
  }
}

/// What to generate.
public struct GenerationOptions: Sendable {
  /// Most tokens each sample may sample (inserted forced/"Wait" tokens not counted).
  public var maxTokens: Int
  public var sampling: SamplingParameters
  /// Parallel samples G.
  public var samples: Int
  /// Sample `i` draws from `SampleRandom(seed: seed, stream: firstStream + i)`.
  public var seed: UInt64
  /// The random stream of sample 0 (to run sample `k` of a larger set on its own).
  public var firstStream: UInt64 = 0
  public var stopTokens: Set<Int>
  /// Only ids below this are chosen (a model's embedding often has padding rows past the
  /// tokenizer's last id).
  public var vocabularyLimit: Int?
  public var thinkingBudget: ThinkingBudget?

  public init(
    maxTokens: Int, sampling: SamplingParameters = .greedy, samples: Int = 1, seed: UInt64 = 0,
    stopTokens: Set<Int> = [], vocabularyLimit: Int? = nil, thinkingBudget: ThinkingBudget? = nil
  ) {
    self.maxTokens = maxTokens
    self.sampling = sampling
    self.samples = samples
    self.seed = seed
    self.stopTokens = stopTokens
    self.vocabularyLimit = vocabularyLimit
    self.thinkingBudget = thinkingBudget
  }
}

/// One generated sample.
public struct SampleResult: Sendable {
  /// New tokens: sampled ones, forced and "Wait" tokens where they were inserted, and the stop
  /// token when `finish == .eos` (or the answer ended with one after forcing).
  public var tokens: [Int] = []
  public var finish: FinishReason = .length
  /// Tokens before the end of thinking (all of them if thinking never ended); counted only with a
  /// thinking budget.
  public var thinkingTokens = 0
  /// Whether the forced text was inserted.
  public var forced = false
  /// Times `</think>` (or a stop token) was replaced by "Wait".
  public var waits = 0
  /// Tokens its KV cache holds at the end (per layer, the largest over layers): fewer than the
  /// sequence when the cache policy evicts.
  public var kvTokens = 0
  /// Bytes its KV cache holds at the end, storage shared with other samples included.
  public var kvBytes = 0
}

/// The outcome of a generation call.
public struct GenerationResult: Sendable {
  public var samples: [SampleResult]
  public var promptTokens: Int
  /// Wall time of the prompt's forward passes.
  public var prefillSeconds: Double
  /// Wall time of the forward passes after the prompt.
  public var decodeSeconds: Double
  /// Forward passes after the prompt.
  public var decodeSteps: Int
  /// Tokens fed through the model after the prompt, over all samples.
  public var decodedTokens: Int
  /// Bytes of KV-cache storage the samples hold together (storage shared since the prompt counted
  /// once), at the end.
  public var kvBytes: Int
}

/// Generates one or more samples after a prompt.
///
/// The prompt is prefilled once; each sample then continues in its own KV cache forked from the
/// prompt's (blocks shared until written; see `FullKVCache`). All live samples are decoded together
/// in one forward pass per step — one matrix–matrix product over their rows, so the weights are
/// read once per step for all of them — and finished samples drop out. Each sample has its own
/// random stream, and the kernels compute a row the same way whatever other rows share its pass,
/// so a sample's tokens do not depend on G, on the other samples or on the thread count.
public struct Generator {
  public let session: InferenceSession

  public init(session: InferenceSession) {
    self.session = session
  }

  private enum Phase {
    case thinking, answering, free, done
  }

  private struct State {
    var result = SampleResult()
    var phase: Phase
    var pending: [Int] = []
    var sampled = 0
    var answerTokens = 0
    var random: SampleRandom
    var sampler: Sampler
    var cache: any KVCache

    mutating func draw(_ logits: UnsafeBufferPointer<Float>) throws -> Int {
      try sampler.sample(logits, random: &random)
    }
  }

  /// Generates `options.samples` samples after `prompt` into caches forked from `cache` (which
  /// may already hold context; sample 0 continues in `cache` itself). `onToken(sample, token)`
  /// sees every token appended to a sample, as it happens; an error it throws ends generation.
  public func generate(
    prompt: [Int], options: GenerationOptions, cache: any KVCache,
    onToken: ((Int, Int) throws -> Void)? = nil
  ) throws -> GenerationResult {
    let config = session.model.config
    guard !prompt.isEmpty else { throw EngineError.invalidInput("the prompt is empty: give at least one token") }
    guard options.maxTokens >= 0 else { throw EngineError.invalidInput("the maximum number of new tokens must not be negative") }
    guard (1...256).contains(options.samples) else { throw EngineError.invalidInput("the number of samples must be in 1...256") }
    let context = config.maxPositions
    if let limit = options.vocabularyLimit, limit < 1 { throw EngineError.invalidInput("the vocabulary limit must be at least 1") }
    var inserted = 0
    if let budget = options.thinkingBudget {
      guard (1...context).contains(budget.budget), (0...context).contains(budget.answerTokens),
        (0...budget.budget).contains(budget.minimumThinking)
      else {
        throw EngineError.invalidInput(
          "the thinking budget must be in 1...\(context), the answer allowance in 0...\(context), and the minimum thinking at most the budget")
      }
      guard budget.minimumThinking == 0 || !budget.waitTokens.isEmpty else {
        throw EngineError.invalidInput("a minimum thinking length needs the \"Wait\" tokens to insert")
      }
      guard budget.forcedTokens.count <= context, budget.waitTokens.count <= context else {
        throw EngineError.invalidInput("the forced or \"Wait\" text is longer than the model's context")
      }
      for token in [budget.endOfThinking] + budget.forcedTokens + budget.waitTokens where !(0..<config.vocabSize).contains(token) {
        throw EngineError.invalidInput("token id \(token) of the thinking budget is outside the vocabulary (0..<\(config.vocabSize))")
      }
      inserted = budget.maxInsertedTokens
    }
    // Positions needed: what the cache holds, the prompt, inserted tokens, and every sampled token
    // but the last (which is never fed back).
    let room = context - cache.nextPosition - prompt.count - inserted
    if room < 0 || options.maxTokens - 1 > room {
      throw EngineError.invalidInput(
        "\(cache.nextPosition + prompt.count) tokens of context and prompt, \(inserted) inserted and \(options.maxTokens) new tokens exceed the model's context of \(context) positions")
    }

    var result = GenerationResult(
      samples: [], promptTokens: prompt.count, prefillSeconds: 0, decodeSeconds: 0, decodeSteps: 0,
      decodedTokens: 0, kvBytes: 0)
    let prefillStart = Date()
    var promptLogits: [Float] = []
    if options.maxTokens > 0 {
      guard let view = try session.prefill(prompt, cache: cache) else {
        throw EngineError.invalidInput("the prompt produced no logits")
      }
      promptLogits = Array(view.row(0))
    } else {
      _ = try session.prefill(prompt, cache: cache, logits: .none)
    }
    result.prefillSeconds = Date().timeIntervalSince(prefillStart)

    let startPhase: Phase = options.thinkingBudget == nil ? .free : .thinking
    var states: [State] = (0..<options.samples).map { index in
      State(
        phase: options.maxTokens > 0 ? startPhase : .done,
        random: SampleRandom(seed: options.seed, stream: options.firstStream &+ UInt64(index)),
        sampler: Sampler(parameters: options.sampling),
        cache: index == 0 ? cache : cache.fork())
    }

    let decodeStart = Date()
    if options.maxTokens > 0 {
      let limit = min(promptLogits.count, options.vocabularyLimit ?? promptLogits.count)
      for index in states.indices {
        let token = try promptLogits.withUnsafeBufferPointer {
          try states[index].draw(UnsafeBufferPointer(rebasing: $0.prefix(limit)))
        }
        try accept(token, sample: index, states: &states, options: options, onToken: onToken)
      }
    }
    while true {
      let live = states.indices.filter { states[$0].phase != .done && !states[$0].pending.isEmpty }
      if live.isEmpty { break }
      // Pack the live samples' pending tokens into passes of at most maxRows rows.
      var start = 0
      while start < live.count {
        var batch: [Int] = []
        var rows = 0
        while start < live.count {
          let index = live[start]
          let count = states[index].pending.count
          if count > session.maxRows {
            // A long inserted text alone: feed all but its last maxRows tokens without logits.
            let head = Array(states[index].pending.prefix(count - session.maxRows))
            _ = try session.prefill(head, cache: states[index].cache, logits: .none)
            states[index].pending.removeFirst(head.count)
            result.decodedTokens += head.count
          }
          // Each sample of a pass needs a logits row too.
          if !batch.isEmpty && (rows + states[index].pending.count > session.maxRows || batch.count >= session.maxLogitRows) {
            break
          }
          rows += states[index].pending.count
          batch.append(index)
          start += 1
        }
        let inputs = batch.map { SequenceInput(cache: states[$0].cache, tokens: states[$0].pending) }
        let view = try session.forward(inputs, logits: .lastOfEachSequence, linearPath: .streaming)
        result.decodeSteps += 1
        result.decodedTokens += rows
        let limit = min(view.vocabSize, options.vocabularyLimit ?? view.vocabSize)
        for (row, index) in batch.enumerated() {
          states[index].pending.removeAll(keepingCapacity: true)
          let token = try states[index].draw(UnsafeBufferPointer(rebasing: view.row(row).prefix(limit)))
          try accept(token, sample: index, states: &states, options: options, onToken: onToken)
        }
      }
    }
    result.decodeSeconds = Date().timeIntervalSince(decodeStart)
    result.samples = states.map { state in
      var sample = state.result
      sample.kvTokens = state.cache.residentTokens
      sample.kvBytes = state.cache.residentBytes
      return sample
    }
    result.kvBytes = uniqueStorageBytes(states.map(\.cache))
    return result
  }

  /// Applies a sampled token to a sample: records it, enforces stop tokens, the token limit and
  /// the thinking budget, and sets what the sample feeds next.
  private func accept(
    _ token: Int, sample index: Int, states: inout [State], options: GenerationOptions,
    onToken: ((Int, Int) throws -> Void)?
  ) throws {
    var state = states[index]
    defer { states[index] = state }
    func append(_ tokens: [Int]) throws {
      for token in tokens {
        state.result.tokens.append(token)
        try onToken?(index, token)
      }
    }
    /// Budget reached: the forced text closes the thinking; the answer allowance counts from here.
    func force(_ state: inout State, _ budget: ThinkingBudget) throws {
      for token in budget.forcedTokens {
        state.result.tokens.append(token)
        try onToken?(index, token)
      }
      state.result.forced = true
      state.result.finish = .budget
      state.pending += budget.forcedTokens
      state.answerTokens = 0
      state.phase = budget.answerTokens > 0 ? .answering : .done
    }
    state.sampled += 1
    let isStop = options.stopTokens.contains(token)
    switch state.phase {
    case .done:
      return
    case .free:
      try append([token])
      if isStop {
        state.result.finish = .eos
        state.phase = .done
        return
      }
      state.pending = [token]
    case .thinking:
      guard let budget = options.thinkingBudget else { return }
      let closes = token == budget.endOfThinking || isStop
      if closes && state.result.thinkingTokens < budget.minimumThinking {
        // Too early: "Wait" instead, and think on. The insertion stops at the budget, so a sample
        // forced there has thought exactly `budget` tokens.
        let wait = Array(budget.waitTokens.prefix(budget.budget - state.result.thinkingTokens))
        try append(wait)
        state.result.thinkingTokens += wait.count
        state.result.waits += 1
        state.pending = wait
        if state.result.thinkingTokens >= budget.budget {
          try force(&state, budget)
          if state.phase == .done { return }
        }
      } else if token == budget.endOfThinking {
        try append([token])
        state.phase = .answering
        state.pending = [token]
      } else if isStop {
        try append([token])
        state.result.finish = .eos
        state.phase = .done
        return
      } else {
        try append([token])
        state.result.thinkingTokens += 1
        state.pending = [token]
        if state.result.thinkingTokens >= budget.budget {
          try force(&state, budget)
          if state.phase == .done { return }
        }
      }
    case .answering:
      guard let budget = options.thinkingBudget else { return }
      try append([token])
      state.answerTokens += 1
      if isStop {
        if !state.result.forced { state.result.finish = .eos }
        state.phase = .done
        return
      }
      if state.result.forced && state.answerTokens >= budget.answerTokens {
        state.phase = .done
        return
      }
      state.pending = [token]
    }
    if state.sampled >= options.maxTokens {
      if !state.result.forced { state.result.finish = .length }
      state.phase = .done
    }
  }

  /// Bytes of the storage the caches hold, each shared block counted once.
  private func uniqueStorageBytes(_ caches: [any KVCache]) -> Int {
    var seen = Set<ObjectIdentifier>()
    var total = 0
    for cache in caches {
      cache.forEachStorage { identity, bytes in
        if seen.insert(identity).inserted { total += bytes }
      }
    }
    return total
  }

  /// Greedy decoding of one sequence, as transformers' `generate(do_sample=False)`.
  public func generateGreedy(
    prompt: [Int], maxTokens: Int, stopTokens: Set<Int>, cache: any KVCache
  ) throws -> GenerationResult {
    try generate(prompt: prompt, options: GenerationOptions(maxTokens: maxTokens, stopTokens: stopTokens), cache: cache)
  }

  /// The index of the largest value (the first one on ties, as `torch.argmax`). NaN logits mean
  /// the model produced garbage and are an error.
  public static func argmax(_ values: UnsafeBufferPointer<Float>) throws -> Int {
    guard !values.isEmpty else { throw EngineError.invalidInput("no logits to choose from") }
    var best = 0
    var bestValue = values[0]
    var sawNaN = bestValue.isNaN
    for i in 1..<values.count {
      let v = values[i]
      sawNaN = sawNaN || v.isNaN
      if v > bestValue {
        best = i
        bestValue = v
      }
    }
    if sawNaN { throw EngineError.numericalFailure("the model produced NaN logits (corrupt weights, or an f16 overflow)") }
    return best
  }
}
