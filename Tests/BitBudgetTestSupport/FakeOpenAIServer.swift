import Foundation

/// `Tests/Fixtures/remote/fake_openai_server.py` run as a child process: a real HTTP server on
/// loopback that plays a scripted reasoning model behind `/v1/completions` (see the script for
/// its script and fault words). Stops when `stop()` closes its stdin or the object goes away.
public final class FakeOpenAIServer: @unchecked Sendable {
  public let port: Int
  /// Every request, one JSON object per line.
  public let logPath: String
  private let process: Process
  private let input: Pipe

  public var baseURL: String { "http://127.0.0.1:\(port)/v1" }

  public init(log: String, model: String = "fake-qwen3") throws {
    let script = (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/remote/fake_openai_server.py")
    process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script, "--log", log, "--model", model]
    input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    // The first line is the port.
    var line = Data()
    while true {
      let byte = output.fileHandleForReading.readData(ofLength: 1)
      if byte.isEmpty || byte == Data("\n".utf8) { break }
      line.append(byte)
    }
    guard let port = Int(String(decoding: line, as: UTF8.self)) else {
      process.terminate()
      throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "the fake server did not print its port"])
    }
    self.port = port
    logPath = log
  }

  /// The logged requests.
  public func requests() -> [[String: Any]] {
    guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap {
      (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
    }
  }

  public func stop() {
    try? input.fileHandleForWriting.close()
    process.waitUntilExit()
  }

  deinit {
    if process.isRunning { process.terminate() }
  }
}
