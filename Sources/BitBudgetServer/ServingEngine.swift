import BitBudgetEngine
import BitBudgetLab
import BitBudgetMemory
import BitBudgetTokenizer
import Foundation

/// One request to the engine: a prompt's tokens and what to generate.
public struct ServingRequest: Sendable {
  public var prompt: [Int]
  public var options: GenerationOptions
  /// Texts that end a sample when its output contains them (the text is cut before them).
  public var stopStrings: [String]

  public init(prompt: [Int], options: GenerationOptions, stopStrings: [String] = []) {
    self.prompt = prompt
    self.options = options
    self.stopStrings = stopStrings
  }
}

/// What the engine tells a request's client, in order: text as it is generated, then the end.
public enum ServingEvent: Sendable {
  /// New text of sample `sample` (may be empty while a multi-byte character, or a possible stop
  /// string, is incomplete) after its token `token` (-1 for the held-back text sent at the end);
  /// `reply` describes the token when the request asked for log-probabilities.
  case text(sample: Int, token: Int, text: String, reply: ReplyToken?)
  case finished(ServingOutcome)
  case failed(ServingError)
}

/// A token of a reply, for requests that ask for log-probabilities.
public struct ReplyToken: Sendable {
  public var token: Int
  /// Where its text starts in the reply, in Unicode scalars (Python's string indices).
  public var textOffset: Int
  /// nil for tokens the thinking budget inserted (they are not drawn).
  public var logprobs: TokenLogprobs?
}

/// A finished request.
public struct ServingOutcome: Sendable {
  /// One sample of the request: its tokens, their text and why it stopped.
  public struct Sample: Sendable {
    public var tokens: [Int]
    public var text: String
    /// `eos` (a stop token or stop string), `length` or `budget`.
    public var finish: FinishReason
    public var thinkingTokens: Int
    /// With `options.logprobs`: each token of the reply (the stop token excluded; the tokens of
    /// a matched stop string included, as vLLM lists them).
    public var replyTokens: [ReplyToken]
  }

  public var samples: [Sample]
  public var promptTokens: Int
}

/// Why a request was not served.
public enum ServingError: Error, Sendable, CustomStringConvertible {
  /// The request cannot be run as asked (HTTP 400).
  case invalid(String)
  /// Not now: the queue is full, or it would not fit the memory limit even alone (HTTP 503).
  case unavailable(String)
  /// The engine failed while running it (HTTP 500).
  case failed(String)

  public var description: String {
    switch self {
    case .invalid(let message), .unavailable(let message), .failed(let message): message
    }
  }
}

/// Runs every live request of a server in one `DecodeBatch` on a thread of its own (continuous
/// batching): between steps it admits queued requests while the live samples stay within
/// `maxSequences` and their KV-cache peaks, as the memory model predicts them, within the memory
/// limit, and prefills one chunk (at most `maxRows` tokens) of the oldest admitted prompt, whose
/// n samples fork from it when it is in; each step decodes one token of every live sample of
/// every request in shared forward passes; requests leave when done or cancelled (a client that
/// disconnects frees its caches before the next step).
public final class ServingEngine: @unchecked Sendable {
  public let model: DecoderModel
  public let tokenizer: Tokenizer
  public let settings: EngineSettings
  /// Most samples decoding at once.
  public let maxSequences: Int
  /// Most requests waiting for admission.
  public let maxQueue: Int

  private let session: InferenceSession
  private let batch: DecodeBatch
  private let condition = NSCondition()
  private var queue: [Job] = []
  private var live: [Job] = []
  private var cancelled = Set<Int>()
  private var nextID = 0
  private var running = true
  private var thread: Thread?

  public let metrics = ServingMetrics()

  /// A snapshot of the engine's state.
  public struct Status: Sendable {
    public var queued: Int
    public var liveRequests: Int
    public var liveSamples: Int
    /// KV-cache peak bytes admitted requests may reach (the memory model's engine convention).
    public var reservedKVBytes: Int
  }

  final class Job {
    let id: Int
    let request: ServingRequest
    let continuation: AsyncStream<ServingEvent>.Continuation
    let kvPeakBytes: Int
    /// Scratch the session needs for this request (the attention tiles once any attention ran).
    let scratchBytes: Int
    var group: DecodeBatch.Group?
    var decoders: [StreamingDecoder]
    /// Text sent to the client, per sample.
    var texts: [String]
    /// Text not yet sent: it may begin a stop string.
    var held: [String]
    /// Unicode scalars in `texts` and `held` together, per sample: where the next token's text
    /// starts (kept as a count, as recounting a 30,000-token reply per token is quadratic).
    var scalarCounts: [Int]
    var stopped: Set<Int> = []
    /// The reply's tokens, per sample (with `options.logprobs`).
    var replyTokens: [[ReplyToken]]

