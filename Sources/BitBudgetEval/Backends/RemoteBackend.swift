import Foundation

/// An OpenAI-compatible completions server (vLLM, SGLang, llama.cpp's `llama-server`, …) serving
/// one model, possibly as several replicas: the samples of a scenario are spread over all
/// `endpoints`, each with at most `concurrency` requests in flight.
public struct RemoteBackend: Sendable, Hashable, Codable {
  /// Base URLs up to and including `/v1` (`http://node1:8000/v1`); `/completions` is appended.
  public var endpoints: [URL]
  /// The served model's name, sent as `model` in every request.
  public var model: String
  /// Requests in flight per endpoint.
  public var concurrency: Int
  /// Seconds one request may take, connection included, before it is retried.
  public var timeoutSeconds: Double
  /// Retries of a failed request (timeouts, connection errors, HTTP 408/429/5xx) before the sample
  /// is recorded as an error; waits 0.5 s · 2^attempt (at most 30 s) in between.
  public var retries: Int
  /// Sent as `Authorization: Bearer …` when set.
  public var apiKey: String?

  public static let defaultConcurrency = 8
  public static let defaultTimeoutSeconds = 1800.0
  public static let defaultRetries = 4

  /// Checks the endpoints (http or https, with a host) and limits.
  public init(
    endpoints: [String], model: String, concurrency: Int = defaultConcurrency, timeoutSeconds: Double = defaultTimeoutSeconds,
    retries: Int = defaultRetries, apiKey: String? = nil
  ) throws {
    guard !endpoints.isEmpty else { throw EvalError.invalidInput("a remote backend needs at least one endpoint URL") }
    self.endpoints = try endpoints.map { text in
      let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
      guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
        let host = url.host, !host.isEmpty
      else {
        throw EvalError.invalidInput("endpoint \"\(text)\" is not an http(s) URL such as http://127.0.0.1:8000/v1")
      }
      return url
    }
    guard !model.isEmpty else { throw EvalError.invalidInput("a remote backend needs the served model's name") }
    guard (1...1024).contains(concurrency) else { throw EvalError.invalidInput("concurrency must be in 1...1024, found \(concurrency)") }
    guard timeoutSeconds >= 0.001, timeoutSeconds <= 86_400 else {
      throw EvalError.invalidInput("the request timeout must be in 0.001...86400 seconds, found \(timeoutSeconds)")
    }
    guard (0...100).contains(retries) else { throw EvalError.invalidInput("retries must be in 0...100, found \(retries)") }
    self.model = model
    self.concurrency = concurrency
    self.timeoutSeconds = timeoutSeconds
    self.retries = retries
    self.apiKey = apiKey
  }

  /// What a scenario records as its backend: the served model, not the endpoints, so that the
  /// same model served from other nodes resumes the same scenario.
  public var scenarioLabel: String { "openai:\(model)" }
}
