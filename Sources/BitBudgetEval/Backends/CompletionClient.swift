import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One `/v1/completions` request: a raw prompt (the chat template is applied by the caller, so
/// budget forcing can continue a prompt that ends inside the thinking).
public struct CompletionRequest: Sendable, Equatable {
  public var prompt: String
  public var maxTokens: Int
  public var temperature: Double
  public var topP: Double
  /// 0: no top-k (sent as -1).
  public var topK: Int
  public var seed: UInt64
  /// Texts that end the completion (sent as `stop`; servers leave them out of the text).
  public var stop: [String]

  public init(prompt: String, maxTokens: Int, temperature: Double, topP: Double, topK: Int, seed: UInt64, stop: [String] = []) {
    self.prompt = prompt
    self.stop = stop
    self.maxTokens = maxTokens
    self.temperature = temperature
    self.topP = topP
    self.topK = topK
    self.seed = seed
  }
}

/// A server's answer to one request.
public struct Completion: Sendable, Equatable {
  public var text: String
  /// `stop` (end of sequence or a stop string) or `length` (`max_tokens` reached).
  public var finishReason: String
  /// `usage.completion_tokens`, when the server reports it.
  public var completionTokens: Int?
}

/// Why a request failed after its retries.
public enum RemoteError: Error, Sendable, CustomStringConvertible {
  case http(status: Int, endpoint: String, message: String)
  case transport(endpoint: String, message: String)
  case timeout(endpoint: String, seconds: Double)
  case malformedResponse(endpoint: String, reason: String)

  /// Timeouts, connection failures and HTTP 408/429/5xx may pass; a 4xx or a malformed answer
  /// will not.
  var isRetryable: Bool {
    switch self {
    case .http(let status, _, _): status == 408 || status == 429 || status >= 500
    case .transport, .timeout: true
    case .malformedResponse: false
    }
  }

  public var description: String {
    switch self {
    case .http(let status, let endpoint, let message): "\(endpoint) answered HTTP \(status): \(message)"
    case .transport(let endpoint, let message): "cannot reach \(endpoint): \(message)"
    case .timeout(let endpoint, let seconds): "\(endpoint) did not answer within \(seconds) s"
    case .malformedResponse(let endpoint, let reason): "\(endpoint) sent a malformed completion: \(reason)"
    }
  }
}

/// Sends completions to the endpoints of a `RemoteBackend` over one AsyncHTTPClient (a connection
/// pool of `concurrency` connections per endpoint). Call `shutdown()` when done.
public final class CompletionClient: Sendable {
  public let backend: RemoteBackend
  let http: HTTPClient
  /// Largest response body accepted (a completion of 128k tokens is ~1 MB).
  static let maxResponseBytes = 64 << 20
  /// Largest token count believed from a server (no request asks for more than 2²⁴ tokens).
  static let maxCompletionTokens = 1 << 24

  public init(backend: RemoteBackend) {
    self.backend = backend
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: backend.concurrency)
    // AsyncHTTPClient retries failed connection attempts itself until the connect timeout. Half
    // the request timeout, so an endpoint nobody listens on is reported as unreachable rather
    // than lost in the whole-exchange timeout that starts at the same moment.
    configuration.timeout = .init(connect: .milliseconds(max(1, Int64(min(10, backend.timeoutSeconds / 2) * 1000))))
    http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
  }

  public func shutdown() async {
    try? await http.shutdown()
  }

  /// One completion from `endpoint`, retried with exponential backoff while the failure may pass.
  public func complete(_ request: CompletionRequest, endpoint: URL) async throws -> Completion {
    var attempt = 0
    while true {
      do {
        return try await send(request, endpoint: endpoint)
      } catch let error as RemoteError where error.isRetryable && attempt < backend.retries {
        let delay = min(30, 0.5 * pow(2, Double(attempt)))
        attempt += 1
        try await Task.sleep(nanoseconds: UInt64(delay * 1e9))
      }
    }
  }

  func send(_ request: CompletionRequest, endpoint: URL) async throws -> Completion {
    let url = endpoint.appendingPathComponent("completions").absoluteString
    var body: [String: Any] = [
      "model": backend.model, "prompt": request.prompt, "max_tokens": request.maxTokens, "temperature": request.temperature,
      "top_p": request.topP, "seed": request.seed, "n": 1, "stream": false,
    ]
    // 0 (no top-k, as locally) is sent as -1: vLLM and SGLang take -1 for "disabled", llama.cpp
    // any k ≤ 0; leaving it out would apply the server's default (llama-server: 40).
    body["top_k"] = request.topK > 0 ? request.topK : -1
    if !request.stop.isEmpty { body["stop"] = request.stop }
    var http = HTTPClientRequest(url: url)
    http.method = .POST
    http.headers.add(name: "Content-Type", value: "application/json")
    if let key = backend.apiKey { http.headers.add(name: "Authorization", value: "Bearer \(key)") }
    let data = try JSONSerialization.data(withJSONObject: body)
    http.body = .bytes(ByteBuffer(bytes: data))
    let status: Int
    let bytes: ByteBuffer
    let client = self.http
    let exchange = http
    let timeout = TimeAmount.milliseconds(Int64(backend.timeoutSeconds * 1000))
    do {
      // The timeout bounds the whole exchange, body included: AsyncHTTPClient's deadline ends
      // at the response head, so a server that announces more bytes than it sends, or trickles
      // them, would otherwise hold the sample (and the sweep) forever.
      (status, bytes) = try await Self.within(seconds: backend.timeoutSeconds, endpoint: endpoint) {
        let response = try await client.execute(exchange, timeout: timeout)
        return (Int(response.status.code), try await response.body.collect(upTo: Self.maxResponseBytes))
      }
    } catch let error as RemoteError {
      throw error
    } catch let error as HTTPClientError where error == .cancelled {
      throw CancellationError()
    } catch is CancellationError {
      throw CancellationError()
    } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
      throw RemoteError.timeout(endpoint: endpoint.absoluteString, seconds: backend.timeoutSeconds)
    } catch let error as NIOTooManyBytesError {
      throw RemoteError.malformedResponse(endpoint: endpoint.absoluteString, reason: "body larger than \(error.maxBytes ?? Self.maxResponseBytes) bytes")
    } catch {
      throw RemoteError.transport(endpoint: endpoint.absoluteString, message: String(describing: error))
    }
    let text = String(buffer: bytes)
    guard (200..<300).contains(status) else {
      throw RemoteError.http(status: status, endpoint: endpoint.absoluteString, message: Self.errorMessage(text))
    }
    return try Self.decode(text, endpoint: endpoint.absoluteString)
  }

  /// `body`'s result, or `RemoteError.timeout` once `seconds` have passed. The answer does not
  /// wait for `body` to end: it is cancelled (which closes its connection when AsyncHTTPClient
  /// notices), but a body stream that does not notice at once must not hold the sample — it did,
  /// for as long as a server kept trickling bytes.
  static func within<T: Sendable>(
    seconds: Double, endpoint: URL, _ body: @escaping @Sendable () async throws -> T
  ) async throws -> T {
    let race = FirstResult<T>()
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        race.start(
          continuation,
          work: Task {
            do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
          },
          timer: Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            race.finish(.failure(RemoteError.timeout(endpoint: endpoint.absoluteString, seconds: seconds)))
          })
      }
    } onCancel: {
      race.finish(.failure(CancellationError()))
    }
  }

  /// The `error.message` of an OpenAI-style error body, else its first 200 characters.
  static func errorMessage(_ body: String) -> String {
    if let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] {
      if let error = object["error"] as? [String: Any], let message = error["message"] as? String { return message }
      if let message = object["message"] as? String { return message }
    }
    let line = body.replacingOccurrences(of: "\n", with: " ")
    return line.count > 200 ? String(line.prefix(200)) + "…" : line
  }

  /// `choices[0].text`, `choices[0].finish_reason` and `usage.completion_tokens` of a response.
  static func decode(_ body: String, endpoint: String) throws -> Completion {
    func fail(_ reason: String) -> RemoteError { .malformedResponse(endpoint: endpoint, reason: reason) }
    guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
      throw fail("the body is not a JSON object (starts with \"\(body.prefix(40))\")")
    }
    guard let choices = object["choices"] as? [Any], let choice = choices.first as? [String: Any] else {
      throw fail("no \"choices\"")
    }
    guard let text = choice["text"] as? String else { throw fail("choices[0] has no \"text\" string") }
    guard let finish = choice["finish_reason"] as? String else { throw fail("choices[0] has no \"finish_reason\"") }
    let usage = object["usage"] as? [String: Any]
    var tokens: Int?
    if let raw = usage?["completion_tokens"], !(raw is NSNull) {
      // Exact non-negative integers only: `intValue` of 1e300 or true would be garbage or 1.
      guard let number = raw as? NSNumber, String(cString: number.objCType) != "c", let count = Int(exactly: number.doubleValue),
        count >= 0, count <= Self.maxCompletionTokens
      else { throw fail("usage.completion_tokens must be an integer in 0...\(Self.maxCompletionTokens), found \(raw)") }
      tokens = count
    }
    return Completion(text: text, finishReason: finish, completionTokens: tokens)
  }
}

/// Resumes a continuation with whichever result comes first (the work's or the timer's), then
/// cancels both tasks.
final class FirstResult<T: Sendable>: @unchecked Sendable {
  private let lock = NSLock()
  private var continuation: CheckedContinuation<T, Error>?
  private var pending: Result<T, Error>?
  private var tasks: [Task<Void, Never>] = []

  func start(_ continuation: CheckedContinuation<T, Error>, work: Task<Void, Never>, timer: Task<Void, Never>) {
    lock.lock()
    if let pending {
      lock.unlock()
      work.cancel()
      timer.cancel()
      continuation.resume(with: pending)
      return
    }
    self.continuation = continuation
    tasks = [work, timer]
    lock.unlock()
  }

  func finish(_ result: Result<T, Error>) {
    lock.lock()
    guard pending == nil else {
      lock.unlock()
      return
    }
    pending = result
    let waiting = continuation
    continuation = nil
    let running = tasks
    lock.unlock()
    for task in running { task.cancel() }
    waiting?.resume(with: result)
  }
}
