import Foundation

/// Samples decoded together, a step at a time. Each step packs every live sample's pending tokens
/// into forward passes of at most `maxRows` rows (one row per sample in plain decoding, more after
/// an inserted text), so the weights are read once per pass for all of them, and draws a token for
/// each. Groups of samples (a request's G samples, which share its prompt's prefill) join between
/// steps and leave when done or cancelled: `Generator.generate` runs one group; a server runs every
/// live request's groups in one batch (continuous batching).
///
/// Each sample draws from its own random stream and the kernels compute a row the same way
/// whatever other rows share its pass, so a sample's tokens depend only on its prompt, options and
/// stream — not on what else is in the batch, nor on the thread count. Not thread-safe.
public final class DecodeBatch {
  public let session: InferenceSession
  /// Forward passes run by `step()` so far.
  public private(set) var passes = 0
  /// Tokens fed through the model by `step()` so far, over all samples.
  public private(set) var decodedTokens = 0
  /// Wall time of the prompts' forward passes so far, in seconds.
  public private(set) var prefillSeconds = 0.0

  /// A group of samples added together.
  public struct Group: Hashable, Sendable {
    let id: Int
  }

  enum Phase {
    case thinking, answering, free, done
  }

  struct Sample {
    let group: Int
    /// Its index in its group (what `onToken` is told).
    let index: Int
    var result = SampleResult()
    var phase: Phase
    var pending: [Int] = []
    var sampled = 0
    var answerTokens = 0
    var random: SampleRandom
    var sampler: Sampler
    var cache: any KVCacheStorage

    mutating func draw(_ logits: UnsafeBufferPointer<Float>) throws -> Int {
      try sampler.sample(logits, random: &random)
    }
  }

  struct Member {
    let options: GenerationOptions
    let promptTokens: Int
    let onToken: TokenHandler?
    /// Empty until the prompt's prefill is in.
    var samples: [Int]
  }

  /// A prompt waiting for (the rest of) its prefill.
  private struct Prefill {
    let group: Int
    let prompt: [Int]
    var offset: Int
    let cache: any KVCacheStorage
  }

  /// A token appended to a sample, as a ``TokenHandler`` sees it.
  public struct AppendedToken: Sendable {
    /// Who chose a token.
    public enum Origin: Sendable, Equatable {
      /// Drawn from the model's distribution.
      case drawn
      /// Budget forcing's text closing the thinking at the budget.
      case forced
      /// The wait text that replaced an end of thinking before the minimum.
      case wait
    }

    /// The sample's index in its group.
    public var sample: Int
    public var token: Int
    /// The model's log-probabilities at this step when the options ask for them; nil for
    /// inserted tokens, which are not drawn.
    public var logprobs: TokenLogprobs?
    public var origin: Origin
    /// The first token of an insertion (each forced text and each wait text is one).
    public var startsInsertion: Bool
  }

  /// Sees each token appended to a sample of a group, in order.
  public typealias TokenHandler = (AppendedToken) throws -> Void

  private var samples: [Int: Sample] = [:]
  private var groups: [Int: Member] = [:]
  private var prefills: [Prefill] = []
  private var nextSample = 0
  private var nextGroup = 0

  /// Most alternatives `GenerationOptions.logprobs` may ask for per token.
  public static let maxTopLogprobs = 1024

  public init(session: InferenceSession) {
    self.session = session
  }

  /// Whether some sample still has tokens to decode.
  public var hasWork: Bool { samples.values.contains { $0.phase != .done && !$0.pending.isEmpty } }

  /// Samples not yet done, over all groups.
  public var liveSamples: Int { samples.values.filter { $0.phase != .done }.count }

  /// Bytes of KV storage every sample's cache holds together (blocks shared by forks counted once).
  /// Cost: a walk over every cache's blocks.
  public var kvBytes: Int { Self.uniqueStorageBytes(samples.values.map(\.cache)) }

  /// Prefills `prompt` into `cache` (which may already hold context) and adds `options.samples`
  /// samples continuing it — sample 0 in `cache` itself, the others in forks sharing the prompt's
  /// blocks — each with its first token drawn from the prompt's logits. `onToken` sees every
  /// token appended to a sample of the group, as it happens; an error it throws ends
  /// the call (`add` or `step`) that appended the token. Cost: the prompt's prefill.
  @discardableResult
  public func add(
    prompt: [Int], options: GenerationOptions, cache: any KVCache, onToken: TokenHandler? = nil
  ) throws -> Group {
    let group = try enqueue(prompt: prompt, options: options, cache: cache, onToken: onToken)
    while let index = prefills.firstIndex(where: { $0.group == group.id }) {
      do {
        try advancePrefill(at: index)
      } catch {
        _ = remove(group)
        throw error
      }
    }
    return group
  }

