import BitBudgetEngine
import BitBudgetLab
import BitBudgetTokenizer
import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import ServiceLifecycle

/// The OpenAI-compatible HTTP face of a `ServingEngine` (Hummingbird): `POST /v1/completions`,
/// `POST /v1/chat/completions` (in the model's own chat template; `stream: true` as server-sent
/// events in OpenAI's chunk format ending with `[DONE]`), `GET /v1/models`, `GET /health`, and
/// `GET /metrics` (Prometheus).
/// Requests take OpenAI's fields (`max_tokens`, `temperature`, `top_p`, `top_k`, `min_p`,
/// `seed`, `n`, `stop`, `stream`) and BitBudget's budget forcing (`thinking_budget`,
/// `answer_tokens`, `budget_text`, `min_thinking`, as `bitbudget generate` takes them); replies
/// carry `usage` with `thinking_tokens` and `finish_reason` `stop|length|budget`. Bad input is a
/// 4xx with OpenAI's error object; a request that cannot fit the memory limit, or a full queue,
/// is a 503.
public struct OpenAIServer: Sendable {
  public let engine: ServingEngine
  /// The name `/v1/models` lists and replies carry.
  public let modelName: String
  /// When set, requests must carry `Authorization: Bearer KEY`.
  public let apiKey: String?
  public let chatTemplate: ChatTemplate?
  /// `max_tokens` of a chat request that gives none (nil: the rest of the context, as vLLM does).
  public let defaultMaxTokens: Int?
  /// Largest request body accepted.
  public static let maxBodyBytes = 8 << 20
  /// Most stop strings per request, as OpenAI allows.
  static let maxStopStrings = 4
  /// Most alternatives per token in `logprobs` (OpenAI allows 20 in chat, 5 in completions).
  static let maxTopLogprobs = 20

  public init(engine: ServingEngine, modelName: String, apiKey: String?, chatTemplate: ChatTemplate?, defaultMaxTokens: Int? = nil) {
    self.engine = engine
    self.modelName = modelName
    self.apiKey = apiKey
    self.chatTemplate = chatTemplate
    self.defaultMaxTokens = defaultMaxTokens
  }

