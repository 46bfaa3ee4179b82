import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEval

/// Answer extraction on a committed corpus of tricky outputs (Tests/Fixtures/eval/extraction.json):
/// nested braces, `\boxed 5`, `\text{}` units, several boxes, truncated thinking, the answer part
/// before the thinking, the parser's fallbacks, letters in prose and in Qwen's JSON.
@Suite struct AnswerExtractionTests {
  struct Case: Decodable {
    let output: String
    let type: String
    let expected: String?
  }

  @Test func corpus() throws {
    let path = (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/eval/extraction.json")
    struct File: Decodable { let cases: [Case] }
    let cases = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path))).cases
    #expect(cases.count >= 40)
    for c in cases {
      let type = try #require(AnswerType(rawValue: c.type))
      let task = EvalTask(name: "t", answerType: type, items: [TaskItem(id: "0", question: "q", gold: "0", choices: type == .letter ? ["a", "b", "c", "d"] : nil)])
      var got = task.extractAnswer(c.output)
      if type == .number, let value = got.flatMap(Double.init) { got = String(value) }
      let expected = type == .number ? c.expected.flatMap(Double.init).map { String($0) } : c.expected
      #expect(got == expected, "\(c.type) \(c.output.debugDescription)")
    }
  }

  @Test func goldAnswersAreComparedAfterTheSameNormalization() {
    let task = EvalTask(name: "t", answerType: .number, items: [])
    #expect(task.isCorrect("3.5", gold: "3.5000000001"))
    #expect(!task.isCorrect("3.5", gold: "3.6"))
    #expect(!task.isCorrect(nil, gold: "1"))
    #expect(MathNormalizer.integer("1,234") == 1234 && MathNormalizer.integer("12.5") == nil)
  }
}