  /// As `add`, but the prompt is prefilled later by `prefillStep()`, one chunk of at most `maxRows`
  /// tokens at a time (the chunks `add` and `InferenceSession.prefill` use, so the results are
  /// the same), so that a server interleaves a long prompt with the decoding of other requests.
  /// The group's samples start when its last chunk is in.
  public func enqueue(
    prompt: [Int], options: GenerationOptions, cache: any KVCache, onToken: TokenHandler? = nil
  ) throws -> Group {
    try validate(prompt: prompt, options: options, cache: cache)
    let storage = try cache.storage()
    let group = nextGroup
    nextGroup += 1
    groups[group] = Member(options: options, promptTokens: prompt.count, onToken: onToken, samples: [])
    prefills.append(Prefill(group: group, prompt: prompt, offset: 0, cache: storage))
    return Group(id: group)
  }

  /// Whether some group's prompt is still waiting for (part of) its prefill.
  public var isPrefilling: Bool { !prefills.isEmpty }

  /// The next chunk of the oldest prompt waiting for its prefill (its group's samples start after
  /// its last chunk). Returns that group, or nil when none waits. A failure removes the group and
  /// throws `PrefillFailure` naming it. Cost: one forward pass of at most `maxRows` tokens.
  @discardableResult
  public func prefillStep() throws -> Group? {
    guard let first = prefills.first else { return nil }
    let group = Group(id: first.group)
    do {
      try advancePrefill(at: 0)
    } catch {
      _ = remove(group)
      throw PrefillFailure(group: group, underlying: error)
    }
    return group
  }

  /// A prefill that failed: its group is removed.
  public struct PrefillFailure: Error, CustomStringConvertible {
    public let group: Group
    public let underlying: Error
    public var description: String { "\(underlying)" }
  }

  /// Feeds the next chunk of `prefills[index]`; after the last, starts its group's samples.
  private func advancePrefill(at index: Int) throws {
    var prefill = prefills[index]
    guard let member = groups[prefill.group] else {
      prefills.remove(at: index)
      return
    }
    let end = min(prefill.prompt.count, prefill.offset + session.maxRows)
    let isLast = end == prefill.prompt.count
    let wantsLogits = isLast && member.options.maxTokens > 0
    let started = Date()
    let view = try session.forward(
      [SequenceInput(cache: prefill.cache, tokens: Array(prefill.prompt[prefill.offset..<end]))],
      logits: wantsLogits ? .lastOfEachSequence : .none)
    prefillSeconds += Date().timeIntervalSince(started)
    prefill.offset = end
    guard isLast else {
      prefills[index] = prefill
      return
    }
    prefills.remove(at: index)
    try start(group: prefill.group, cache: prefill.cache, promptLogits: wantsLogits ? Array(view.row(0)) : [])
  }

  /// The samples of a group whose prompt is in `cache`, each with its first token drawn.
  private func start(group: Int, cache: any KVCacheStorage, promptLogits: [Float]) throws {
    guard let options = groups[group]?.options else { return }
    let startPhase: Phase = options.thinkingBudget == nil ? .free : .thinking
    var members: [Int] = []
    for index in 0..<options.samples {
      let id = nextSample
      nextSample += 1
      samples[id] = Sample(
        group: group, index: index, phase: options.maxTokens > 0 ? startPhase : .done,
        random: SampleRandom(seed: options.seed, stream: options.firstStream &+ UInt64(index)),
        sampler: Sampler(parameters: options.sampling), cache: index == 0 ? cache : try cache.fork().storage())
      members.append(id)
    }
    groups[group]?.samples = members
    if options.maxTokens > 0 {
      let limit = min(promptLogits.count, options.vocabularyLimit ?? promptLogits.count)
      for id in members {
        try promptLogits.withUnsafeBufferPointer { logits in
          try draw(sample: id, logits: UnsafeBufferPointer(rebasing: logits.prefix(limit)), options: options)
        }
      }
    }
  }

