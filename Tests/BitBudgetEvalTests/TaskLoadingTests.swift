import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEval

/// Task files in the real schemas (synthetic items; no GPQA data is committed), and their errors.
@Suite struct TaskLoadingTests {
  static func write(_ text: String, _ name: String) throws -> String {
    let directory = try Fixtures.temporaryDirectory("eval-tasks")
    let path = directory.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func aimeStyleJSONL() throws {
    let path = try Self.write("""
      {"id": "2025-I-1", "problem": "Find $x$ if $x+1=71$.", "answer": "070"}
      {"Problem": "What is 2+2?", "Answer": 4, "ID": 7}

      {"question": "Half of 9?", "answer": "4.5", "id": "q3"}
      """, "aime.jsonl")
    #expect(throws: EvalError.self) { try EvalTask.jsonl(path: path, answerType: .integer) }  // 4.5 is not an integer
    let numbers = try EvalTask.jsonl(path: path, answerType: .number)
    #expect(numbers.items.map(\.id) == ["2025-I-1", "7", "q3"])
    #expect(numbers.items.map(\.gold) == ["70.0", "4.0", "4.5"])
    let prompt = numbers.prompt(for: numbers.items[0])
    #expect(prompt.hasPrefix("Find $x$ if $x+1=71$.") && prompt.hasSuffix("within \\boxed{}."))
    #expect(numbers.isCorrect(numbers.extractAnswer("so x = \\boxed{70}"), gold: numbers.items[0].gold))
  }

  /// A file saved on Windows reads like the same file with Unix line ends (errors keep their line
  /// numbers).
  @Test func crlfLineEndsAreLineEnds() throws {
    let unix = "{\"id\": \"a\", \"problem\": \"1+1?\", \"answer\": 2}\n\n{\"id\": \"b\", \"problem\": \"2+2?\", \"answer\": 4}\n"
    let windows = try EvalTask.jsonl(path: try Self.write(unix.replacingOccurrences(of: "\n", with: "\r\n"), "crlf.jsonl"), answerType: .integer)
    let plain = try EvalTask.jsonl(path: try Self.write(unix, "lf.jsonl"), answerType: .integer)
    #expect(windows.items == plain.items && windows.items.count == 2)
    let broken = "{\"id\": \"a\", \"problem\": \"1+1?\", \"answer\": 2}\r\n{oops}\r\n"
    #expect {
      try EvalTask.jsonl(path: try Self.write(broken, "broken.jsonl"), answerType: .integer)
    } throws: { error in String(describing: error).contains("broken.jsonl:2") }
  }

  /// Tasks are identified by what the model is asked, not by their file's name; gold answers
  /// are left out, so a corrected answer key re-grades instead of starting over.
  @Test func contentDigestCoversQuestionsNotGoldAnswers() {
    let items = [TaskItem(id: "1", question: "What is 2+2?", gold: "4"), TaskItem(id: "2", question: "3*3?", gold: "9")]
    let task = EvalTask(name: "arith.jsonl", answerType: .integer, items: items)
    var otherGold = items
    otherGold[0] = TaskItem(id: "1", question: "What is 2+2?", gold: "5")
    var otherQuestion = items
    otherQuestion[1] = TaskItem(id: "2", question: "3*4?", gold: "9")
    #expect(task.contentDigest.count == 16)
    #expect(EvalTask(name: "other.jsonl", answerType: .integer, items: otherGold).contentDigest == task.contentDigest)
    #expect(EvalTask(name: "arith.jsonl", answerType: .integer, items: otherQuestion).contentDigest != task.contentDigest)
    #expect(EvalTask(name: "arith.jsonl", answerType: .string, items: items).contentDigest != task.contentDigest)
    #expect(EvalTask(name: "arith.jsonl", answerType: .integer, items: Array(items.reversed())).contentDigest != task.contentDigest)
    // Field boundaries count: moving text between id and question changes the digest.
    let shifted = [TaskItem(id: "1W", question: "hat is 2+2?", gold: "4"), items[1]]
    #expect(EvalTask(name: "arith.jsonl", answerType: .integer, items: shifted).contentDigest != task.contentDigest)
  }

