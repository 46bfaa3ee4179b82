import BitBudgetEval
import BitBudgetTestSupport
import Foundation
#if canImport(FoundationXML)
  import FoundationXML
#endif
import Testing

/// The command-line contract (design.md): names, JSON keys, exit codes, one-line errors. Runs the
/// built `bitbudget` executable.
@Suite struct CLITests {
  struct Run {
    let status: Int32
    let stdout: String
    let stderr: String

    var json: [String: Any]? {
      (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any]
    }
  }

  static let executable: String? = {
    let candidates = [
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("bitbudget").path,
      Bundle.main.bundleURL.appendingPathComponent("bitbudget").path,
      Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("bitbudget").path,
      (Fixtures.repositoryRoot as NSString).appendingPathComponent(".build/debug/bitbudget"),
    ]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
  }()

  static func run(_ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:]) throws -> Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(executable, "bitbudget executable not found"))
    process.arguments = arguments
    // Tests never reach the real Hub: a Hub-shaped path that is not on disk stays an error unless
    // a test points HF_ENDPOINT at its fake hub and lifts this.
    process.environment = ProcessInfo.processInfo.environment.merging(["HF_HUB_OFFLINE": "1"].merging(environment) { $1 }) { $1 }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let input = Pipe()
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try input.fileHandleForWriting.close()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
  }

  static let model = Fixtures.modelPath("qwen3-gqa4-tied-bf16-sharded")

  @Test func logitsMatchTransformers() throws {
    let reference = try Fixtures.reference("qwen3-gqa4-tied-bf16-sharded")
    let ids = reference.inputIds.map(String.init).joined(separator: ",")
    let result = try Self.run(["logits", "--model", Self.model, "--ids", ids, "--kv-dtype", "f32", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let logits = try #require(result.json?["logits"] as? [[Double]])
    let ours = logits.map { $0.map(Float.init) }
    #expect(ours.count == reference.inputIds.count)
    #expect(Fixtures.maxAbsDifference(ours, reference.logits) <= 1e-4 * Fixtures.maxAbs(reference.logits))
  }

  @Test func generateGreedyJSON() throws {
    let reference = try Fixtures.reference("qwen3-gqa4-tied-bf16-sharded")
    let ids = reference.inputIds.map(String.init).joined(separator: ",")
    let result = try Self.run(["generate", "--model", Self.model, "--ids", ids, "--max-tokens", "16", "--greedy", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let json = try #require(result.json)
    let samples = try #require(json["samples"] as? [[String: Any]])
    #expect(samples.count == 1)
    #expect(samples[0]["tokens"] as? [Int] == reference.greedy)
    #expect(samples[0]["finish"] as? String == "length")
    let memory = try #require(json["memory"] as? [String: Any])
    for key in ["weights_bytes", "kv_bytes", "peak_rss_bytes"] {
      #expect((memory[key] as? Int ?? 0) > 0, "memory.\(key)")
    }
    #expect(memory["weights_bytes"] as? Int == 536_064)
    let timing = try #require(json["timing"] as? [String: Any])
    #expect((timing["decode_tokens_per_s"] as? Double ?? 0) > 0)
  }

  @Test func generateZeroTokensOnlyPrefills() throws {
    let result = try Self.run(["generate", "--model", Self.model, "--ids", "3,4", "--max-tokens", "0", "--greedy", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let samples = try #require(result.json?["samples"] as? [[String: Any]])
    #expect(samples[0]["tokens"] as? [Int] == [])
    #expect(samples[0]["finish"] as? String == "length")
  }

  @Test func benchJSON() throws {
    let result = try Self.run(["bench", "--model", Self.model, "--prompt-tokens", "40", "--gen-tokens", "8", "--repetitions", "1", "--threads", "2", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let json = try #require(result.json)
    for key in ["prefill_tokens_per_s", "decode_tokens_per_s"] {
      #expect((json[key] as? Double ?? 0) > 0, "\(key)")
    }
    #expect((json["peak_rss_bytes"] as? Int ?? 0) > 0)
    #expect(json["threads"] as? Int == 2)
  }

  @Test(arguments: [
    (["generate", "--model", "/nonexistent", "--ids", "1", "--greedy"], "/nonexistent"),
    (["generate", "--model", Self.model, "--ids", "1,x", "--greedy"], "--ids"),
    (["generate", "--model", Self.model, "--ids", "1,99999", "--greedy"], "outside the vocabulary"),
    (["generate", "--model", Self.model, "--ids", "1", "--max-tokens", "100000", "--greedy"], "context"),
    (["generate", "--model", Self.model, "--ids", "1", "--greedy", "--no-such-flag"], "no-such-flag"),
    (["logits", "--model", Self.model, "--ids", "1", "--kv-dtype", "f8"], "kv-dtype"),
    (["bench", "--model", Self.model, "--threads", "0"], "--threads"),
    (["generate", "--model", Self.model, "--ids", "1", "--max-tokens", "9223372036854775807", "--greedy"], "context"),
    (["bench", "--model", Self.model, "--gen-tokens", "9223372036854775807"], "context"),
    (["bench", "--model", Self.model, "--depth", "100000000000"], "context"),
    (["bench", "--model", Self.model, "--prompt-tokens", "100000000000"], "context"),
    (["logits", "--model", Self.model, "--ids", "1,99999", "--json"], "outside the vocabulary"),
    (["frobnicate"], "frobnicate"),
    (["generate", "--model", Self.model, "--ids", "1", "--greedy", "--temperature", "0.5"], "--greedy"),
    (["generate", "--model", Self.model, "--ids", "1", "--top-p", "1.5"], "--top-p"),
    (["generate", "--model", Self.model, "--ids", "1", "--parallel", "0"], "--parallel"),
    (["generate", "--model", Self.model, "--ids", "1", "--thinking-budget", "9223372036854775807"], "--thinking-budget"),
    (["generate", "--model", Self.model, "--ids", "1", "--thinking-budget", "1", "--answer-tokens", "9223372036854775807"], "--answer-tokens"),
    (["generate", "--model", Self.model, "--ids", "1", "--thinking-budget", "5", "--min-thinking", "9223372036854775807"], "--min-thinking"),
    (["generate", "--model", Self.model, "--prompt", "x", "--chat", "--no-thinking", "--thinking-budget", "5"], "--no-thinking"),
    (["generate", "--model", Self.model, "--ids", "1", "--weights", "3"], "--weights"),
    (["generate", "--model", Fixtures.modelPath("qwen3-bias-odd-f16"), "--ids", "1", "--weights", "4"], "multiple of 64"),
    (["generate", "--model", GPTQFixture.path, "--ids", "1", "--weights", "16"], "--weights 16"),
    (["generate", "--model", GPTQFixture.path, "--ids", "1", "--weights", "8"], "already GPTQ-quantized"),
    (["quantize", "--model", Self.model, "--weights", "4", "--out", "/tmp/x"], "--calibration"),
    (["quantize", "--model", Self.model, "--weights", "5", "--method", "rtn", "--out", "/tmp/x"], "--weights"),
    (["quantize", "--model", GPTQFixture.path, "--weights", "4", "--method", "rtn", "--out", "/tmp/x"], "already quantized"),
  ])
  func userErrorsExitOneWithOneLine(arguments: [String], phrase: String) throws {
    let result = try Self.run(arguments)
    #expect(result.status == 1)
    #expect(result.stderr.hasPrefix("error: "), "\(result.stderr)")
    #expect(result.stderr.contains(phrase), "\(result.stderr)")
    #expect(result.stderr.split(separator: "\n").count == 1, "not one line: \(result.stderr)")
    #expect(result.stdout.isEmpty)
  }

  @Test func corruptModelFileIsAOneLineError() throws {
    let directory = try Fixtures.temporaryDirectory("corrupt")
    defer { try? FileManager.default.removeItem(at: directory) }
    let source = Fixtures.modelPath("qwen3-gqa-tied-f32")
    try FileManager.default.copyItem(atPath: (source as NSString).appendingPathComponent("config.json"), toPath: directory.appendingPathComponent("config.json").path)
    let weights = try Data(contentsOf: URL(fileURLWithPath: source).appendingPathComponent("model.safetensors"))
    try weights.prefix(weights.count / 3).write(to: directory.appendingPathComponent("model.safetensors"))
    let result = try Self.run(["generate", "--model", directory.path, "--ids", "1,2", "--greedy"])
    #expect(result.status == 1)
    #expect(result.stderr.contains("model.safetensors"))
    #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
  }

  /// `convert` writes a folder that `generate` runs like the GGUF itself; a second conversion
  /// into it needs --overwrite; a bad GGUF is a one-line error.
  @Test func convertGGUFToFolder() throws {
    let gguf = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let directory = try Fixtures.temporaryDirectory("convert")
    defer { try? FileManager.default.removeItem(at: directory) }
    let out = directory.appendingPathComponent("smollm2").path
    let converted = try Self.run(["convert", "--model", gguf, "--out", out, "--json"])
    #expect(converted.status == 0, "\(converted.stderr)")
    #expect(converted.json?["tensors"] as? Int == 272)
    let prompt = "<|im_start|>user\nName three colors.<|im_end|>\n<|im_start|>assistant\n"
    let arguments = ["--prompt", prompt, "--max-tokens", "12", "--greedy", "--json"]
    let fromFolder = try Self.run(["generate", "--model", out] + arguments)
    let fromGGUF = try Self.run(["generate", "--model", gguf] + arguments)
    #expect(fromFolder.status == 0, "\(fromFolder.stderr)")
    let text = { (run: Run) in ((run.json?["samples"] as? [[String: Any]])?.first?["text"] as? String) }
    #expect(text(fromFolder) != nil && text(fromFolder) == text(fromGGUF))
    let again = try Self.run(["convert", "--model", gguf, "--out", out])
    #expect(again.status == 1 && again.stderr.contains("--overwrite"), "\(again.stderr)")
    #expect(try Self.run(["convert", "--model", gguf, "--out", out, "--overwrite"]).status == 0)
    let notGGUF = try Self.run(["convert", "--model", (out as NSString).appendingPathComponent("config.json"), "--out", out + "2"])
    #expect(notGGUF.status == 1 && notGGUF.stderr.split(separator: "\n").count == 1, "\(notGGUF.stderr)")
  }

  /// `--kv` selects the cache policy; the JSON reports it and each sample's resident tokens; a
  /// malformed spec is a one-line error that shows the accepted forms.
  @Test func kvPolicies() throws {
    let model = Fixtures.modelPath("qwen3-gqa-tied-f32")
    let result = try Self.run([
      "generate", "--model", model, "--ids", "3,17,42,99,200,7,8,9,10,11,12,13", "--max-tokens", "60", "--greedy",
      "--kv", "rkv:16,window=4,buffer=8", "--json",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let memory = try #require(result.json?["memory"] as? [String: Any])
    #expect((memory["kv"] as? String)?.hasPrefix("rkv:16,window=4") == true)
    let sample = try #require((result.json?["samples"] as? [[String: Any]])?.first)
    let kvTokens = try #require(sample["kv_tokens"] as? Int)
    #expect(kvTokens >= 16 && kvTokens <= 24, "\(kvTokens)")
    let bad = try Self.run(["generate", "--model", model, "--ids", "3", "--kv", "rkv:2048,lamda=0.1"])
    #expect(bad.status == 1 && bad.stderr.contains("lamda") && bad.stderr.contains("streaming:B"), "\(bad.stderr)")
    #expect(bad.stderr.split(separator: "\n").count == 1)
    let group = try Self.run(["generate", "--model", model, "--ids", "3", "--kv", "hqq:4"])
    #expect(group.status == 1 && group.stderr.contains("head dimension 16"), "\(group.stderr)")
  }

  /// `perplexity` against itself is exact (KL 0, same perplexity); a quantized cache diverges a little.
  @Test func perplexityComparesCaches() throws {
    let gguf = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let text = Data(String(repeating: "The quick brown fox jumps over the lazy dog, and then it runs away. ", count: 12).utf8)
    let same = try Self.run(["perplexity", "--model", gguf, "--prompt-tokens", "16", "--json"], stdin: text)
    #expect(same.status == 0, "\(same.stderr)")
    let score = try #require(same.json?["score"] as? [String: Any])
    #expect(score["mean_kl"] as? Double == 0 && score["perplexity"] as? Double == score["baseline_perplexity"] as? Double)
    let quantized = try Self.run(["perplexity", "--model", gguf, "--prompt-tokens", "16", "--kv", "hqq:2", "--json"], stdin: text)
    let kl = try #require((quantized.json?["score"] as? [String: Any])?["mean_kl"] as? Double)
    #expect(kl > 0 && kl < 5, "\(kl)")
  }

  /// `memory`: the paper's Table 1 value, the inverse question, and --memory-limit refusing a
  /// run up front with the numbers.
  @Test func memoryCommandAndLimit() throws {
    let paper = try Self.run(["memory", "--model", "qwen3-8b", "--weights", "4", "--tokens", "30000", "--convention", "paper", "--json"])
    #expect(paper.status == 0, "\(paper.stderr)")
    let weights = try #require(paper.json?["weights_bytes"] as? Int)
    let kv = try #require(paper.json?["kv_bytes"] as? Int)
    #expect(abs(Double(weights) / Double(1 << 30) - 5.68) <= 0.01 && abs(Double(kv) / Double(1 << 30) - 4.12) <= 0.01)
    let inverse = try Self.run(["memory", "--model", "qwen3-0.6b", "--budget", "4GiB", "--json"])
    let tokens = try #require(inverse.json?["max_tokens"] as? Int)
    #expect(tokens > 20_000 && (inverse.json?["total_bytes"] as? Int ?? .max) <= 4 << 30)
    let model = Fixtures.modelPath("qwen3-gqa-tied-f32")
    let refused = try Self.run(["generate", "--model", model, "--ids", "3,17", "--max-tokens", "400", "--memory-limit", "200KB"])
    #expect(refused.status == 1 && refused.stderr.contains("--memory-limit") && refused.stderr.contains("GiB"), "\(refused.stderr)")
    let bad = try Self.run(["memory", "--model", "qwen3-9b", "--tokens", "10"])
    #expect(bad.status == 1 && bad.stderr.split(separator: "\n").count == 1)
    let noSize = try Self.run(["memory", "--model", "qwen3-8b", "--budget", "lots"])
    #expect(noSize.status == 1 && noSize.stderr.contains("not a size"))
  }

  /// quantize writes a checkpoint that generate loads; its weights bytes (reported in generate's
  /// JSON with the format) equal the memory model's and those of quantizing at load.
  @Test func quantizeThenGenerate() throws {
    let out = try Fixtures.temporaryDirectory("cli-quantize")
    defer { try? FileManager.default.removeItem(at: out) }
    let model = Fixtures.modelPath("qwen3-mha-untied-bf16")
    let written = try Self.run(["quantize", "--model", model, "--method", "rtn", "--weights", "4", "--out", out.path, "--overwrite", "--json"])
    #expect(written.status == 0, "\(written.stderr)")
    #expect(written.stderr.contains("layer 2/2"), "progress per layer: \(written.stderr)")
    func memory(_ arguments: [String]) throws -> [String: Any] {
      let result = try Self.run(["generate", "--ids", "3,17,42", "--max-tokens", "4", "--greedy", "--json"] + arguments)
      #expect(result.status == 0, "\(result.stderr)")
      return try #require(result.json?["memory"] as? [String: Any])
    }
    let fromFile = try memory(["--model", out.path])
    let atLoad = try memory(["--model", model, "--weights", "4"])
    #expect(fromFile["weight_bits"] as? Int == 4 && (fromFile["weights"] as? String ?? "").hasPrefix("gptq 4-bit"))
    #expect((atLoad["weights"] as? String ?? "").hasPrefix("rtn 4-bit"))
    let estimate = try Self.run(["memory", "--model", model, "--weights", "4", "--tokens", "7", "--json"])
    #expect(estimate.status == 0, "\(estimate.stderr)")
    let bytes = try #require(estimate.json?["weights_bytes"] as? Int)
    #expect(fromFile["weights_bytes"] as? Int == bytes && atLoad["weights_bytes"] as? Int == bytes)
    // Without --weights, memory takes the checkpoint's own precision.
    let asStored = try Self.run(["memory", "--model", out.path, "--tokens", "7", "--json"])
    #expect(asStored.status == 0 && asStored.json?["weights_bytes"] as? Int == bytes, "\(asStored.stderr)")
  }

  /// eval commits every sample; killed with SIGKILL mid-run and restarted, it loses and redoes
  /// nothing: the samples stored before the kill are unchanged and the rest are added.
  @Test func evalResumesAfterKill() throws {
    let directory = try Fixtures.temporaryDirectory("cli-eval")
    defer { try? FileManager.default.removeItem(at: directory) }
    let task = directory.appendingPathComponent("arith.jsonl").path
    let lines = (0..<12).map { #"{"id": "q\#($0)", "question": "What is \#($0) + \#($0 + 3)?", "answer": \#(2 * $0 + 3)}"# }
    try lines.joined(separator: "\n").write(toFile: task, atomically: true, encoding: .utf8)
    let db = directory.appendingPathComponent("results.sqlite").path
    let model = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let arguments = ["eval", "--model", model, "--task", task, "--db", db, "--samples", "2", "--max-tokens", "24", "--threads", "2", "--json"]

    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(Self.executable))
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Kill as soon as some samples are committed (and before all are).
    func stored() -> [String: String] {
      // Read-only: a writer here could make the starting eval meet a locked database and quit.
      guard FileManager.default.fileExists(atPath: db), let store = try? ResultStore(path: db, readOnly: true),
        let scenario = try? store.scenarios().first, let records = try? store.samples(scenario.key)
      else { return [:] }
      return Dictionary(records.map { ("\($0.questionId)/\($0.sampleIndex)", $0.output) }, uniquingKeysWith: { a, _ in a })
    }
    // A debug build on a loaded machine may need minutes for the first sample; the bound only
    // keeps a broken build from hanging the suite.
    var before: [String: String] = [:]
    let deadline = Date().addingTimeInterval(900)
    while Date() < deadline && process.isRunning {
      before = stored()
      if !before.isEmpty { break }
      usleep(20_000)
    }
    #expect(process.isRunning, "eval ended (status \(process.isRunning ? 0 : process.terminationStatus)) before it could be killed")
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    before = stored()
    #expect(!before.isEmpty && before.count < 24, "killed with \(before.count) of 24 samples stored")

    let resumed = try Self.run(arguments)
    #expect(resumed.status == 0, "\(resumed.stderr)")
    let score = try #require(resumed.json?["score"] as? [String: Any])
    #expect(score["samples"] as? Int == 24 && score["questions"] as? Int == 12)
    #expect(score["pass_at_1"] is Double && score["maj_at_k"] is Double)
    let after = stored()
    #expect(after.count == 24)
    for (key, output) in before { #expect(after[key] == output, "\(key) changed after resuming") }
    // Nothing left to do: a third run generates nothing.
    let third = try Self.run(arguments)
    #expect(third.json?["generated_this_run"] as? Int == 0)
  }

  /// A small grid on a real model: every scenario stored, a table of them, and a rerun that
  /// generates nothing.
  @Test func sweepRunsAGridAndResumes() throws {
    let directory = try Fixtures.temporaryDirectory("cli-sweep")
    defer { try? FileManager.default.removeItem(at: directory) }
    let task = directory.appendingPathComponent("arith.jsonl").path
    try [#"{"id": "a", "question": "What is 2 + 3?", "answer": 5}"#, #"{"id": "b", "question": "What is 4 * 4?", "answer": 16}"#]
      .joined(separator: "\n").write(toFile: task, atomically: true, encoding: .utf8)
    let model = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let grid = directory.appendingPathComponent("grid.yaml").path
    try """
      model: \(model)
      task: \(task)
      weights: [16, 8]
      kv: [full, "hqq:4,residual=16"]
      samples: 2
      parallel: [1, 2]
      max_tokens: 12
      """.write(toFile: grid, atomically: true, encoding: .utf8)
    let db = directory.appendingPathComponent("results.sqlite").path
    let first = try Self.run(["sweep", grid, "--db", db, "--threads", "2", "--json"])
    #expect(first.status == 0, "\(first.stderr)")
    let scenarios = try #require(first.json?["scenarios"] as? [[String: Any]])
    #expect(scenarios.count == 8)
    #expect(Set(scenarios.compactMap { $0["scenario_key"] as? String }).count == 8)
    for s in scenarios {
      let score = try #require(s["score"] as? [String: Any])
      #expect(score["samples"] as? Int == 4 && score["questions"] as? Int == 2)
    }
    // Each scenario ran with its own KV policy: hqq:4 caches (the prompt quantized beyond a
    // 16-token residual) hold fewer bytes than full ones.
    let store = try ResultStore(path: db)
    var kvBytes: [String: Int] = [:]
    for s in scenarios {
      let scenario = try #require(s["scenario"] as? [String: Any])
      let key = try #require(s["scenario_key"] as? String)
      let bytes = try store.samples(key).compactMap(\.kvBytes).reduce(0, +)
      kvBytes["\(scenario["weight_bits"] ?? "") \(scenario["parallel"] ?? "") \(scenario["kv"] ?? "")"] = bytes
    }
    for bits in [16, 8] {
      for g in [1, 2] {
        let full = kvBytes["\(bits) \(g) full"] ?? 0, quantized = kvBytes.first { $0.key.hasPrefix("\(bits) \(g) hqq") }?.value ?? 0
        #expect(quantized > 0 && quantized < full, "\(bits)-bit G=\(g): hqq \(quantized) vs full \(full)")
      }
    }
    let second = try Self.run(["sweep", grid, "--db", db, "--threads", "2", "--json"])
    let again = try #require(second.json?["scenarios"] as? [[String: Any]])
    #expect(again.allSatisfy { $0["generated_this_run"] as? Int == 0 })
    let table = try Self.run(["sweep", grid, "--db", db, "--threads", "2"])
    #expect(table.stdout.split(separator: "\n").count == 10, "\(table.stdout)")
    let bad = directory.appendingPathComponent("bad.yaml").path
    try "model: \(model)\ntask: \(task)\nkv: [full, \"rkv:x\"]\n".write(toFile: bad, atomically: true, encoding: .utf8)
    let refused = try Self.run(["sweep", bad, "--db", db])
    #expect(refused.status == 1 && refused.stderr.contains("kv \"rkv:x\""), "\(refused.stderr)")
  }

  /// `budget_mode: paper` in a sweep: every sample thinks exactly the budget, then the forced
  /// answer; the mode is part of the scenario (its own key), `cap` keeps the one-sided key.
  @Test func sweepWithThePaperBudgetModeThinksExactlyTheBudget() throws {
    let directory = try Fixtures.temporaryDirectory("cli-paper-budget")
    defer { try? FileManager.default.removeItem(at: directory) }
    let model = try Fixtures.makeRandomQwen3(vocab: 151_669)
    defer { try? FileManager.default.removeItem(at: model) }
    for file in ["tokenizer.json", "tokenizer_config.json"] {
      try FileManager.default.copyItem(
        atPath: (Fixtures.qwen3TokenizerDirectory as NSString).appendingPathComponent(file), toPath: model.appendingPathComponent(file).path)
    }
    let task = directory.appendingPathComponent("arith.jsonl").path
    try #"{"id": "a", "question": "What is 2 + 3?", "answer": 5}"#.write(toFile: task, atomically: true, encoding: .utf8)
    let grid = directory.appendingPathComponent("grid.yaml").path
    try """
      model: \(model.path)
      task: \(task)
      thinking_budget: 12
      budget_mode: [paper, cap]
      answer_tokens: 3
      samples: 3
      temperature: 1.0
      """.write(toFile: grid, atomically: true, encoding: .utf8)
    let db = directory.appendingPathComponent("results.sqlite").path
    let result = try Self.run(["sweep", grid, "--db", db, "--threads", "2", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let store = try ResultStore(path: db, readOnly: true)
    let scenarios = try store.scenarios()
    #expect(scenarios.map(\.budgetForcing).sorted { $0.rawValue < $1.rawValue } == [.cap, .paper])
    let paper = try #require(scenarios.first { $0.budgetForcing == .paper })
    let samples = try store.samples(paper.key)
    #expect(samples.count == 3)
    for sample in samples {
      #expect(sample.thinkingTokens == 12 && sample.finish == "budget", "\(sample)")
      #expect(sample.output.contains("</think>\n\n**Final Answer**\n\\boxed{"))
    }
    let table = try Self.run(["sweep", grid, "--db", db, "--threads", "2"])
    #expect(table.stdout.contains("| 12 paper |") && table.stdout.contains("| 12 cap |"), "\(table.stdout)")

    // `export`: the samples as CSV, read back by Python's csv module, hold the stored texts
    // exactly (the forced text puts line breaks in every one); scenario rows as JSONL; lm-eval JSON.
    let csvPath = directory.appendingPathComponent("samples.csv").path
    let csv = try Self.run(["export", "--db", db, "--format", "csv", "--rows", "samples", "--out", csvPath])
    #expect(csv.status == 0, "\(csv.stderr)")
    let python = Process()
    python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    python.arguments = ["python3", "-c", "import csv, json, sys; print(json.dumps([r for r in csv.DictReader(open(sys.argv[1], newline=''))]))", csvPath]
    let pipe = Pipe()
    python.standardOutput = pipe
    try python.run()
    let parsed = try #require(try JSONSerialization.jsonObject(with: pipe.fileHandleForReading.readDataToEndOfFile()) as? [[String: String]])
    python.waitUntilExit()
    var stored: [String: String] = [:]
    for scenario in scenarios {
      for record in try store.samples(scenario.key) { stored["\(scenario.key)/\(record.questionId)/\(record.sampleIndex)"] = record.output }
    }
    #expect(parsed.count == stored.count && parsed.count == 6)
    for row in parsed {
      #expect(stored["\(row["scenario_key"] ?? "")/\(row["question_id"] ?? "")/\(row["sample_index"] ?? "")"] == row["output"])
      #expect(row["thinking_tokens"] == "12" && ["paper", "cap"].contains(row["budget_mode"] ?? ""))
    }
    let jsonl = try Self.run(["export", "--db", db, "--rows", "scenarios"])
    let lines = jsonl.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    #expect(lines.count == 2 && lines.allSatisfy { $0["questions"] as? Int == 1 && $0["samples_stored"] as? Int == 3 && $0["estimated_bytes"] is Int })
    let lmEval = try Self.run(["export", "--db", db, "--format", "lm-eval"])
    let document = try #require(try JSONSerialization.jsonObject(with: Data(lmEval.stdout.utf8)) as? [String: Any])
    let results = try #require(document["results"] as? [String: [String: Any]])
    #expect(results.count == 2 && results.values.allSatisfy { ($0["pass@1,none"] as? Double) != nil && ($0["maj@3_stderr,none"] as? Double) != nil })
    for key in ["configs", "versions", "n-shot", "higher_is_better", "n-samples", "config"] { #expect(document[key] != nil, "\(key)") }
    let missing = try Self.run(["export", "--db", db, "--task", "nope"])
    #expect(missing.status == 1 && missing.stderr.contains("no scenarios of task"))
  }

  /// A grid on two OpenAI-compatible servers (scripted, on loopback): samples spread over both,
  /// budget forcing over /v1/completions, the memory model's estimate per scenario, a resume that
  /// sends nothing, and `eval --endpoint` finding the same scenario.
  @Test func sweepOnRemoteEndpoints() throws {
    let directory = try Fixtures.temporaryDirectory("cli-remote")
    defer { try? FileManager.default.removeItem(at: directory) }
    let servers = try (0..<2).map { try FakeOpenAIServer(log: directory.appendingPathComponent("log\($0).jsonl").path, model: "Qwen/Qwen3-8B") }
    defer { servers.forEach { $0.stop() } }
    let task = directory.appendingPathComponent("task.jsonl").path
    try (0..<5).map { #"{"id": "q\#($0)", "problem": "answer=\#($0 * 11) think=\#(10 * $0)", "answer": \#($0 * 11)}"# }
      .joined(separator: "\n").write(toFile: task, atomically: true, encoding: .utf8)
    let grid = directory.appendingPathComponent("grid.yaml").path
    try """
      model: qwen3-8b
      task: \(task)
      weights: [8, 4]
      thinking_budget: [8, 64]
      answer_tokens: 4
      samples: 4
      parallel: 4
      backend:
        endpoint: [\(servers[0].baseURL), \(servers[1].baseURL)]
        model: Qwen/Qwen3-8B
        concurrency: 3
      """.write(toFile: grid, atomically: true, encoding: .utf8)
    let db = directory.appendingPathComponent("results.sqlite").path
    let first = try Self.run(["sweep", grid, "--db", db, "--json"])
    #expect(first.status == 0, "\(first.stderr)")
    let scenarios = try #require(first.json?["scenarios"] as? [[String: Any]])
    #expect(scenarios.count == 4)
    let counts = servers.map { $0.requests().count }
    #expect(counts.allSatisfy { $0 > 10 }, "requests per server: \(counts)")
    for s in scenarios {
      let scenario = try #require(s["scenario"] as? [String: Any])
      let score = try #require(s["score"] as? [String: Any])
      let budget = try #require(scenario["thinking_budget"] as? Int)
      #expect(scenario["backend"] as? String == "openai:Qwen/Qwen3-8B")
      #expect(score["samples"] as? Int == 20 && score["errors"] as? Int == 0)
      // Budget 8 cuts every thinking but q0's (8 words + tags): forced answers are still right;
      // budget 64 lets all think to the end.
      #expect(score["pass_at_1"] as? Double == 1.0, "budget \(budget): \(score)")
      // The memory model's estimate (paper convention): weights + KV of 4 samples × max tokens.
      let bits = try #require(scenario["weight_bits"] as? Int)
      let memory = try Self.run([
        "memory", "--model", "qwen3-8b", "--weights", String(bits), "--tokens", String(budget + 4), "--parallel", "4",
        "--convention", "paper", "--json",
      ])
      let run = try #require(s["run"] as? [String: Any])
      #expect(run["estimated_bytes"] as? Int == memory.json?["total_bytes"] as? Int)
      #expect(run["peak_rss_bytes"] == nil)
    }
    let again = try Self.run(["sweep", grid, "--db", db, "--json"])
    #expect((try #require(again.json?["scenarios"] as? [[String: Any]])).allSatisfy { $0["generated_this_run"] as? Int == 0 })
    #expect(servers.map { $0.requests().count } == counts)
    let eval = try Self.run([
      "eval", "--model", "qwen3-8b", "--weights", "4", "--endpoint", servers[1].baseURL, "--served-model", "Qwen/Qwen3-8B",
      "--task", task, "--db", db, "--samples", "4", "--thinking-budget", "64", "--answer-tokens", "4", "--json",
    ])
    #expect(eval.status == 0, "\(eval.stderr)")
    #expect(eval.json?["generated_this_run"] as? Int == 0)
    #expect(scenarios.contains { $0["scenario_key"] as? String == eval.json?["scenario_key"] as? String })
    let badURL = try Self.run(["eval", "--model", "qwen3-8b", "--endpoint", "localhost:8000", "--task", task, "--db", db])
    #expect(badURL.status == 1 && badURL.stderr.contains("not an http(s) URL"), "\(badURL.stderr)")
    let badModel = try Self.run(["eval", "--model", "Qwen/Qwen3-8B", "--endpoint", servers[0].baseURL, "--task", task, "--db", db])
    #expect(badModel.status == 1 && badModel.stderr.contains("names the memory model"), "\(badModel.stderr)")
    #expect(badModel.stderr.split(separator: "\n").count == 1)
  }

  /// frontier and plan on a results database holding the synthetic paper-shaped set (G = 1 part):
  /// the frontier matches the script's reference computation, the report is written, and the
  /// plan picks the best scenario within the budget.
  @Test func frontierAndPlanOnAResultsDatabase() throws {
    let directory = try Fixtures.temporaryDirectory("cli-frontier")
    defer { try? FileManager.default.removeItem(at: directory) }
    struct Fixture: Decodable {
      struct Scenario: Decodable {
        let key: String, model: String, weightBits: Int, tokenBudget: Int, parallel: Int, memoryBytes: Int
        let correctPerQuestion: [Int]
      }
      let scenarios: [Scenario]
    }
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    let fixture = try decoder.decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath:
      (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/analysis/synthetic-results.json"))))
    let serial = fixture.scenarios.filter { $0.parallel == 1 }
    let db = directory.appendingPathComponent("results.sqlite").path
    let store = try ResultStore(path: db)
    var keys: [String: String] = [:]  // store key → fixture key
    for s in serial {
      let scenario = Scenario(
        task: "synthetic-math", model: s.model, weightBits: s.weightBits, kv: "full", thinkingBudget: s.tokenBudget,
        maxTokens: s.tokenBudget + 256, samples: 8, parallel: 1, temperature: 0.6, topP: 0.95, topK: 20, seed: 0)
      try store.register(scenario)
      keys[scenario.key] = s.key
      try store.record(s.correctPerQuestion.enumerated().flatMap { question, correct in
        (0..<8).map { index in
          SampleRecord(
            scenarioKey: scenario.key, questionId: "q\(question)", sampleIndex: index, output: "", tokens: 10, thinkingTokens: 5,
            finish: "eos", answer: index < correct ? "1" : "0", correct: index < correct, seconds: 0)
        }
      })
      try store.recordRun(scenario.key, estimatedBytes: s.memoryBytes, peakRssBytes: nil)
    }
    // The reference frontier of the G = 1 scenarios (mean share correct; memory, then accuracy
    // descending, then key; strictly increasing accuracy).
    func mean(_ s: Fixture.Scenario) -> Double { s.correctPerQuestion.reduce(0) { $0 + Double($1) / 8 } / 30 }
    var reference: [String] = []
    var best = -1.0
    for s in serial.sorted(by: { ($0.memoryBytes, -mean($0), $0.key) < ($1.memoryBytes, -mean($1), $1.key) }) where mean(s) > best {
      reference.append(s.key)
      best = mean(s)
    }
    let html = directory.appendingPathComponent("report.html").path
    let result = try Self.run(["frontier", "--db", db, "--json", "--html", html])
    #expect(result.status == 0, "\(result.stderr)")
    let task = try #require((result.json?["tasks"] as? [[String: Any]])?.first)
    #expect(task["task"] as? String == "synthetic-math" && task["scenarios"] as? Int == serial.count)
    let frontier = try #require(task["frontier"] as? [[String: Any]])
    #expect(frontier.compactMap { ($0["key"] as? String).flatMap { keys[$0] } } == reference)
    #expect(frontier.first?["memory_bytes"] as? Int == serial.first { $0.key == reference.first }?.memoryBytes)
    let report = try String(contentsOfFile: html, encoding: .utf8)
    #expect(report.contains("<svg ") && !report.contains("<script"))
    let table = try Self.run(["frontier", "--db", db])
    #expect(table.stdout.contains("synthetic-math: \(serial.count) scenarios, \(reference.count) on the frontier"), "\(table.stdout)")
    // Standalone SVG plots: one per (KV policy, G), each with its legend, parseable XML.
    let svgDirectory = directory.appendingPathComponent("plots").path
    let svg = try Self.run(["frontier", "--db", db, "--svg", svgDirectory])
    #expect(svg.status == 0, "\(svg.stderr)")
    let files = try FileManager.default.contentsOfDirectory(atPath: svgDirectory)
    #expect(files == ["synthetic-math-kv-full-g1.svg"], "\(files)")
    let plot = try Data(contentsOf: URL(fileURLWithPath: (svgDirectory as NSString).appendingPathComponent("synthetic-math-kv-full-g1.svg")))
    final class Elements: NSObject, XMLParserDelegate {
      var names: [String] = []
      func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        names.append(name)
      }
    }
    let parser = XMLParser(data: plot)
    let elements = Elements()
    parser.delegate = elements
    #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
    #expect(elements.names.first == "svg" && elements.names.contains("circle"))
    let plotText = String(decoding: plot, as: UTF8.self)
    #expect(plotText.contains(">colour = model</text>") && plotText.contains(">qwen3-4b</text>") && plotText.contains("synthetic-math: KV full"))
    // The plan: the last reference frontier point within 5 GiB.
    let budget = 5 << 30
    let expected = reference.last { key in (serial.first { $0.key == key }?.memoryBytes ?? .max) <= budget }
    let plan = try Self.run(["plan", "--memory", "5GiB", "--db", db, "--json"])
    #expect(plan.status == 0, "\(plan.stderr)")
    let choice = try #require(plan.json?["choice"] as? [String: Any])
    let chosen = serial.first { $0.key == expected }
    #expect(choice["model"] as? String == chosen?.model && choice["token_budget"] as? Int == chosen?.tokenBudget)
    #expect(choice["weight_bits"] as? Int == chosen?.weightBits && (choice["total_bytes"] as? Int ?? .max) <= budget)
    #expect((plan.json?["source"] as? String)?.contains("measured") == true)
    let tooSmall = try Self.run(["plan", "--memory", "100MiB", "--db", db])
    #expect(tooSmall.status == 1 && tooSmall.stderr.contains("no measured scenario"), "\(tooSmall.stderr)")
    let missing = try Self.run(["frontier", "--db", directory.appendingPathComponent("none.sqlite").path])
    #expect(missing.status == 1 && missing.stderr.contains("no results database"))
    let guideline = try Self.run(["plan", "--memory", "2.6GiB", "--task", "math", "--kv", "full", "--convention", "paper", "--reserve", "0B"])
    #expect(guideline.status == 0 && guideline.stdout.contains("paper's guidelines, not from measurements"))
    #expect(guideline.stdout.contains("qwen3-1.7b 8-bit, KV full, 6000 tokens, G=1"), "\(guideline.stdout)")
    #expect(guideline.stdout.contains("bitbudget eval --model Qwen3-1.7B --task aime25 --db results.sqlite --weights 8 --thinking-budget 6000 --budget-mode paper\n"), "\(guideline.stdout)")
    // The default: engine convention, the runtime kept free, KV compression where it pays; the
    // command carries the --memory-limit the plan was made for.
    let engine = try Self.run(["plan", "--memory", "2.6GiB", "--task", "math", "--json"])
    #expect(engine.status == 0, "\(engine.stderr)")
    let engineChoice = try #require(engine.json?["choice"] as? [String: Any])
    #expect((engineChoice["kv"] as? String)?.hasPrefix("rkv:") == true && engine.json?["convention"] as? String == "engine")
    #expect((engineChoice["total_bytes"] as? Int ?? .max) <= Int(2.6 * 1_073_741_824) - 32 * 1_048_576)
    let text = try Self.run(["plan", "--memory", "2.6GiB", "--task", "math"])
    #expect(text.stdout.contains("--memory-limit \(Int(2.6 * 1_073_741_824) - 32 * 1_048_576)B"), "\(text.stdout)")
    let noTask = try Self.run(["plan", "--memory", "8GiB"])
    #expect(noTask.status == 1 && noTask.stderr.contains("--task"))
    for size in ["lots", "8"] {
      let badSize = try Self.run(["plan", "--memory", size, "--task", "math"])
      #expect(badSize.status == 1 && badSize.stderr.contains("not a size with a unit"), "\(badSize.stderr)")
    }
    let badKV = try Self.run(["plan", "--memory", "8GiB", "--task", "math", "--kv", "rkv:x"])
    #expect(badKV.status == 1 && badKV.stderr.contains("--kv"), "\(badKV.stderr)")
  }

  @Test func tokenizeEncodesAndDecodes() throws {
    let tokenizer = Fixtures.qwen3TokenizerDirectory
    let encoded = try Self.run(["tokenize", "--tokenizer", tokenizer, "--text", "Hello, world! 12345", "--json"])
    #expect(encoded.status == 0, "\(encoded.stderr)")
    #expect(encoded.json?["ids"] as? [Int] == [9707, 11, 1879, 0, 220, 16, 17, 18, 19, 20])
    let decoded = try Self.run(["tokenize", "--tokenizer", tokenizer, "--decode", "9707,11,151667", "--json"])
    #expect(decoded.json?["text"] as? String == "Hello,<think>")
    let bom = try Self.run(["tokenize", "--tokenizer", tokenizer, "--json"], stdin: Data("\u{FEFF}hi".utf8))
    #expect(bom.json?["ids"] as? [Int] == [3225, 6023])
    let bad = try Self.run(["tokenize", "--tokenizer", tokenizer, "--decode", "151669"])
    #expect(bad.status == 1)
    #expect(bad.stderr.contains("151669"))
  }

  /// Text prompts go through the tokenizer; the output text is the decoded tokens. (The fixture
  /// model's vocabulary is the first 512 Qwen3 ids, so the prompt must stay within it.)
  @Test func generateFromTextPrompt() throws {
    let model = Fixtures.modelPath("qwen3-gqa-tied-f32")
    let result = try Self.run([
      "generate", "--model", model, "--tokenizer", Fixtures.qwen3TokenizerDirectory, "--prompt", "a b c",
      "--max-tokens", "8", "--greedy", "--json",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let sample = try #require((result.json?["samples"] as? [[String: Any]])?.first)
    let tokens = try #require(sample["tokens"] as? [Int])
    #expect(tokens.count == 8)
    let decoded = try Self.run(["tokenize", "--tokenizer", Fixtures.qwen3TokenizerDirectory, "--decode", tokens.map(String.init).joined(separator: ","), "--json"])
    #expect(sample["text"] as? String == decoded.json?["text"] as? String)
    #expect(result.json?["prompt_tokens"] as? Int == 3)
    let noTokenizer = try Self.run(["generate", "--model", model, "--prompt", "a b c", "--greedy"])
    #expect(noTokenizer.status == 1)
    #expect(noTokenizer.stderr.contains("--tokenizer"))
  }

  /// Seeded samples are reproducible, differ from each other, and do not depend on the thread count.
  @Test func sampledGenerationIsReproducible() throws {
    let arguments = ["generate", "--model", Self.model, "--ids", "3,4,5", "--parallel", "3", "--temperature", "1", "--top-k", "50", "--max-tokens", "6", "--seed", "7", "--json"]
    let first = try Self.run(arguments + ["--threads", "1"])
    let second = try Self.run(arguments + ["--threads", "2"])
    #expect(first.status == 0, "\(first.stderr)")
    let tokens = try #require(first.json?["samples"] as? [[String: Any]]).map { $0["tokens"] as? [Int] ?? [] }
    #expect(tokens.count == 3)
    #expect(Set(tokens).count > 1)
    #expect(tokens == (try #require(second.json?["samples"] as? [[String: Any]])).map { $0["tokens"] as? [Int] ?? [] })
    #expect(first.json?["sampling"] as? String == "temperature 1.0, top-k 50, top-p 1.0, min-p 0.0")
  }

  /// Budget forcing end to end on a random model with Qwen3's vocabulary size: the thinking is cut
  /// after the budget, the paper's forced text follows, then at most --answer-tokens.
  @Test func thinkingBudgetForcesTheAnswer() throws {
    let model = try Fixtures.makeRandomQwen3(vocab: 151_669)
    defer { try? FileManager.default.removeItem(at: model) }
    let result = try Self.run([
      "generate", "--model", model.path, "--tokenizer", Fixtures.qwen3TokenizerDirectory, "--prompt", "What is 2+2?", "--chat",
      "--thinking-budget", "5", "--answer-tokens", "3", "--parallel", "2", "--temperature", "1", "--seed", "3", "--json",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let samples = try #require(result.json?["samples"] as? [[String: Any]])
    let forced = try Self.run(["tokenize", "--tokenizer", Fixtures.qwen3TokenizerDirectory, "--text", "\n</think>\n\n**Final Answer**\n\\boxed{", "--json"])
    let forcedIds = try #require(forced.json?["ids"] as? [Int])
    for sample in samples {
      let tokens = try #require(sample["tokens"] as? [Int])
      #expect(sample["finish"] as? String == "budget")
      #expect(Array(tokens[5..<(5 + forcedIds.count)]) == forcedIds)
      #expect(tokens.count <= 5 + forcedIds.count + 3)
      #expect((sample["text"] as? String)?.contains("**Final Answer**\n\\boxed{") == true)
      #expect(sample["thinking_tokens"] as? Int == 5 + (forcedIds.firstIndex(of: 151668) ?? 0))
    }
    let noTokenizer = try Self.run(["generate", "--model", Self.model, "--ids", "3,4", "--thinking-budget", "4"])
    #expect(noTokenizer.status == 1)
    #expect(noTokenizer.stderr.contains("--thinking-budget needs a tokenizer"))
  }

  /// `chat-template` prints a GGUF model's own template rendering exactly (equal to the
  /// transformers fixture for SmolLM2's template, with its default system prompt), and refuses
  /// bad conversations and templates with one line.
  @Test func chatTemplateCommandRendersTheModelsTemplate() throws {
    let collection = try JSONSerialization.jsonObject(
      with: Data(contentsOf: URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/chat-templates/templates.json")))
    let conversations = try #require((collection as? [String: Any])?["conversations"] as? [String: String])
    let renderings = try #require(
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/chat-templates/renderings.json")))
        as? [[String: Any]])
    let expected = try #require(
      renderings.first {
        $0["template"] as? String == "SmolLM2" && $0["conversation"] as? String == "multi-turn" && $0["add_generation_prompt"] as? Bool == true
      }?["text"] as? String)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("chat-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let messages = folder.appendingPathComponent("messages.json")
    try Data(try #require(conversations["multi-turn"]).utf8).write(to: messages)
    let smollm = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let rendered = try Self.run(["chat-template", "--model", smollm, "--messages", messages.path])
    #expect(rendered.status == 0, "\(rendered.stderr)")
    #expect(rendered.stdout == expected)
    #expect(expected.contains("You are a helpful AI assistant named SmolLM"))

    let qwen = try Self.run(["chat-template", "--model", Fixtures.qwen3TokenizerDirectory, "--messages", messages.path, "--thinking", "off", "--json"])
    #expect(qwen.status == 0, "\(qwen.stderr)")
    #expect((qwen.json?["text"] as? String)?.hasSuffix("<|im_start|>assistant\n<think>\n\n</think>\n\n") == true)
    #expect((qwen.json?["ids"] as? [Int])?.first == 151644)

    try Data("[{\"role\": \"user\"".utf8).write(to: folder.appendingPathComponent("bad.json"))
    let badJSON = try Self.run(["chat-template", "--model", Fixtures.qwen3TokenizerDirectory, "--messages", folder.appendingPathComponent("bad.json").path])
    #expect(badJSON.status == 1)
    #expect(badJSON.stderr.contains("invalid conversation"))
    try Data("{% for %}".utf8).write(to: folder.appendingPathComponent("bad.jinja"))
    let badTemplate = try Self.run([
      "chat-template", "--model", Fixtures.qwen3TokenizerDirectory, "--messages", messages.path, "--chat-template", folder.appendingPathComponent("bad.jinja").path,
    ])
    #expect(badTemplate.status == 1)
    #expect(badTemplate.stderr.contains("line 1, column 8"))
    // Gemma's template refuses two user turns in a row; its message is passed on.
    try Data(try #require(conversations["two-users"]).utf8).write(to: folder.appendingPathComponent("two.json"))
    let gemma = (collection as? [String: Any]).flatMap { ($0["templates"] as? [[String: Any]])?.first { $0["name"] as? String == "Gemma-3" }?["template"] as? String }
    try Data(try #require(gemma).utf8).write(to: folder.appendingPathComponent("gemma.jinja"))
    let refused = try Self.run([
      "chat-template", "--model", Fixtures.qwen3TokenizerDirectory, "--messages", folder.appendingPathComponent("two.json").path,
      "--chat-template", folder.appendingPathComponent("gemma.jinja").path,
    ])
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("refused the conversation: Conversation roles must alternate"))
  }

  /// A tokenizer without a chat template: `--chat` says so instead of using another model's.
  @Test func chatWithoutATemplateIsRefused() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("notemplate-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    try FileManager.default.copyItem(
      atPath: (Fixtures.qwen3TokenizerDirectory as NSString).appendingPathComponent("tokenizer.json"),
      toPath: folder.appendingPathComponent("tokenizer.json").path)
    let model = try Fixtures.makeRandomQwen3(vocab: 151_669)
    defer { try? FileManager.default.removeItem(at: model) }
    let result = try Self.run(["generate", "--model", model.path, "--tokenizer", folder.path, "--prompt", "hi", "--chat", "--max-tokens", "2"])
    #expect(result.status == 1)
    #expect(result.stderr.contains("has no chat template"))
    let builtIn = try Self.run([
      "generate", "--model", model.path, "--tokenizer", folder.path, "--prompt", "hi", "--chat", "--chat-template", "qwen3", "--max-tokens", "2", "--json",
    ])
    #expect(builtIn.status == 0, "\(builtIn.stderr)")
    #expect(builtIn.json?["prompt_tokens"] as? Int == 9)
  }

  /// `--model ORG/NAME` reads a model from the Hugging Face cache laid out as huggingface_hub
  /// writes it (refs/main → snapshots/<commit>/ symlinks into blobs/): the same logits as the
  /// folder; a revision that is not cached is refused naming the cache and the download command.
  @Test func hubIdsReadTheHuggingFaceCache() throws {
    let cache = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: cache) }
    let source = Fixtures.modelPath("qwen3-gqa-tied-f32")
    let commit = "0123456789abcdef0123456789abcdef01234567"
    let repository = cache.appendingPathComponent("models--tiny-org--Tiny.Qwen3")
    let snapshot = repository.appendingPathComponent("snapshots/\(commit)")
    try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: repository.appendingPathComponent("blobs"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: repository.appendingPathComponent("refs"), withIntermediateDirectories: true)
    try Data(commit.utf8).write(to: repository.appendingPathComponent("refs/main"))
    for (index, file) in ["config.json", "generation_config.json", "model.safetensors"].enumerated() {
      let blob = "blob\(index)"
      try FileManager.default.copyItem(atPath: (source as NSString).appendingPathComponent(file), toPath: repository.appendingPathComponent("blobs/\(blob)").path)
      try FileManager.default.createSymbolicLink(atPath: snapshot.appendingPathComponent(file).path, withDestinationPath: "../../blobs/\(blob)")
    }
    let environment = ["HF_HUB_CACHE": cache.path]
    let byPath = try Self.run(["logits", "--model", source, "--ids", "3,17,42", "--json"])
    let byId = try Self.run(["logits", "--model", "tiny-org/Tiny.Qwen3", "--ids", "3,17,42", "--json"], environment: environment)
    let byCommit = try Self.run(["logits", "--model", "tiny-org/Tiny.Qwen3@\(commit)", "--ids", "3,17,42", "--json"], environment: environment)
    #expect(byId.status == 0, "\(byId.stderr)")
    #expect(byId.json?["logits"] as? [[Double]] == byPath.json?["logits"] as? [[Double]])
    #expect(byCommit.json?["logits"] as? [[Double]] == byPath.json?["logits"] as? [[Double]])
    let missing = try Self.run(["logits", "--model", "tiny-org/Tiny.Qwen3@v2", "--ids", "3"], environment: environment)
    #expect(missing.status == 1)
    #expect(missing.stderr.contains("not in the Hugging Face cache") || missing.stderr.contains("nor in the Hugging Face cache"))
    #expect(missing.stderr.contains("bitbudget pull tiny-org/Tiny.Qwen3@v2"))
  }

  /// A Hub id the cache lacks is downloaded by the command that needs it, with progress on
  /// stderr: `generate --chat` on `Qwen/Qwen3-0.6B` (a one-layer random model with Qwen3's
  /// vocabulary and its real tokenizer and chat template, Tests/Fixtures/hub/make_qwen3_repo.py)
  /// and on the real SmolLM2 GGUF, both served by the fake hub under Hub names; `pull` then
  /// finds the GGUF cached and prints its path without a request.
  @Test func hubIdsDownloadWhenMissing() throws {
    let gguf = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("hub-cli-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: root) }
    try FileManager.default.createDirectory(atPath: root + "/repo", withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: root + "/repo/SmolLM2-135M-Instruct.Q4_1.gguf", withDestinationPath: gguf)
    let maker = Process()
    maker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    maker.arguments = [
      "python3", (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/hub/make_qwen3_repo.py"),
      (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/qwen3-tokenizer"), root + "/qwen3",
    ]
    try maker.run()
    maker.waitUntilExit()
    #expect(maker.terminationStatus == 0)
    let log = root + "/requests.jsonl"
    let hub = try LoopbackScript(
      script: "Tests/Fixtures/hub/fake_hub.py",
      arguments: ["--repo", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF=\(root)/repo", "--repo", "Qwen/Qwen3-0.6B=\(root)/qwen3", "--log", log])
    defer { hub.stop() }
    let environment = ["HF_ENDPOINT": "http://127.0.0.1:\(hub.port)", "HF_HUB_CACHE": root + "/cache", "HF_HUB_OFFLINE": "0"]
    let qwen = try Self.run(
      ["generate", "--model", "Qwen/Qwen3-0.6B", "--chat", "--prompt", "What is 2+2?", "--max-tokens", "4", "--json"], environment: environment)
    #expect(qwen.status == 0, "\(qwen.stderr)")
    #expect(qwen.stderr.contains("Qwen/Qwen3-0.6B at ") && qwen.stderr.contains("model.safetensors: 9.3 MiB"), "\(qwen.stderr)")
    // As transformers' apply_chat_template(…, add_generation_prompt=True) counts them.
    #expect(qwen.json?["prompt_tokens"] as? Int == 15)
    let id = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_1"
    let generated = try Self.run(
      ["generate", "--model", id, "--chat", "--prompt", "What is 2+2?", "--max-tokens", "6", "--greedy"], environment: environment)
    #expect(generated.status == 0, "\(generated.stderr)")
    #expect(generated.stderr.contains("SmolLM2-135M-Instruct.Q4_1.gguf: 93.8 MiB"), "\(generated.stderr)")
    #expect(!generated.stdout.isEmpty)
    let requests = jsonLines(log).count
    let pulled = try Self.run(["pull", id, "--json"], environment: environment)
    #expect(pulled.status == 0, "\(pulled.stderr)")
    let path = try #require(pulled.json?["path"] as? String)
    #expect(path.hasPrefix(root + "/cache/models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF/snapshots/") && path.hasSuffix(".gguf"))
    #expect(FileManager.default.contentsEqual(atPath: URL(fileURLWithPath: path).resolvingSymlinksInPath().path, andPath: gguf))
    #expect(jsonLines(log).count == requests)
    // The memory model reads headers of cached models only: it never downloads one.
    let before = jsonLines(log).count
    let memory = try Self.run(["memory", "--model", "Qwen/Qwen3-1.7B", "--tokens", "10"], environment: environment)
    #expect(memory.status == 1 && memory.stderr.contains("bitbudget pull Qwen/Qwen3-1.7B"), "\(memory.stderr)")
    #expect(jsonLines(log).count == before)
    let unknown = try Self.run(["pull", "HuggingFaceTB/nothing"], environment: environment)
    #expect(unknown.status == 1 && unknown.stderr.contains("HTTP 401"), "\(unknown.stderr)")
  }

  @Test func helpExitsZero() throws {
    let result = try Self.run(["--help"])
    #expect(result.status == 0)
    for command in ["generate", "tokenize", "logits", "bench"] { #expect(result.stdout.contains(command)) }
  }
}

enum GPTQFixture {
  static let path = (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/gptq/python-actorder-4bit")
}
