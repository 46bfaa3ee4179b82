import BitBudgetTestSupport
import Foundation
import Testing

/// `bitbudget serve` on a free loopback port with the real SmolLM2 GGUF, driven by the official
/// `openai` Python client (Tests/Fixtures/server/openai_client.py) and by raw HTTP for what a
/// client library would not send.
@Suite(.serialized) struct ServeTests {
  static let gguf = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

  /// The server as a child process; stopped when the object goes away.
  final class Server: @unchecked Sendable {
    let process = Process()
    let port: Int
    var base: String { "http://127.0.0.1:\(port)" }

    init(_ arguments: [String], model: String = ServeTests.gguf) throws {
      process.executableURL = URL(fileURLWithPath: try #require(CLITests.executable))
      process.arguments = ["serve", "--model", model, "--port", "0", "--threads", "1"] + arguments
      let output = Pipe()
      process.standardOutput = output
      process.standardError = FileHandle.nullDevice
      try process.run()
      var line = Data()
      while true {
        let byte = output.fileHandleForReading.readData(ofLength: 1)
        if byte.isEmpty || byte == Data("\n".utf8) { break }
        line.append(byte)
      }
      let text = String(decoding: line, as: UTF8.self)
      guard text.hasPrefix("listening on http://127.0.0.1:"), let port = Int(text.split(separator: ":").last ?? "") else {
        process.terminate()
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "serve printed \"\(text)\""])
      }
      self.port = port
    }