    init(
      id: Int, request: ServingRequest, continuation: AsyncStream<ServingEvent>.Continuation, kvPeakBytes: Int, scratchBytes: Int,
      tokenizer: Tokenizer
    ) {
      self.id = id
      self.request = request
      self.continuation = continuation
      self.kvPeakBytes = kvPeakBytes
      self.scratchBytes = scratchBytes
      let n = request.options.samples
      decoders = Array(repeating: StreamingDecoder(tokenizer: tokenizer), count: n)
      texts = Array(repeating: "", count: n)
      held = Array(repeating: "", count: n)
      scalarCounts = Array(repeating: 0, count: n)
      replyTokens = Array(repeating: [], count: n)
    }
  }

  public init(model: DecoderModel, tokenizer: Tokenizer, settings: EngineSettings, maxSequences: Int = 16, maxQueue: Int = 256) throws {
    self.model = model
    self.tokenizer = tokenizer
    self.settings = settings
    self.maxSequences = max(1, maxSequences)
    self.maxQueue = max(0, maxQueue)
    session = try settings.session(model, maxRows: InferenceSession.defaultMaxRows, maxLogitRows: max(16, min(256, self.maxSequences)))
    batch = DecodeBatch(session: session)
  }

  private let tokenizerLock = NSLock()

  /// Runs `body` with the tokenizer, one caller at a time: encoding updates its piece cache. (The
  /// engine thread only decodes, which reads nothing that changes.)
  public func withTokenizer<Result>(_ body: (Tokenizer) throws -> Result) rethrows -> Result {
    try tokenizerLock.withLock { try body(tokenizer) }
  }

  /// Starts the engine's thread.
  public func start() {
    let thread = Thread { [weak self] in self?.loop() }
    thread.name = "bitbudget-engine"
    thread.stackSize = 8 << 20
    self.thread = thread
    thread.start()
  }

  /// Stops the thread after the current step; queued and live requests fail.
  public func stop() {
    condition.lock()
    running = false
    condition.signal()
    condition.unlock()
  }

  public var status: Status {
    condition.lock()
    defer { condition.unlock() }
    return Status(
      queued: queue.count, liveRequests: live.count, liveSamples: live.reduce(0) { $0 + $1.request.options.samples },
      reservedKVBytes: live.reduce(0) { $0 + $1.kvPeakBytes })
  }

  /// Queues `request`; its events arrive on the returned stream, which ends after `.finished` or
  /// `.failed`. Ending the stream early (the client went away) cancels the request. Throws when
  /// the request cannot be admitted ever, or the queue is full.
  public func submit(_ request: ServingRequest) throws(ServingError) -> (id: Int, events: AsyncStream<ServingEvent>) {
    let n = request.options.samples
    guard n <= maxSequences else {
      throw .invalid("n = \(n) is more than this server decodes at once (--max-sequences \(maxSequences))")
    }
    let cache: any KVCache
    do {
      cache = try settings.makeCache(session)
      try batch.validate(prompt: request.prompt, options: request.options, cache: cache)
    } catch {
      throw .invalid("\(error)")
    }
    let tokens = request.options.maxTokens + (request.options.thinkingBudget?.maxInsertedTokens ?? 0)
    var kvPeak = 0
    var scratch = 0
    if let limit = settings.memoryLimit {
      do {
        let estimate = try settings.estimate(model: model, promptTokens: request.prompt.count, tokens: tokens, samples: n)
        kvPeak = estimate.kvPeakBytes
        scratch = estimate.scratchBytes
      } catch {
        throw .invalid("\(error)")
      }
      if model.weights.byteCount + max(scratch, session.scratchBytes) + kvPeak > limit {
        metrics.rejected.increment()
        throw .unavailable(
          "this request needs up to \(ByteSize.readable(kvPeak)) of KV cache (\(n) × \(request.prompt.count + tokens) tokens with --kv \(settings.kv)); with the weights and scratch (\(ByteSize.readable(model.weights.byteCount + max(scratch, session.scratchBytes)))) that exceeds the server's --memory-limit of \(ByteSize.readable(limit)); ask for fewer max_tokens or samples")
      }
    }
    condition.lock()
    defer { condition.unlock() }
    guard running else { throw .unavailable("the server is stopping") }
    guard queue.count < maxQueue else {
      metrics.rejected.increment()
      throw .unavailable("\(queue.count) requests are already waiting (--max-queue \(maxQueue)); retry later")
    }
    let id = nextID
    nextID += 1
    var continuation: AsyncStream<ServingEvent>.Continuation!
    let events = AsyncStream<ServingEvent>(bufferingPolicy: .unbounded) { continuation = $0 }
    continuation.onTermination = { [weak self] termination in
      if case .cancelled = termination { self?.cancel(id) }
    }
    queue.append(Job(id: id, request: request, continuation: continuation, kvPeakBytes: kvPeak, scratchBytes: scratch, tokenizer: tokenizer))
    metrics.requests.increment()
    condition.signal()
    return (id, events)
  }

