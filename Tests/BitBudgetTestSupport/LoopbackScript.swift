import Foundation

/// A Python test server (a script under Tests/Fixtures) run as a child process on loopback: its
/// first line of output is its port; it stops when its stdin closes (`stop()`) or this object goes
/// away.
public final class LoopbackScript: @unchecked Sendable {
  public let port: Int
  private let process: Process
  private let input: Pipe

  public init(script relativePath: String, arguments: [String], environment: [String: String]? = nil) throws {
    let script = (Fixtures.repositoryRoot as NSString).appendingPathComponent(relativePath)
    process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script] + arguments
    if let environment { process.environment = environment }
    input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    var line = Data()
    while true {
      let byte = output.fileHandleForReading.readData(ofLength: 1)
      if byte.isEmpty || byte == Data("\n".utf8) { break }
      line.append(byte)
    }
    guard let port = Int(String(decoding: line, as: UTF8.self)) else {
      process.terminate()
      throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "\(relativePath) did not print its port"])
    }
    self.port = port
  }

  public func stop() {
    try? input.fileHandleForWriting.close()
    process.waitUntilExit()
  }

  deinit {
    if process.isRunning { process.terminate() }
  }
}

/// Reads a log of JSON lines (one object per request).
public func jsonLines(_ path: String) -> [[String: Any]] {
  guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
  return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
}
