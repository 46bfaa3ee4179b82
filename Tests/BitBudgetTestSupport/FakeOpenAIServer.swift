import Foundation

/// `Tests/Fixtures/remote/fake_openai_server.py` run as a child process: a real HTTP server on
/// loopback that plays a scripted reasoning model behind `/v1/completions` (see the script for
/// its script and fault words). Stops when `stop()` closes its stdin or the object goes away.
public final class FakeOpenAIServer: @unchecked Sendable {
  public let port: Int
  /// Every request, one JSON object per line.
  public let logPath: String
  private let server: LoopbackScript

  public var baseURL: String { "http://127.0.0.1:\(port)/v1" }

  public init(log: String, model: String = "fake-qwen3") throws {
    server = try LoopbackScript(script: "Tests/Fixtures/remote/fake_openai_server.py", arguments: ["--log", log, "--model", model])
    port = server.port
    logPath = log
  }

  /// The logged requests.
  public func requests() -> [[String: Any]] { jsonLines(logPath) }

  public func stop() { server.stop() }
}