  /// Drops request `id`, queued or live; its caches are freed before the next step.
  public func cancel(_ id: Int) {
    condition.lock()
    cancelled.insert(id)
    condition.signal()
    condition.unlock()
  }

  // MARK: The engine thread

  private func loop() {
    while true {
      if !batch.hasWork { updateGauges(force: true) }
      condition.lock()
      while running && queue.isEmpty && cancelled.isEmpty && !batch.hasWork && live.isEmpty {
        condition.wait()
      }
      if !running {
        let all = queue + live
        queue = []
        live = []
        condition.unlock()
        for job in all {
          job.continuation.yield(.failed(.unavailable("the server stopped")))
          job.continuation.finish()
        }
        return
      }
      let drop = cancelled
      cancelled = []
      queue.removeAll { drop.contains($0.id) }
      let dropped = live.filter { drop.contains($0.id) }
      live.removeAll { drop.contains($0.id) }
      // Admission, in arrival order: while samples and the memory limit allow.
      var admitted: [Job] = []
      var samples = live.reduce(0) { $0 + $1.request.options.samples }
      var reserved = live.reduce(0) { $0 + $1.kvPeakBytes }
      var scratch = live.reduce(session.scratchBytes) { max($0, $1.scratchBytes) }
      while let job = queue.first {
        let n = job.request.options.samples
        let fitsMemory = settings.memoryLimit.map { model.weights.byteCount + max(scratch, job.scratchBytes) + reserved + job.kvPeakBytes <= $0 } ?? true
        guard samples + n <= maxSequences, fitsMemory else { break }
        queue.removeFirst()
        admitted.append(job)
        samples += n
        reserved += job.kvPeakBytes
        scratch = max(scratch, job.scratchBytes)
      }
      condition.unlock()

      for job in dropped {
        if let group = job.group { _ = batch.remove(group) }
        job.continuation.finish()
      }
      for job in admitted { admit(job) }
      if batch.isPrefilling {
        prefillChunk()
        applyStops()
        finishDoneJobs()
      }
      if batch.hasWork {
        do {
          metrics.batchSamples.record(Double(batch.liveSamples))
          try batch.step()
          metrics.steps.increment()
        } catch {
          // A failed pass leaves every live sample's cache unknown: all live requests fail.
          let failed = lockedLive { jobs in
            defer { jobs = [] }
            return jobs
          }
          for job in failed {
            if let group = job.group { _ = batch.remove(group) }
            job.continuation.yield(.failed(.failed("the engine failed: \(error)")))
            job.continuation.finish()
          }
          continue
        }
      }
      applyStops()
      finishDoneJobs()
      updateGauges()
    }
  }

  private var gaugesUpdated = Date.distantPast

  /// The gauges, at most a few times a second (summing the caches' blocks costs a walk over them).
  private func updateGauges(force: Bool = false) {
    guard force || Date().timeIntervalSince(gaugesUpdated) > 0.25 else { return }
    gaugesUpdated = Date()
    let status = self.status
    metrics.queued.record(Double(status.queued))
    metrics.liveRequests.record(Double(status.liveRequests))
    metrics.liveSamples.record(Double(status.liveSamples))
    metrics.reservedKVBytes.record(Double(status.reservedKVBytes))
    metrics.kvBytes.record(Double(batch.kvBytes))
  }

  /// Queues a job's prompt for its prefill (chunk by chunk between decode steps) and makes it live
  /// (or fails it alone).
  private func admit(_ job: Job) {
    do {
      let cache = try settings.makeCache(session)
      job.group = try batch.enqueue(prompt: job.request.prompt, options: job.request.options, cache: cache) { [unowned self] appended in
        self.deliver(appended.token, logprobs: appended.logprobs, sample: appended.sample, job: job)
      }
      metrics.promptTokens.increment(by: job.request.prompt.count)
      lockedLive { $0.append(job) }
    } catch {
      job.continuation.yield(.failed(.invalid("\(error)")))
      job.continuation.finish()
    }
  }