  /// Serves until the task is cancelled; `onRunning` gets the bound port (useful with port 0).
  public func run(host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void) async throws {
    let router = Router(context: ConnectionContext.self)
    // HTTP requests counted and timed through swift-metrics (whatever system the process bootstrapped).
    router.middlewares.add(MetricsMiddleware())
    router.get("health") { _, _ in Self.json(["status": "ok"]) }
    router.get("metrics") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
        body: .init(byteBuffer: ByteBuffer(string: self.engine.metrics.text())))
    }
    router.get("v1/models") { request, _ in
      if let refusal = self.authorize(request) { return refusal }
      return Self.json([
        "object": "list",
        "data": [["id": self.modelName, "object": "model", "created": Int(Date().timeIntervalSince1970), "owned_by": "bitbudget"]],
      ])
    }
    router.post("v1/completions") { request, context in try await self.handle(request, context: context, chat: false) }
    router.post("v1/chat/completions") { request, context in try await self.handle(request, context: context, chat: true) }
    let app = Application(
      router: router,
      server: .http1(configuration: .init(additionalChannelHandlers: [ClosingOnHangUp()])),
      configuration: .init(address: .hostname(host, port: port), serverName: "bitbudget"),
      onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) })
    // On SIGTERM/SIGINT the engine stops first (its requests end with an error) and the server
    // then drains: a graceful shutdown does not wait for a 30,000-token generation.
    let group = ServiceGroup(
      configuration: .init(
        services: [
          .init(service: app),
          .init(service: EngineShutdown(engine: engine), successTerminationBehavior: .gracefullyShutdownGroup),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint], logger: app.logger))
    try await group.run()
  }

  // MARK: Requests

  private func authorize(_ request: Request) -> Response? {
    guard let apiKey else { return nil }
    guard request.headers[.authorization] == "Bearer \(apiKey)" else {
      return Self.error(.unauthorized, "a valid API key is required (Authorization: Bearer KEY)", type: "authentication_error")
    }
    return nil
  }

  private func handle(_ request: Request, context: ConnectionContext, chat: Bool) async throws -> Response {
    if let refusal = authorize(request) { return refusal }
    var request = request
    let body: ByteBuffer
    do {
      body = try await request.collectBody(upTo: Self.maxBodyBytes)
    } catch {
      return Self.error(.contentTooLarge, "the request body is larger than \(Self.maxBodyBytes) bytes")
    }
    let parsed: Parsed
    do {
      parsed = try parse(Data(body.readableBytesView), chat: chat)
    } catch {
      return Self.error(error)
    }
    let submitted: (id: Int, events: AsyncStream<ServingEvent>)
    do {
      submitted = try engine.submit(parsed.request)
    } catch {
      return Self.error(error)
    }
    let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    let created = Int(Date().timeIntervalSince1970)
    if parsed.stream {
      return stream(submitted, id: id, created: created, parsed: parsed, chat: chat)
    }
    // A client that hangs up before the reply frees its samples at once.
    let engine = self.engine
    context.channel.closeFuture.whenComplete { _ in engine.cancel(submitted.id) }
    for await event in submitted.events {
      switch event {
      case .text: continue
      case .failed(let error): return Self.error(error)
      case .finished(let outcome):
        return Self.json(completion(outcome, id: id, created: created, parsed: parsed, chat: chat))
      }
    }
    engine.cancel(submitted.id)
    return Self.error(.failed("the request ended without a result"))
  }

  /// A request's fields, checked.
  struct Parsed {
    var request: ServingRequest
    var stream: Bool
    var includeUsage: Bool
    /// Whether replies split thinking from the answer (`reasoning_content`).
    var splitsThinking: Bool
    /// The rendered prompt ends with the open tag: the reply starts inside the thinking.
    var promptOpensThinking: Bool
  }

  /// A message whose `content` is OpenAI's array of parts, with its text parts joined (templates
  /// expect a string; other parts are not taken by a text model).
  static func joiningTextParts(_ message: Any) -> Any {
    guard var object = message as? [String: Any], let parts = object["content"] as? [Any] else { return message }
    let texts = parts.compactMap { part -> String? in
      guard let part = part as? [String: Any], part["type"] as? String == "text" else { return nil }
      return part["text"] as? String
    }
    object["content"] = texts.joined(separator: "\n")
    return object
  }

  private func parse(_ data: Data, chat: Bool) throws(ServingError) -> Parsed {
    guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw .invalid("the body must be a JSON object")
    }
    let fields = Fields(root)
    let tokenizer = engine.tokenizer
    let model = engine.model
    if let name = try fields.string("model"), name != modelName {
      throw .invalid("this server serves the model \"\(modelName)\", not \"\(name)\"")
    }
    // Completions take `logprobs: k`; chat takes `logprobs: true` and `top_logprobs: k`.
    let logprobs: Int?
    if chat {
      let top = try fields.integer("top_logprobs", in: 0...Self.maxTopLogprobs)
      if try fields.bool("logprobs") == true {
        logprobs = top ?? 0
      } else {
        guard (top ?? 0) == 0 else { throw .invalid("\"top_logprobs\" needs \"logprobs\": true") }
        logprobs = nil
      }
    } else {
      // `true`/`false` as some clients send them: the drawn token alone, or none.
      if let flag = root["logprobs"] as? NSNumber, Fields.isBoolean(flag) {
        logprobs = flag.boolValue ? 0 : nil
      } else {
        logprobs = try fields.integer("logprobs", in: 0...Self.maxTopLogprobs)
      }
    }
    var prompt: [Int]
    var stops = Set((try? model.stopTokenIds()) ?? [])
    var splitsThinking = false
    var promptOpensThinking = false
    if chat {
      guard let template = chatTemplate else {
        throw .invalid("the model has no chat template; use /v1/completions, or start the server with --chat-template")
      }
      guard let messages = root["messages"] as? [Any], !messages.isEmpty else {
        throw .invalid("\"messages\" must be a non-empty array of {\"role\", \"content\"} objects")
      }
      var options = ChatTemplate.Options()
      let kwargs = root["chat_template_kwargs"] as? [String: Any]
      if let thinking = kwargs?["enable_thinking"] {
        guard let flag = thinking as? Bool else { throw .invalid("chat_template_kwargs.enable_thinking must be a boolean") }
        options.enableThinking = flag
      }
      var conversation: [String: Any] = ["messages": messages.map(Self.joiningTextParts)]
      if let tools = root["tools"] { conversation["tools"] = tools }
      guard let json = try? JSONSerialization.data(withJSONObject: conversation), let text = String(data: json, encoding: .utf8) else {
        throw .invalid("\"messages\" is not JSON that can be rendered")
      }
      do {
        let rendered = try template.render(conversationJSON: text, options: options)
        prompt = engine.withTokenizer { $0.encode(rendered) }
        if let tags = tokenizer.thinkingTags {
          promptOpensThinking = rendered.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix(tags.open)
        }
      } catch {
        throw .invalid("the chat template refused the conversation: \(error)")
      }
      if let end = tokenizer.configuration.eosToken.flatMap(tokenizer.id(of:)) { stops.insert(end) }
      stops.formUnion(tokenizer.endOfTurnIds(template))
      splitsThinking = tokenizer.thinkingTags != nil && options.enableThinking != false
    } else {
      switch root["prompt"] {
      case let text as String:
        prompt = engine.withTokenizer { $0.encodePrompt(text) }
      case let list as [Any] where list.count == 1 && list[0] is String:
        let text = list[0] as? String ?? ""
        prompt = engine.withTokenizer { $0.encodePrompt(text) }
      case let list as [Any] where !list.isEmpty && list.allSatisfy(Fields.isInteger):
        prompt = list.compactMap { ($0 as? NSNumber)?.intValue }
      case .some(let list as [Any]) where list.count > 1:
        throw .invalid("give one prompt per request (a string or an array of token ids)")
      default:
        throw .invalid("\"prompt\" must be a string or an array of token ids")
      }
    }
    guard !prompt.isEmpty else { throw .invalid("the prompt is empty") }

    let context = model.config.maxPositions
    var sampling = (try? model.generationDefaults()) ?? .greedy
    if let temperature = try fields.number("temperature", in: 0...100) { sampling.temperature = Float(temperature) }
    if let topP = try fields.number("top_p", in: 0...1) {
      guard topP > 0 else { throw .invalid("top_p must be in (0, 1]") }
      sampling.topP = Float(topP)
    }
    if let topK = try fields.integer("top_k", in: -1...Int(Int32.max)) { sampling.topK = max(0, topK) }
    if let minP = try fields.number("min_p", in: 0...1) { sampling.minP = Float(minP) }
    let seed = try fields.integer("seed", in: 0...Int.max).map(UInt64.init) ?? UInt64.random(in: 0...UInt64(Int64.max))
    let n = try fields.integer("n", in: 1...256) ?? 1
    let stream = try fields.bool("stream") ?? false
    let includeUsage = ((root["stream_options"] as? [String: Any])?["include_usage"] as? Bool) ?? false
    var stopStrings: [String] = []
    switch root["stop"] {
    case nil, is NSNull: break
    case let text as String: stopStrings = [text]
    case let list as [Any]:
      stopStrings = list.compactMap { $0 as? String }
      guard stopStrings.count == list.count else { throw .invalid("\"stop\" must be a string or an array of strings") }
    default: throw .invalid("\"stop\" must be a string or an array of strings")
    }
    guard stopStrings.count <= Self.maxStopStrings, stopStrings.allSatisfy({ !$0.isEmpty }) else {
      throw .invalid("\"stop\" takes at most \(Self.maxStopStrings) non-empty strings")
    }

    var budget: ThinkingBudget?
    if let tokens = try fields.integer("thinking_budget", in: 1...context) {
      let answerTokens = try fields.integer("answer_tokens", in: 0...context) ?? 256
      let text = try fields.string("budget_text") ?? "paper"
      let minimum = try fields.integer("min_thinking", in: 0...tokens) ?? 0
      let made = engine.withTokenizer { tokenizer in
        Result { () throws(EngineError) -> ThinkingBudget in
          try ThinkingBudget.forTokenizer(tokenizer, budget: tokens, answerTokens: answerTokens, text: text, minimumThinking: minimum)
        }
      }
      switch made {
      case .success(let value): budget = value
      case .failure(let error): throw .invalid(error.description)
      }
    } else {
      for name in ["answer_tokens", "budget_text", "min_thinking"] where root[name] != nil && !(root[name] is NSNull) {
        throw .invalid("\"\(name)\" applies only with \"thinking_budget\"")
      }
    }
    let inserted = budget?.maxInsertedTokens ?? 0
    let room = context - prompt.count - inserted
    guard room >= 1 else {
      throw .invalid("the prompt's \(prompt.count) tokens leave no room in the model's context of \(context) positions")
    }
    let defaultTokens = chat ? (budget.map { $0.budget + $0.answerTokens } ?? defaultMaxTokens ?? room) : 16
    var maxTokens = min(room, defaultTokens)
    if let asked = try fields.integer("max_completion_tokens", in: 0...context) {
      maxTokens = asked
    } else if let asked = try fields.integer("max_tokens", in: 0...context) {
      maxTokens = asked
    }
    var options = GenerationOptions(
      maxTokens: maxTokens, sampling: sampling, samples: n, seed: seed, stopTokens: stops,
      vocabularyLimit: min(tokenizer.vocabularySize, model.config.vocabSize), thinkingBudget: budget)
    options.logprobs = logprobs
    return Parsed(
      request: ServingRequest(prompt: prompt, options: options, stopStrings: stopStrings), stream: stream, includeUsage: includeUsage,
      splitsThinking: splitsThinking, promptOpensThinking: promptOpensThinking)
  }

  // MARK: Replies

  private static func finishReason(_ finish: FinishReason) -> String {
    switch finish {
    case .eos: "stop"
    case .length: "length"
    case .budget: "budget"
    }
  }

  private func usage(_ outcome: ServingOutcome) -> [String: Any] {
    let completion = outcome.samples.reduce(0) { $0 + $1.tokens.count }
    return [
      "prompt_tokens": outcome.promptTokens, "completion_tokens": completion, "total_tokens": outcome.promptTokens + completion,
      "thinking_tokens": outcome.samples.reduce(0) { $0 + $1.thinkingTokens },
    ]
  }

  /// The thinking and the answer of a sample's text.
  private func split(_ text: String, parsed: Parsed) -> (thinking: String?, answer: String) {
    guard parsed.splitsThinking, let tags = engine.tokenizer.thinkingTags else { return (nil, text) }
    // A reply thinks when the prompt opened the thinking or the reply opens it; a model with the
    // tags in its vocabulary may not think at all (Qwen3-2507 Instruct).
    let opens = parsed.promptOpensThinking || text.drop { $0.isWhitespace }.hasPrefix(tags.open)
    guard opens || text.contains(tags.close) else { return (nil, text) }
    let (thinking, answer) = ThinkingSplit.split(text, open: tags.open, close: tags.close)
    guard let answer else { return (thinking, "") }
    return (thinking, answer)
  }

  private func completion(_ outcome: ServingOutcome, id: String, created: Int, parsed: Parsed, chat: Bool) -> [String: Any] {
    let choices: [[String: Any]] = outcome.samples.enumerated().map { index, sample in
      if chat {
        let (thinking, answer) = split(sample.text, parsed: parsed)
        var message: [String: Any] = ["role": "assistant", "content": answer]
        if let thinking { message["reasoning_content"] = thinking }
        var choice: [String: Any] = ["index": index, "message": message, "finish_reason": Self.finishReason(sample.finish)]
        if parsed.request.options.logprobs != nil { choice["logprobs"] = chatLogprobs(sample.replyTokens) }
        return choice
      }
      let logprobs: Any = parsed.request.options.logprobs == nil ? NSNull() : completionLogprobs(sample.replyTokens)
      return ["index": index, "text": sample.text, "logprobs": logprobs, "finish_reason": Self.finishReason(sample.finish)]
    }
    return [
      "id": id, "object": chat ? "chat.completion" : "text_completion", "created": created, "model": modelName, "choices": choices,
      "usage": usage(outcome),
    ]
  }

  // MARK: Log-probabilities

  /// A token's text: its bytes as UTF-8 (a token holding part of a character shows U+FFFD).
  private func tokenText(_ token: Int) -> (text: String, bytes: [UInt8]) {
    let bytes = (try? engine.tokenizer.bytes(of: [token])) ?? []
    return (String(decoding: bytes, as: UTF8.self), bytes)
  }

  /// JSON has no infinities: a token the model rules out gets vLLM's −9999.
  private static func finite(_ logprob: Float) -> Double { logprob.isFinite ? Double(logprob) : -9999 }

  /// The completions API's `logprobs` object for some tokens of a reply (`text_offset` in
  /// Unicode scalars, as Python indexes strings). Tokens the budget inserted have a null
  /// log-probability.
  private func completionLogprobs(_ entries: [ReplyToken]) -> [String: Any] {
    var tokens: [String] = []
    var tokenLogprobs: [Any] = []
    var top: [Any] = []
    var offsets: [Int] = []
    for entry in entries {
      tokens.append(tokenText(entry.token).text)
      offsets.append(entry.textOffset)
      tokenLogprobs.append(entry.logprobs.map { Self.finite($0.logprob) } ?? NSNull())
      top.append(
        entry.logprobs.map { logprobs in
          Dictionary(logprobs.alternatives.map { (tokenText($0.token).text, Self.finite($0.logprob)) }, uniquingKeysWith: { first, _ in first })
        } ?? NSNull())
    }
    return ["tokens": tokens, "token_logprobs": tokenLogprobs, "top_logprobs": top, "text_offset": offsets]
  }

  /// The chat API's `logprobs` object (`content`: token, logprob, bytes, top_logprobs) for the
  /// drawn tokens of a reply, thinking included; tokens the budget inserted are left out.
  private func chatLogprobs(_ entries: [ReplyToken]) -> [String: Any] {
    func item(_ token: Int, _ logprob: Float) -> [String: Any] {
      let (text, bytes) = tokenText(token)
      return ["token": text, "logprob": Self.finite(logprob), "bytes": bytes.map(Int.init)]
    }
    let content = entries.compactMap { entry -> [String: Any]? in
      guard let logprobs = entry.logprobs else { return nil }
      var drawn = item(entry.token, logprobs.logprob)
      drawn["top_logprobs"] = logprobs.alternatives.map { item($0.token, $0.logprob) }
      return drawn
    }
    return ["content": content]
  }

  /// Server-sent events: a chunk per piece of text (chat: `reasoning_content` while thinking,
  /// `content` after), a last chunk per choice with its `finish_reason`, `[DONE]`.
  private func stream(
    _ submitted: (id: Int, events: AsyncStream<ServingEvent>), id: String, created: Int, parsed: Parsed, chat: Bool
  ) -> Response {
    let engine = self.engine
    let tags = parsed.splitsThinking ? engine.tokenizer.thinkingTags : nil
    let n = parsed.request.options.samples
    let object = chat ? "chat.completion.chunk" : "text_completion"
    let model = modelName
    let wantsLogprobs = parsed.request.options.logprobs != nil
    let body = ResponseBody { writer in
      func send(_ value: Any) async throws {
        let data = (try? JSONSerialization.data(withJSONObject: value)) ?? Data("{}".utf8)
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
        try await writer.write(buffer)
      }
      // Log-probabilities of tokens whose text has not gone out yet (held back, or dropped
      // whitespace), per choice; they ride on the choice's next chunk.
      var pendingLogprobs = Array(repeating: [ReplyToken](), count: n)
      func chunk(_ index: Int, _ payload: [String: Any], finish: String?) -> [String: Any] {
        var choice = payload
        choice["index"] = index
        choice["finish_reason"] = finish ?? NSNull()
        if wantsLogprobs && !pendingLogprobs[index].isEmpty {
          choice["logprobs"] =
            chat ? self.chatLogprobs(pendingLogprobs[index]) : self.completionLogprobs(pendingLogprobs[index])
          pendingLogprobs[index] = []
        } else if !chat {
          choice["logprobs"] = NSNull()
        }
        return ["id": id, "object": object, "created": created, "model": model, "choices": [choice]]
      }
      // Per choice: whether its reply is known to think (decided on its first text), whether the
      // thinking has closed, and whether the answer has started.
      var decided = Array(repeating: tags == nil, count: n)
      var answering = Array(repeating: tags == nil, count: n)
      // The answer's leading newlines are dropped, as the non-streamed reply drops them.
      var answered = Array(repeating: tags == nil, count: n)
      do {
        if chat {
          for index in 0..<n { try await send(chunk(index, ["delta": ["role": "assistant", "content": ""]], finish: nil)) }
        }
        for await event in submitted.events {
          switch event {
          case .text(let sample, _, let text, let reply):
            if let reply { pendingLogprobs[sample].append(reply) }
            guard !text.isEmpty else { continue }
            guard chat else {
              try await send(chunk(sample, ["text": text], finish: nil))
              continue
            }
            var piece = text
            var reasoning = ""
            if let tags, !decided[sample] {
              let leading = piece.drop { $0.isWhitespace }
              if leading.isEmpty { continue }
              decided[sample] = true
              if leading.hasPrefix(tags.open) {
                piece = String(leading.dropFirst(tags.open.count))
              } else if !parsed.promptOpensThinking {
                answering[sample] = true
              }
            }
            if let tags, !answering[sample] {
              // The closing tag is one token, so it arrives within one piece.
              if let close = piece.range(of: tags.close) {
                answering[sample] = true
                reasoning = String(piece[..<close.lowerBound])
                piece = String(piece[close.upperBound...])
              } else {
                reasoning = piece
                piece = ""
              }
            }
            if !answered[sample] && answering[sample] {
              piece = String(piece.drop { $0 == "\n" })
              answered[sample] = !piece.isEmpty
            }
            if !reasoning.isEmpty { try await send(chunk(sample, ["delta": ["reasoning_content": reasoning]], finish: nil)) }
            if !piece.isEmpty { try await send(chunk(sample, ["delta": ["content": piece]], finish: nil)) }
          case .failed(let error):
            try await send(["error": ["message": error.description, "type": Self.errorType(error), "param": NSNull(), "code": NSNull()]])
          case .finished(let outcome):
            for (index, sample) in outcome.samples.enumerated() {
              try await send(chunk(index, chat ? ["delta": [String: Any]()] : ["text": ""], finish: Self.finishReason(sample.finish)))
            }
            if parsed.includeUsage {
              try await send(["id": id, "object": object, "created": created, "model": model, "choices": [Any](), "usage": self.usage(outcome)])
            }
          }
        }
        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
        try await writer.finish(nil)
      } catch {
        // The client went away: its samples stop decoding at once.
        engine.cancel(submitted.id)
        throw error
      }
    }
    return Response(
      status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
  }

  // MARK: JSON

  static func json(_ value: Any, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
  }

  static func error(_ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error") -> Response {
    json(["error": ["message": message, "type": type, "param": NSNull(), "code": NSNull()]], status: status)
  }

  static func errorType(_ error: ServingError) -> String {
    switch error {
    case .invalid: "invalid_request_error"
    case .unavailable: "service_unavailable"
    case .failed: "server_error"
    }
  }

  static func error(_ error: ServingError) -> Response {
    let status: HTTPResponse.Status =
      switch error {
      case .invalid: .badRequest
      case .unavailable: .serviceUnavailable
      case .failed: .internalServerError
      }
    return Self.error(status, error.description, type: errorType(error))
  }
}