    deinit {
      // SIGKILL: a test that failed may leave generations running, which SIGTERM's graceful
      // shutdown would end first.
      kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
    }
  }

  /// One HTTP request; the status and body.
  static func request(_ url: String, method: String = "POST", body: String? = nil, headers: [String: String] = [:]) throws -> (Int, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    var arguments = ["curl", "-s", "-N", "-X", method, "-w", "\n%{http_code}", url]
    if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", body] }
    for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    let status = Int(text.split(separator: "\n").last ?? "") ?? 0
    return (status, String(text.dropLast(String(status).count)).trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// The `openai` client's completions, chat, streaming (with usage), n, stop strings and errors;
  /// six concurrent requests decoded in one batch give what each gives alone; a completion
  /// equals `bitbudget generate`'s with the same seed and sampling.
  @Test func theOpenAIClientWorks() throws {
    let python = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/hub-venv/bin/python")
    try #require(FileManager.default.isExecutableFile(atPath: python), "scripts/fetch-test-assets.sh installs openai")
    let server = try Server(["--max-sequences", "8", "--served-model-name", "smollm2"])
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [
      (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/server/openai_client.py"), server.base + "/v1", "smollm2",
    ]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    let result = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(String(decoding: data, as: UTF8.self))")
    #expect(result["models"] as? [String] == ["smollm2"])
    let completion = try #require(result["completion"] as? [String: Any])
    #expect(completion["finish"] as? String == "length")
    #expect(completion["usage"] as? [Int] == [5, 8, 13])
    let chat = try #require(result["chat"] as? [String: Any])
    let content = try #require(chat["content"] as? String)
    #expect(chat["finish"] as? String == "stop" && chat["role"] as? String == "assistant")
    #expect(!content.isEmpty && !content.contains("<|im_end|>"), "\(content)")
    let stream = try #require(result["stream"] as? [String: Any])
    #expect(stream["content"] as? String == content)
    #expect((stream["chunks"] as? Int ?? 0) > 1 && stream["finish"] as? String == "stop")
    #expect((stream["usage"] as? Int ?? 0) > 0)
    #expect((result["n"] as? [String])?.count == 3)
    let stop = try #require(result["stop"] as? [String: Any])
    #expect(stop["finish"] as? String == "stop" && !(stop["text"] as? String ?? " 6").contains(" 6"), "\(stop)")
    #expect(result["concurrent_equal"] as? Bool == true)
    #expect(
      result["errors"] as? [String: Int] == ["bad_temperature": 400, "bad_n": 400, "too_long": 400, "wrong_model": 400, "too_many_logprobs": 400])

    // Log-probabilities, greedy: each token is its position's most likely, its text is the
    // reply's, the streamed ones are the same, and chat lists its tokens with their bytes.
    let logprobs = try #require(result["logprobs"] as? [String: Any])
    let tokens = try #require(logprobs["tokens"] as? [String])
    let values = try #require(logprobs["token_logprobs"] as? [Double])
    let tops = try #require(logprobs["top"] as? [[String: Double]])
    #expect(tokens.count == 5 && values.count == 5 && tops.count == 5)
    #expect(tokens.joined() == logprobs["text"] as? String)
    #expect(logprobs["offsets"] as? [Int] == tokens.indices.map { tokens.prefix($0).joined().unicodeScalars.count })
    for (value, top) in zip(values, tops) {
      #expect(top.count == 3 && abs(value - (top.values.max() ?? 1)) < 1e-6 && value <= 0, "\(value) \(top)")
      #expect(top.values.reduce(0) { $0 + Foundation.exp($1) } <= 1 + 1e-6)
    }
    let streamed = try #require(result["logprobs_stream"] as? [String: Any])
    #expect(streamed["tokens"] as? [String] == tokens && streamed["token_logprobs"] as? [Double] == values)
    let chatLogprobs = try #require(result["chat_logprobs"] as? [String: Any])
    let items = try #require(chatLogprobs["items"] as? [[String: Any]])
    #expect(!items.isEmpty)
    let itemTokens = items.compactMap { $0["token"] as? String }
    #expect(
      itemTokens.joined().trimmingCharacters(in: .whitespacesAndNewlines)
        == (chatLogprobs["content"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines))
    for item in items {
      let top = try #require(item["top"] as? [[Any]])
      #expect(top.count == 2 && (top.first?[1] as? Double) == item["logprob"] as? Double)
      #expect((item["bytes"] as? [Int]).map { String(decoding: $0.map(UInt8.init), as: UTF8.self) } == item["token"] as? String)
    }

    // The same seed and sampling through `generate`.
    let generated = try CLITests.run(
      ["generate", "--model", Self.gguf, "--prompt", "The capital of France is", "--max-tokens", "8", "--temperature", "0.8", "--seed", "7", "--json"])
    let samples = try #require(generated.json?["samples"] as? [[String: Any]])
    #expect(samples.first?["text"] as? String == completion["text"] as? String)
  }

  /// A prompt longer than a prefill chunk (300 tokens, chunks of 256 between decode steps) gives
  /// what `generate` gives for the same ids, seed and sampling.
  @Test func longPromptsArePrefilledInChunks() throws {
    let server = try Server([])
    let ids = (0..<300).map { 1000 + ($0 * 37) % 20000 }
    let body = #"{"prompt": \#(ids), "max_tokens": 6, "temperature": 0.8, "seed": 5}"#
    let (status, reply) = try Self.request(server.base + "/v1/completions", body: body)
    #expect(status == 200, "\(reply)")
    let object = try JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any]
    let text = ((object?["choices"] as? [[String: Any]])?.first?["text"]) as? String
    let generated = try CLITests.run([
      "generate", "--model", Self.gguf, "--ids", ids.map(String.init).joined(separator: ","), "--max-tokens", "6", "--temperature", "0.8",
      "--seed", "5", "--threads", "1", "--json",
    ])
    let samples = try #require(generated.json?["samples"] as? [[String: Any]])
    #expect(text != nil && samples.first?["text"] as? String == text, "\(String(describing: text))")
  }

  /// The lab's remote backend against two `bitbudget serve` instances (a one-layer random
  /// model with Qwen3's vocabulary, tokenizer and template, Tests/Fixtures/hub/make_qwen3_repo.py):
  /// a sweep spreads its samples over both, with budget forcing over /v1/completions, and every
  /// sample is recorded without error.
  @Test func aSweepRunsOnTwoServers() throws {
    let directory = try Fixtures.temporaryDirectory("serve-sweep")
    defer { try? FileManager.default.removeItem(at: directory) }
    let repository = directory.appendingPathComponent("qwen3").path
    let maker = Process()
    maker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    maker.arguments = [
      "python3", (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/hub/make_qwen3_repo.py"),
      (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/qwen3-tokenizer"), repository,
    ]
    try maker.run()
    maker.waitUntilExit()
    let servers = try (0..<2).map { _ in try Server(["--served-model-name", "Qwen/Qwen3-0.6B"], model: repository) }
    let task = directory.appendingPathComponent("task.jsonl").path
    try (0..<3).map { #"{"id": "q\#($0)", "problem": "What is \#($0) + \#($0)?", "answer": \#(2 * $0)}"# }
      .joined(separator: "\n").write(toFile: task, atomically: true, encoding: .utf8)
    let grid = directory.appendingPathComponent("grid.yaml").path
    try """
      model: qwen3-0.6b
      task: \(task)
      thinking_budget: 6
      answer_tokens: 3
      samples: 2
      parallel: 2
      backend:
        endpoint: [\(servers[0].base)/v1, \(servers[1].base)/v1]
        model: Qwen/Qwen3-0.6B
        concurrency: 2
      """.write(toFile: grid, atomically: true, encoding: .utf8)
    let db = directory.appendingPathComponent("results.sqlite").path
    let sweep = try CLITests.run(["sweep", grid, "--db", db, "--json"])
    #expect(sweep.status == 0, "\(sweep.stderr)")
    let scenario = try #require((sweep.json?["scenarios"] as? [[String: Any]])?.first)
    let score = try #require(scenario["score"] as? [String: Any])
    #expect(score["samples"] as? Int == 6 && score["errors"] as? Int == 0, "\(score)")
    for server in servers {
      let metrics = try Self.request(server.base + "/metrics", method: "GET").1
      let requests = metrics.split(separator: "\n").first { $0.hasPrefix("bitbudget_requests_total ") }
      #expect((requests?.split(separator: " ").last.flatMap { Double($0) } ?? 0) > 0, "\(metrics)")
    }
  }

  /// Admission against `--memory-limit` (200 MiB: SmolLM2's 97 MB of weights, 15 MB of scratch
  /// and 23 KB of KV per token): a request whose KV peak could never fit is a 503 with the
  /// numbers; two that fit only one at a time both finish, the second after the first (no step
  /// ever decoded both).
  @Test func memoryLimitAdmission() throws {
    let server = try Server(["--memory-limit", "200MiB", "--max-sequences", "4"])
    let (status, reply) = try Self.request(server.base + "/v1/completions", body: #"{"prompt": "Hi", "max_tokens": 8000}"#)
    #expect(status == 503 && reply.contains("--memory-limit") && reply.contains("service_unavailable"), "\(reply)")
    let clients = (0..<2).map { seed -> Process in
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      process.arguments = [
        "curl", "-s", "-f", "-o", "/dev/null", "--data-binary",
        #"{"prompt": "Once upon a time", "max_tokens": 3000, "temperature": 1, "seed": \#(seed), "stop": ["."]}"#, server.base + "/v1/completions",
      ]
      return process
    }
    for client in clients { try client.run() }
    for client in clients { client.waitUntilExit() }
    #expect(clients.allSatisfy { $0.terminationStatus == 0 })
    let metrics = try Self.request(server.base + "/metrics", method: "GET").1
    func value(_ name: String) -> Double? {
      metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
    }
    #expect(value("bitbudget_batch_samples_bucket{le=\"1.0\"}") == value("bitbudget_batch_samples_count"), "\(metrics)")
    #expect(value("bitbudget_rejected_requests_total") == 1)
  }

  /// What a client library would not send: malformed JSON, wrong types, an oversized body, a
  /// missing API key; a client that disconnects mid-stream leaves the server serving, and its
  /// sample stops decoding (`/metrics`).
  @Test func badRequestsAreAnsweredNotCrashed() throws {
    let server = try Server(["--api-key", "secret", "--max-sequences", "2"])
    let auth = ["Authorization": "Bearer secret"]
    #expect(try Self.request(server.base + "/health", method: "GET").0 == 200)
    #expect(try Self.request(server.base + "/v1/models", method: "GET").0 == 401)
    for body in ["{", "[]", #"{"prompt": 5}"#, #"{"prompt": "x", "max_tokens": -1}"#, #"{"prompt": "x", "stop": [1]}"#,
                 #"{"prompt": "x", "n": 3}"#, #"{"prompt": "x", "stream": "yes"}"#, #"{"messages": []}"#, #"{"prompt": "x", "logprobs": 21}"#] {
      let (status, reply) = try Self.request(server.base + "/v1/completions", body: body, headers: auth)
      #expect(status == 400, "\(body) → \(status) \(reply)")
      #expect(reply.contains("\"invalid_request_error\""), "\(reply)")
    }
    let (chatStatus, _) = try Self.request(server.base + "/v1/chat/completions", body: #"{"messages": "hi"}"#, headers: auth)
    #expect(chatStatus == 400)
    let huge = "{\"prompt\": \"" + String(repeating: "a", count: 9 << 20) + "\"}"
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("huge-\(UUID().uuidString).json").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try Data(huge.utf8).write(to: URL(fileURLWithPath: path))
    #expect(try Self.request(server.base + "/v1/completions", body: "@" + path, headers: auth).0 == 413)

    // Content as OpenAI's array of parts reads as the joined text.
    let asString = try Self.request(
      server.base + "/v1/chat/completions", body: #"{"messages": [{"role": "user", "content": "Hi there"}], "max_tokens": 5, "temperature": 0}"#,
      headers: auth)
    let asParts = try Self.request(
      server.base + "/v1/chat/completions",
      body: #"{"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}], "max_tokens": 5, "temperature": 0}"#, headers: auth)
    func content(_ reply: String) -> String? {
      let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any]
      return ((object?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
    }
    #expect(asString.0 == 200 && content(asString.1) != nil && content(asString.1) == content(asParts.1), "\(asString) \(asParts)")

    // A client that goes away without waiting for its (non-streamed) reply.
    let leaving = Process()
    leaving.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    leaving.arguments = [
      "curl", "-s", "--max-time", "1", "-H", "Authorization: Bearer secret", "--data-binary",
      #"{"prompt": "Once upon a time", "max_tokens": 8000, "temperature": 1}"#, server.base + "/v1/completions",
    ]
    leaving.standardOutput = FileHandle.nullDevice
    try leaving.run()
    leaving.waitUntilExit()

    // A streaming client that goes away after the first bytes.
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
      "curl", "-s", "-N", "--max-time", "1", "-H", "Authorization: Bearer secret", "--data-binary",
      #"{"prompt": "Once upon a time", "max_tokens": 8000, "temperature": 1, "stream": true}"#, server.base + "/v1/completions",
    ]
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    let (status, reply) = try Self.request(
      server.base + "/v1/completions", body: #"{"prompt": "Hello", "max_tokens": 3, "temperature": 0}"#, headers: auth)
    #expect(status == 200, "\(reply)")
    // Their 8000 tokens each (a minute of decoding) are not decoded for nobody: the samples are
    // dropped within moments (20 s allowed, for a loaded machine).
    var metrics = ""
    for _ in 0..<200 {
      metrics = try Self.request(server.base + "/metrics", method: "GET").1
      if metrics.contains("bitbudget_live_samples 0") { break }
      Thread.sleep(forTimeInterval: 0.1)
    }
    #expect(metrics.contains("bitbudget_live_samples 0") && metrics.contains("bitbudget_kv_bytes 0"), "\(metrics)")
    let generated = metrics.split(separator: "\n").first { $0.hasPrefix("bitbudget_generated_tokens_total ") }
    #expect((generated?.split(separator: " ").last.flatMap { Double($0) } ?? 16000) < 8000, "\(metrics)")
  }
}