  @Test func letterJSONLAndErrors() throws {
    let good = try Self.write(#"{"question": "Pick", "choices": ["x", "y", "z"], "answer": "z"}"#, "mc.jsonl")
    let task = try EvalTask.jsonl(path: good, answerType: .letter)
    #expect(task.items[0].gold == "C")
    #expect(task.prompt(for: task.items[0]).contains("A) x\nB) y\nC) z"))
    let cases: [(String, String)] = [
      ("{\"question\": \"q\"}", "no \"answer\""),
      ("[1, 2]", "not a JSON object"),
      ("{\"problem\": \"\", \"answer\": 1}", "no \"problem\""),
      ("{\"problem\": \"a\", \"answer\": 1, \"id\": 1}\n{\"problem\": \"b\", \"answer\": 2, \"id\": 1}", "duplicate id"),
      ("{\"problem\": \"a\", \"answer\": true}", "string or a number"),
      ("", "no questions"),
      ("{\"problem\": \"a\", \"answer\": \"seven\"}", "not an integer"),
    ]
    for (text, phrase) in cases {
      let path = try Self.write(text, "bad.jsonl")
      do {
        _ = try EvalTask.jsonl(path: path, answerType: .integer)
        Issue.record("accepted: \(text)")
      } catch let error as EvalError {
        #expect(error.description.contains(phrase), "\(error)")
        #expect(!error.description.contains("\n"))
      }
    }
    let noChoices = try Self.write(#"{"question": "Pick", "answer": "A"}"#, "mc2.jsonl")
    #expect(throws: EvalError.self) { try EvalTask.jsonl(path: noChoices, answerType: .letter) }
  }

  @Test func gpqaCSVWithASeededShuffle() throws {
    let csv = """
      Record ID,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3,Subdomain
      rec1,"Which particle, when
      accelerated, radiates?",electron,neutron,"neutrino, massive",photon,Physics
      rec2,What is H2O?,water,salt,sand,air,Chemistry
      """
    let path = try Self.write(csv, "gpqa.csv")
    let task = try EvalTask.gpqa(csvPath: path, seed: 3)
    #expect(task.items.count == 2 && task.answerType == .letter)
    #expect(task.items[0].question == "Which particle, when\naccelerated, radiates?")
    for (item, correct) in zip(task.items, ["electron", "water"]) {
      let index = Int(item.gold.unicodeScalars.first!.value) - 65
      #expect(item.choices?[index] == correct)
      #expect(Set(item.choices ?? []).count == 4)
    }
    #expect(task.items[0].choices!.contains("neutrino, massive"))
    // Same seed, same order; another seed reorders at least one question.
    #expect(try EvalTask.gpqa(csvPath: path, seed: 3).items == task.items)
    let others = try (0..<8).map { try EvalTask.gpqa(csvPath: path, seed: UInt64(100 + $0)).items.map(\.gold) }
    #expect(Set(others).count > 1)
    let missing = try Self.write("Question,Correct Answer\nq,a\n", "bad.csv")
    #expect(throws: EvalError.self) { try EvalTask.gpqa(csvPath: missing) }
  }

  @Test func namedTasksResolveInTheTaskFolderOrSayWhereToPutThem() throws {
    let folder = try Fixtures.temporaryDirectory("named-tasks")
    setenv("BITBUDGET_TASKS", folder.path, 1)
    defer { unsetenv("BITBUDGET_TASKS") }
    do {
      _ = try EvalTask.load("aime25")
      Issue.record("a missing aime25 loaded")
    } catch {
      #expect("\(error)".contains("math-ai/aime25") && "\(error)".contains(folder.path), "\(error)")
    }
    try #"{"id": "1", "problem": "p", "answer": "033"}"#.write(
      to: folder.appendingPathComponent("aime25.jsonl"), atomically: true, encoding: .utf8)
    let task = try EvalTask.load("aime25")
    #expect(task.name == "aime25" && task.answerType == .integer && task.items.first?.gold == "33")
    #expect(throws: EvalError.self) { try EvalTask.load("gpqa-diamond") }
    #expect(throws: EvalError.self) { try EvalTask.load("x.csv", answerType: .integer) }
  }
}