/// Stops the engine when the service group shuts down.
struct EngineShutdown: Service {
  let engine: ServingEngine

  func run() async throws {
    try? await gracefulShutdown()
    engine.stop()
  }
}

/// Closes a connection whose client closed its side: Hummingbird allows half-closed connections,
/// so a client that hangs up while its reply is generated would otherwise be noticed only when
/// the reply is written. Closing fires the channel's `closeFuture`, which cancels the request.
final class ClosingOnHangUp: ChannelInboundHandler, RemovableChannelHandler, Sendable {
  typealias InboundIn = NIOAny

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    context.fireChannelRead(data)
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let event = event as? ChannelEvent, event == .inputClosed {
      context.close(promise: nil)
      return
    }
    context.fireUserInboundEventTriggered(event)
  }
}

/// Hummingbird's request context plus the connection, so that a request whose client hangs up
/// is cancelled.
struct ConnectionContext: RequestContext {
  var coreContext: CoreRequestContextStorage
  let channel: any Channel

  init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    channel = source.channel
  }
}

/// Typed reads of a request's JSON fields: absent or null is nil; a wrong type or range is a 400.
struct Fields {
  let root: [String: Any]

  init(_ root: [String: Any]) { self.root = root }

  private func value(_ name: String) -> Any? {
    guard let value = root[name], !(value is NSNull) else { return nil }
    return value
  }

