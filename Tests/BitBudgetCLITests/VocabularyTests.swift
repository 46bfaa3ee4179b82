import BitBudgetEval
import BitBudgetTestSupport
import Foundation
import Testing

/// One vocabulary across commands: `--parallel` is G and `--samples` samples per question
/// everywhere, `--weights`/`--weight-group` the precision, `--model` the input, `--out` what is
/// written, `--memory` a size; JSON keys match the flags. Old spellings name their replacement.
@Suite struct VocabularyTests {
  @Test(arguments: [
    (["convert", "--gguf", "x.gguf", "--out", "/tmp/x"], "convert: --gguf is now --model"),
    (["quantize", "--model", CLITests.model, "--bits", "4", "--out", "/tmp/x"], "quantize: --bits is now --weights"),
    (["quantize", "--model", CLITests.model, "--weights", "4", "--group-size=64", "--out", "/tmp/x"], "quantize: --group-size is now --weight-group"),
    (["generate", "--model", CLITests.model, "--ids", "1", "--samples", "2"], "generate: --samples is now --parallel"),
    (["bench", "--model", CLITests.model, "--samples", "2"], "bench: --samples is now --parallel"),
    (["memory", "--model", "qwen3-8b", "--tokens", "10", "--samples", "2"], "memory: --samples is now --parallel"),
    (["memory", "--model", "qwen3-8b", "--budget", "20GiB", "--tokens", "10", "--solve", "samples"], "memory: --solve samples is now --solve parallel"),
    (["frontier", "--db", "x.sqlite", "--memory", "measured"], "frontier: --memory is now --memory-source"),
    (["export", "--db", "x.sqlite", "--output", "x.csv"], "export: --output is now --out"),
  ])
  func oldSpellingsNameTheNewOnes(arguments: [String], message: String) throws {
    HardeningTests.oneLineError(try CLITests.run(arguments), mentioning: message)
  }

  /// `--weight-group` is checked alike wherever it is taken.
  @Test(arguments: [
    ["generate", "--model", CLITests.model, "--ids", "1", "--weights", "4", "--weight-group", "48"],
    ["memory", "--model", "qwen3-8b", "--tokens", "10", "--weights", "4", "--weight-group", "48"],
    ["quantize", "--model", CLITests.model, "--weights", "4", "--weight-group", "48", "--out", "/tmp/x"],
  ])
  func weightGroupIsCheckedEverywhere(arguments: [String]) throws {
    HardeningTests.oneLineError(try CLITests.run(arguments), mentioning: "--weight-group must be -1, 32 or a positive multiple of 64")
  }

  /// `--samples` keeps its meaning where it always meant samples per question.
  @Test func evalStillTakesSamples() throws {
    let result = try CLITests.run(["eval", "--model", CLITests.model, "--task", "/nonexistent.jsonl", "--db", "/tmp/x.sqlite", "--samples", "2"])
    #expect(result.status == 1 && !result.stderr.contains("is now"), "\(result.stderr)")
  }

  @Test func versionIsPrinted() throws {
    let result = try CLITests.run(["--version"])
    #expect(result.status == 0)
    #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3, "\(result.stdout)")
  }

  /// The thread count's default is described, not printed as this machine's number as well.
  @Test func helpDescribesDefaultsOnce() throws {
    for command in ["generate", "quantize", "memory", "sweep"] {
      let result = try CLITests.run(["help", command])
      #expect(result.status == 0)
      #expect(result.stdout.contains("(default: all processors)") && !result.stdout.contains("all processors). (default:"), "\(command)")
    }
  }

  /// G is `parallel` and the weight precision `weight_bits` in every command's JSON.
  @Test func jsonKeysFollowTheFlags() throws {
    let memory = try #require(try CLITests.run(["memory", "--model", "qwen3-8b", "--tokens", "100", "--parallel", "3", "--json"]).json)
    #expect(memory["parallel"] as? Int == 3 && memory["weight_bits"] as? Int == 16 && memory["samples"] == nil && memory["weights_bits"] == nil)
    let solved = try #require(try CLITests.run(["memory", "--model", "qwen3-0.6b", "--budget", "4GiB", "--tokens", "1000", "--solve", "parallel", "--json"]).json)
    #expect((solved["max_parallel"] as? Int ?? 0) > 1 && solved["max_parallel"] as? Int == solved["parallel"] as? Int, "\(solved)")
    let bench = try CLITests.run([
      "bench", "--model", CLITests.model, "--prompt-tokens", "8", "--gen-tokens", "2", "--repetitions", "1", "--parallel", "2", "--json",
    ])
    #expect(bench.json?["parallel"] as? Int == 2 && bench.json?["depth"] as? Int == 1, "\(bench.stderr)")
    #expect(bench.json?["samples"] == nil)
  }

  /// `generate --parallel G` reports every sample's extracted answer (as eval reads answers) and
  /// their majority, in JSON and on the terminal's text.
  @Test func parallelSamplesReportTheMajority() throws {
    let model = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let arguments = [
      "generate", "--model", model, "--prompt", "What is 12+30? Give the final answer in \\boxed{}.", "--chat", "--parallel", "3",
      "--temperature", "0.7", "--max-tokens", "40", "--seed", "2",
    ]
    let result = try CLITests.run(arguments + ["--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let samples = try #require(result.json?["samples"] as? [[String: Any]])
    #expect(samples.count == 3)
    // Extracted from the text as shown, without the end-of-turn token.
    let answers = samples.map {
      AnswerExtractor.math(($0["text"] as? String ?? "").replacingOccurrences(of: "<|im_end|>", with: "")).map(MathNormalizer.normalize)
    }
    #expect(samples.map { $0["extracted_answer"] as? String } == answers)
    #expect(answers.contains { $0 != nil }, "the seed should give at least one answer: \(samples.map { $0["text"] ?? "" })")
    #expect(result.json?["majority_answer"] as? String == AccuracyMetrics.majority(answers))

    let text = try CLITests.run(arguments)
    #expect(text.status == 0, "\(text.stderr)")
    #expect(text.stdout.contains("── sample 3 of 3") && text.stdout.contains("majority answer: \(AccuracyMetrics.majority(answers) ?? "none")"), "\(text.stdout)")
    #expect(!text.stdout.contains("<|im_end|>"))
    #expect(text.stderr.contains("tokens/s") && text.stderr.contains("peak RSS"), "\(text.stderr)")
  }
}