  /// One step: every live sample's pending tokens fed through the model (in passes of at most
  /// `maxRows` rows and `maxLogitRows` samples) and a token drawn for each. Cost: one weight read
  /// per pass, plus each sample's attention over its cache.
  public func step() throws {
    let live = samples.filter { $0.value.phase != .done && !$0.value.pending.isEmpty }.keys.sorted()
    var start = 0
    while start < live.count {
      var batch: [Int] = []
      var rows = 0
      while start < live.count {
        let id = live[start]
        var count = samples[id]?.pending.count ?? 0
        if count > session.maxRows, let sample = samples[id] {
          // A long inserted text alone: feed all but its last maxRows tokens without logits.
          let head = Array(sample.pending.prefix(count - session.maxRows))
          _ = try session.prefill(head, cache: sample.cache, logits: .none)
          samples[id]?.pending.removeFirst(head.count)
          decodedTokens += head.count
          count -= head.count
        }
        // Each sample of a pass needs a logits row too.
        if !batch.isEmpty && (rows + count > session.maxRows || batch.count >= session.maxLogitRows) {
          break
        }
        rows += count
        batch.append(id)
        start += 1
      }
      let inputs = batch.compactMap { id in samples[id].map { SequenceInput(cache: $0.cache, tokens: $0.pending) } }
      let view = try session.forward(inputs, logits: .lastOfEachSequence, linearPath: .streaming)
      passes += 1
      decodedTokens += rows
      for (row, id) in batch.enumerated() {
        guard let group = samples[id]?.group, let options = groups[group]?.options else { continue }
        samples[id]?.pending.removeAll(keepingCapacity: true)
        let limit = min(view.vocabSize, options.vocabularyLimit ?? view.vocabSize)
        try draw(sample: id, logits: UnsafeBufferPointer(rebasing: view.row(row).prefix(limit)), options: options)
      }
    }
  }

  /// Ends sample `index` of `group` now, as if it had produced a stop token (a server's stop
  /// string matched its text); it decodes no further tokens.
  public func stop(_ group: Group, sample index: Int) {
    guard let member = groups[group.id], member.samples.indices.contains(index) else { return }
    let id = member.samples[index]
    guard samples[id]?.phase != .done else { return }
    samples[id]?.phase = .done
    samples[id]?.pending = []
    if samples[id]?.result.forced == false { samples[id]?.result.finish = .eos }
  }

  /// Whether every sample of `group` is done (false while its prompt waits for its prefill).
  public func isDone(_ group: Group) -> Bool {
    if prefills.contains(where: { $0.group == group.id }) { return false }
    return groups[group.id]?.samples.allSatisfy { samples[$0]?.phase == .done } ?? true
  }

  /// The samples of `group` in index order, and the bytes of KV storage they hold together
  /// (shared blocks counted once); removes the group and frees its caches.
  public func remove(_ group: Group) -> (samples: [SampleResult], kvBytes: Int) {
    prefills.removeAll { $0.group == group.id }
    guard let member = groups.removeValue(forKey: group.id) else { return ([], 0) }
    let caches = member.samples.compactMap { samples[$0]?.cache }
    let kvBytes = Self.uniqueStorageBytes(caches)
    let results = member.samples.compactMap { id -> SampleResult? in
      guard var sample = samples.removeValue(forKey: id) else { return nil }
      sample.result.kvTokens = sample.cache.residentTokens
      sample.result.kvBytes = sample.cache.residentBytes
      return sample.result
    }
    return (results, kvBytes)
  }

  /// Draws sample `id`'s next token from `logits` and applies it: records it, enforces stop
  /// tokens, the token limit and the thinking budget, and sets what the sample feeds next.
  private func draw(sample id: Int, logits: UnsafeBufferPointer<Float>, options: GenerationOptions) throws {
    guard let member = samples[id].flatMap({ groups[$0.group] }) else { return }
    try withSample(id) { state in
      let token = try state.draw(logits)
      let logprobs = options.logprobs.map { TokenLogprobs(logits: logits, chosen: token, top: $0) }
      try accept(token, logprobs: logprobs, state: &state, member: member)
    }
  }

  /// Calls `body` with sample `id` taken out of the table, so that appending to its tokens does
  /// not copy them (the table would otherwise share the array).
  private func withSample<Result>(_ id: Int, _ body: (inout Sample) throws -> Result) throws -> Result {
    guard var sample = samples.removeValue(forKey: id) else { throw EngineError.invalidInput("internal: no sample \(id)") }
    defer { samples[id] = sample }
    return try body(&sample)
  }

  /// Bytes of the storage the caches hold, each shared block counted once.
  static func uniqueStorageBytes(_ caches: [any KVCacheStorage]) -> Int {
    var seen = Set<ObjectIdentifier>()
    var total = 0
    for cache in caches {
      cache.forEachStorage { identity, bytes in
        if seen.insert(identity).inserted { total += bytes }
      }
    }
    return total
  }
}
