import BitBudgetEval
import BitBudgetTestSupport
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Hostile or careless use of the command line: arguments, output paths, grids and databases
/// that used to be mishandled. Each case names the behaviour it pins down.
@Suite struct HardeningTests {
  static func oneLineError(_ result: CLITests.Run, mentioning phrase: String) {
    #expect(result.status == 1, "\(result.stderr)")
    #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(phrase), "\(result.stderr)")
    #expect(result.stderr.split(separator: "\n").count == 1, "not one line: \(result.stderr)")
  }

  /// `--max-tokens -5` reaches the option's own range check instead of "Missing value".
  @Test(arguments: [
    (["generate", "--model", CLITests.model, "--ids", "1", "--greedy", "--max-tokens", "-5"], "--max-tokens"),
    (["bench", "--model", CLITests.model, "--threads", "-2"], "--threads"),
    (["generate", "--model", CLITests.model, "--ids", "1", "--temperature", "-0.5"], "--temperature must be a number ≥ 0"),
  ])
  func negativeNumbersReachTheRangeCheck(arguments: [String], phrase: String) throws {
    let result = try CLITests.run(arguments)
    Self.oneLineError(result, mentioning: phrase)
    #expect(!result.stderr.contains("Missing value"), "\(result.stderr)")
  }

  /// A prompt that is not UTF-8 is refused rather than generated from with U+FFFD in it. (Process
  /// takes Swift strings, so the bytes go through a shell.)
  @Test func argumentsThatAreNotUTF8AreRefused() throws {
    let executable = try #require(CLITests.executable)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = [
      "-c", #"exec "$0" generate --model "$1" --prompt "$(printf 'caf\351')" --max-tokens 1 --greedy"#, executable, CLITests.model,
    ]
    let err = Pipe()
    process.standardError = err
    process.standardOutput = Pipe()
    try process.run()
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 1)
    #expect(stderr.contains("argument 5 (after --prompt) is not valid UTF-8"), "\(stderr)")
  }

  /// Copies a model folder whose files are then watched for change.
  static func copyOfModel(_ name: String, to path: String) throws -> [String: Data] {
    try FileManager.default.copyItem(atPath: Fixtures.modelPath(name), toPath: path)
    var contents: [String: Data] = [:]
    for file in try FileManager.default.contentsOfDirectory(atPath: path) {
      contents[file] = try Data(contentsOf: URL(fileURLWithPath: path).appendingPathComponent(file))
    }
    return contents
  }

  static func unchanged(_ path: String, _ contents: [String: Data]) throws -> Bool {
    for (file, data) in contents where try Data(contentsOf: URL(fileURLWithPath: path).appendingPathComponent(file)) != data { return false }
    return Set(try FileManager.default.contentsOfDirectory(atPath: path)) == Set(contents.keys)
  }

  /// `--out MISSING/../EXISTING` used to create MISSING and then overwrite EXISTING (even the input
  /// model) without --overwrite. Now the path is resolved first, nothing is created, and the input
  /// is never a target, --overwrite or not; an occupied folder is refused before quantizing.
  @Test func outputsCannotClobberExistingFilesOrTheInput() throws {
    let directory = try Fixtures.temporaryDirectory("clobber")
    defer { try? FileManager.default.removeItem(at: directory) }
    let input = directory.appendingPathComponent("input").path
    let inputFiles = try Self.copyOfModel("qwen3-mha-untied-bf16", to: input)
    let existing = directory.appendingPathComponent("existing").path
    let existingFiles = try Self.copyOfModel("qwen3-gqa-tied-f32", to: existing)
    let missing = directory.appendingPathComponent("missing").path
    let quantize = ["quantize", "--model", input, "--method", "rtn", "--weights", "4", "--out"]

    Self.oneLineError(try CLITests.run(quantize + [missing + "/../existing"]), mentioning: "does not exist")
    #expect(!FileManager.default.fileExists(atPath: missing))
    #expect(try Self.unchanged(existing, existingFiles))

    // Into a folder that holds a model: refused before any layer is quantized.
    let occupied = try CLITests.run(quantize + [existing])
    Self.oneLineError(occupied, mentioning: "--overwrite")
    #expect(!occupied.stderr.contains("layer"))
    #expect(try Self.unchanged(existing, existingFiles))

    // The input itself, by any name, even with --overwrite.
    for out in [input, directory.path + "/existing/../input", input + "/."] {
      Self.oneLineError(try CLITests.run(quantize + [out, "--overwrite"]), mentioning: "input")
    }
    #expect(try Self.unchanged(input, inputFiles))

    let gguf = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    Self.oneLineError(try CLITests.run(["convert", "--model", gguf, "--out", missing + "/../existing"]), mentioning: "does not exist")
    #expect(!FileManager.default.fileExists(atPath: missing))
    #expect(try Self.unchanged(existing, existingFiles))

    // A file of the output that is a link is not written through.
    let linked = directory.appendingPathComponent("linked").path
    try FileManager.default.createDirectory(atPath: linked, withIntermediateDirectories: false)
    try FileManager.default.createSymbolicLink(
      atPath: linked + "/config.json", withDestinationPath: existing + "/config.json")
    Self.oneLineError(try CLITests.run(quantize + [linked, "--overwrite"]), mentioning: "symbolic link")
    #expect(try Self.unchanged(existing, existingFiles))
  }

  /// `frontier --html` writes regular files only: a link, a FIFO or the database itself are
  /// refused and left as they were.
  @Test func reportsAreWrittenOnlyToRegularFiles() throws {
    let directory = try Fixtures.temporaryDirectory("report-targets")
    defer { try? FileManager.default.removeItem(at: directory) }
    let db = directory.appendingPathComponent("results.sqlite").path
    try Self.smallDatabase(at: db)
    let dbBytes = try Data(contentsOf: URL(fileURLWithPath: db))
    let victim = directory.appendingPathComponent("victim.txt").path
    try "keep me".write(toFile: victim, atomically: true, encoding: .utf8)
    let link = directory.appendingPathComponent("report-link.html").path
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: victim)
    let fifo = directory.appendingPathComponent("report.fifo").path
    #expect(mkfifo(fifo, 0o600) == 0)

    Self.oneLineError(try CLITests.run(["frontier", "--db", db, "--html", link]), mentioning: "symbolic link")
    #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
    #expect(OutputType.of(link) == .typeSymbolicLink)
    Self.oneLineError(try CLITests.run(["frontier", "--db", db, "--html", fifo]), mentioning: "FIFO")
    #expect(OutputType.of(fifo) != .typeRegular)
    Self.oneLineError(try CLITests.run(["frontier", "--db", db, "--html", db]), mentioning: "input")
    #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == dbBytes)
    let report = directory.appendingPathComponent("report.html").path
    let written = try CLITests.run(["frontier", "--db", db, "--html", report])
    #expect(written.status == 0, "\(written.stderr)")
    #expect(try String(contentsOfFile: report, encoding: .utf8).contains("<svg"))
  }

  enum OutputType {
    static func of(_ path: String) -> FileAttributeType? {
      (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
    }
  }

  /// A results database with one scored local scenario.
  static func smallDatabase(at path: String) throws {
    let store = try ResultStore(path: path)
    let scenario = Scenario(
      task: "arith.jsonl", model: "qwen3-0.6b", weightBits: 16, kv: "full", thinkingBudget: 100, maxTokens: 200, samples: 2,
      parallel: 1, temperature: 0.6, topP: 0.95, topK: 20, seed: 0)
    try store.register(scenario)
    try store.record((0..<2).map { i in
      SampleRecord(
        scenarioKey: scenario.key, questionId: "q\(i)", sampleIndex: 0, output: "", tokens: 10, thinkingTokens: 5, finish: "eos",
        answer: "1", correct: i == 0, seconds: 1)
    })
    try store.recordRun(scenario.key, estimatedBytes: 1 << 30, peakRssBytes: nil)
  }

  /// `frontier` and `plan` only read: they work on a database the user cannot write. Run as an
  /// unprivileged user (root ignores file modes), on a copy of the binary it can execute.
  @Test func readersWorkOnADatabaseTheUserCannotWrite() throws {
    guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
      // Not root: the file modes below bind this user too, so run directly.
      return try readOnlyCheck(prefix: [])
    }
    try readOnlyCheck(prefix: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
  }

  func readOnlyCheck(prefix: [String]) throws {
    let directory = try Fixtures.temporaryDirectory("readonly-db")
    defer {
      chmod(directory.path, 0o755)
      try? FileManager.default.removeItem(at: directory)
    }
    let db = directory.appendingPathComponent("results.sqlite").path
    try Self.smallDatabase(at: db)
    let binary = directory.appendingPathComponent("bitbudget").path
    try FileManager.default.copyItem(atPath: try #require(CLITests.executable), toPath: binary)
    chmod(binary, 0o755)
    chmod(db, 0o444)
    chmod(directory.path, 0o555)  // no -wal or -shm can be created beside it either
    for command in [["frontier", "--db", db, "--json"], ["plan", "--memory", "4GiB", "--db", db, "--json"]] {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: prefix.first ?? binary)
      process.arguments = Array(prefix.dropFirst()) + (prefix.isEmpty ? [] : [binary]) + command
      let out = Pipe(), err = Pipe()
      process.standardOutput = out
      process.standardError = err
      try process.run()
      let stdout = out.fileHandleForReading.readDataToEndOfFile()
      let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      process.waitUntilExit()
      #expect(process.terminationStatus == 0, "\(command[0]): \(stderr)")
      #expect((try? JSONSerialization.jsonObject(with: stdout)) is [String: Any], "\(command[0]): \(stderr)")
    }
  }

  /// A grid too large to mean is refused at once with its size, before anything is validated or
  /// run; the limit is a flag.
  @Test func runawayGridsAreRefusedWithTheirSize() throws {
    let directory = try Fixtures.temporaryDirectory("big-grid")
    defer { try? FileManager.default.removeItem(at: directory) }
    let grid = directory.appendingPathComponent("grid.yaml").path
    try """
      model: qwen3-0.6b
      task: none.jsonl
      thinking_budget: [\((1...200).map(String.init).joined(separator: ", "))]
      seed: [\((0..<100).map(String.init).joined(separator: ", "))]
      """.write(toFile: grid, atomically: true, encoding: .utf8)
    let began = Date()
    let refused = try CLITests.run(["sweep", grid, "--db", directory.appendingPathComponent("r.sqlite").path])
    Self.oneLineError(refused, mentioning: "20000 scenarios (thinking_budget 200 × seed 100)")
    #expect(refused.stderr.contains("--max-scenarios"))
    #expect(Date().timeIntervalSince(began) < 20)
    // Raised, the grid is read on (and stops at its missing task file).
    let raised = try CLITests.run(["sweep", grid, "--db", directory.appendingPathComponent("r.sqlite").path, "--max-scenarios", "30000"])
    Self.oneLineError(raised, mentioning: "none.jsonl")
  }
}