  /// JSON `true`/`false` (JSONSerialization's NSNumber of type "c").
  static func isBoolean(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }

  static func isInteger(_ value: Any) -> Bool {
    guard let number = value as? NSNumber, !isBoolean(number) else { return false }
    return number.doubleValue.rounded() == number.doubleValue && abs(number.doubleValue) < 9e15
  }

  func string(_ name: String) throws(ServingError) -> String? {
    guard let value = value(name) else { return nil }
    guard let text = value as? String else { throw .invalid("\"\(name)\" must be a string") }
    return text
  }

  func bool(_ name: String) throws(ServingError) -> Bool? {
    guard let value = value(name) else { return nil }
    guard let number = value as? NSNumber, Self.isBoolean(number) else { throw .invalid("\"\(name)\" must be true or false") }
    return number.boolValue
  }

  func number(_ name: String, in range: ClosedRange<Double>) throws(ServingError) -> Double? {
    guard let value = value(name) else { return nil }
    guard let number = value as? NSNumber, !Self.isBoolean(number), number.doubleValue.isFinite,
      range.contains(number.doubleValue)
    else { throw .invalid("\"\(name)\" must be a number in \(range.lowerBound)...\(range.upperBound)") }
    return number.doubleValue
  }

  func integer(_ name: String, in range: ClosedRange<Int>) throws(ServingError) -> Int? {
    guard let value = value(name) else { return nil }
    guard let number = value as? NSNumber, !Self.isBoolean(number), number.doubleValue.rounded() == number.doubleValue,
      abs(number.doubleValue) < 9e15, range.contains(number.intValue)
    else { throw .invalid("\"\(name)\" must be an integer in \(range.lowerBound)...\(range.upperBound)") }
    return number.intValue
  }
}