  /// One chunk of the oldest waiting prompt: a long prompt delays the live samples by one chunk
  /// per step, not by its whole prefill.
  private func prefillChunk() {
    do {
      try batch.prefillStep()
    } catch {
      let group = (error as? DecodeBatch.PrefillFailure)?.group
      let failed = lockedLive { jobs in
        let failed = jobs.filter { $0.group == group }
        jobs.removeAll { $0.group == group }
        return failed
      }
      for job in failed {
        job.continuation.yield(.failed(.failed("the prompt's prefill failed: \(error)")))
        job.continuation.finish()
      }
    }
  }

  /// A new token of a sample: its text to the client, up to a stop string. Text that may be the
  /// start of a stop string is held back until the next tokens tell.
  private func deliver(_ token: Int, logprobs: TokenLogprobs?, sample: Int, job: Job) {
    guard !job.stopped.contains(sample) else { return }
    metrics.generatedTokens.increment()
    // A stop token ends the sample; its text (`<|im_end|>`) is not part of the reply.
    guard !job.request.options.stopTokens.contains(token) else { return }
    var reply: ReplyToken?
    if job.request.options.logprobs != nil {
      let entry = ReplyToken(token: token, textOffset: job.scalarCounts[sample], logprobs: logprobs)
      job.replyTokens[sample].append(entry)
      reply = entry
    }
    let piece = (try? job.decoders[sample].append(token)) ?? ""
    job.held[sample] += piece
    // Moving held text into `texts` keeps the total; a stop string ends the sample, after which
    // no offset is read.
    job.scalarCounts[sample] += piece.unicodeScalars.count
    let held = job.held[sample]
    var visible = held
    if !job.request.stopStrings.isEmpty {
      let hits = job.request.stopStrings.compactMap { held.range(of: $0) }
      if let first = hits.min(by: { $0.lowerBound < $1.lowerBound }) {
        visible = String(held[..<first.lowerBound])
        job.stopped.insert(sample)
        job.held[sample] = ""
      } else {
        // The longest end of the held text that begins some stop string stays held.
        let keep = (1..<max(1, held.count + 1)).reversed().first { length in
          let tail = held.suffix(length)
          return job.request.stopStrings.contains { $0.count > length && $0.hasPrefix(tail) }
        } ?? 0
        visible = String(held.dropLast(keep))
        job.held[sample] = String(held.suffix(keep))
      }
    } else {
      job.held[sample] = ""
    }
    job.texts[sample] += visible
    job.continuation.yield(.text(sample: sample, token: token, text: visible, reply: reply))
  }

  /// Ends in the batch the samples whose stop string matched (during `add` or `step`, when the
  /// batch holds them out of reach).
  private func applyStops() {
    for job in lockedLive({ $0 }) {
      guard let group = job.group else { continue }
      for sample in job.stopped { batch.stop(group, sample: sample) }
    }
  }

  /// Sends the outcome of every job whose samples are all done and removes it.
  private func finishDoneJobs() {
    let done = lockedLive { jobs in
      let done = jobs.filter { $0.group.map(batch.isDone) ?? false }
      jobs.removeAll { job in done.contains { $0 === job } }
      return done
    }
    for job in done {
      guard let group = job.group else { continue }
      let (results, _) = batch.remove(group)
      let samples = results.enumerated().map { index, result in
        var text = job.texts[index]
        if !job.stopped.contains(index) {
          let rest = job.held[index] + job.decoders[index].finish()
          text += rest
          if !rest.isEmpty { job.continuation.yield(.text(sample: index, token: -1, text: rest, reply: nil)) }
        }
        // A stop string that matched on the last allowed token still ends the sample with "stop".
        let finish = job.stopped.contains(index) && result.finish == .length ? FinishReason.eos : result.finish
        return ServingOutcome.Sample(
          tokens: result.tokens, text: text, finish: finish, thinkingTokens: result.thinkingTokens, replyTokens: job.replyTokens[index])
      }
      job.continuation.yield(.finished(ServingOutcome(samples: samples, promptTokens: job.request.prompt.count)))
      job.continuation.finish()
    }
  }

  private func lockedLive<Result>(_ body: (inout [Job]) -> Result) -> Result {
    condition.lock()
    defer { condition.unlock() }
    return body(&live)
  }
}
