import Foundation
import PropertyBased
import Testing

@testable import BitBudgetEval

/// Properties of answer extraction and normalization over generated text: arbitrary Unicode
/// (any scalar, including combining marks, emoji parts, controls and noncharacters) mixed with
/// the fragments the parsers look for (`\boxed{`, braces, `$`, `</think>`, `=`, `/`, `\frac`…),
/// so that random strings reach the parsers' branches instead of only their "nothing found" path.
@Suite struct AnswerPropertyTests {
  static let fragments = [
    "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "$", "\\", " ", "\n", "</think>", "<think>", "=", "x=", ".", ",", "/",
    "-", "\\frac", "\\dfrac", "12", "7", "0", "\\left", "\\right", "\\text{", "\\mbox{", "cm", "%", "^\\circ", "Answer:",
    " (C)", "\"answer\": \"B\"", "final answer is $", "$. I hope", "The answer is", "é", "\u{301}", "👍🏽", "\u{200D}", "日本",
    "\u{FEFF}", "\r\n",
  ]

  /// A piece is a fragment or one scalar anywhere in Unicode (surrogate code points, which are not
  /// scalars, become U+FFFD).
  static let text = zip(Gen.int(in: 0...(2 * fragments.count)), Gen.uint32(in: 0...0x10FFFF))
    .map { choice, code -> String in
      if choice < fragments.count { return fragments[choice] }
      return String(Unicode.Scalar(code) ?? "\u{FFFD}")
    }
    .array(of: 0...40)
    .map { $0.joined() }

  static func task(_ type: AnswerType) -> EvalTask {
    EvalTask(
      name: "t", answerType: type,
      items: [TaskItem(id: "0", question: "q", gold: "0", choices: type == .letter ? ["a", "b", "c", "d"] : nil)])
  }

  /// Every entry point returns (anything) on any text: no trap on indices, ranges or integer
  /// conversions.
  @Test func extractionNeverCrashes() async {
    let tasks = [AnswerType.integer, .number, .string, .letter].map(Self.task)
    await propertyCheck(count: 400, input: Self.text) { text in
      _ = AnswerExtractor.lastBoxed(text)
      _ = AnswerExtractor.answerPart(of: text)
      if let math = AnswerExtractor.math(text) {
        _ = MathNormalizer.integer(math)
        _ = MathNormalizer.number(math)
      }
      _ = MathNormalizer.normalize(text)
      _ = MathNormalizer.integer(text)
      _ = MathNormalizer.number(text)
      if let letter = AnswerExtractor.letter(text) { #expect(["A", "B", "C", "D"].contains(letter)) }
      for task in tasks { _ = task.extractAnswer(text) }
    }
  }

  /// A final `\boxed{X}` is the answer whatever precedes it, as long as the preceding text has no
  /// box of its own: the raw extraction, the integer task's answer and the string task's.
  @Test func finalBoxedIntegerIsTheAnswer() async {
    let prose = Self.text.filter { !$0.contains("boxed") && !$0.contains("fbox") }
    await propertyCheck(count: 400, input: prose, Gen.int(in: -100_000...100_000)) { text, x in
      let output = text + "\\boxed{\(x)}"
      #expect(AnswerExtractor.math(output) == String(x))
      #expect(Self.task(.integer).extractAnswer(output) == String(x))
      #expect(Self.task(.string).extractAnswer(output) == String(x))
    }
  }

  /// Normalizing a normalized answer changes nothing, so that gold answers (normalized when a
  /// task is loaded) and extracted ones compare alike however often either went through it.
  ///
  /// Finding: this does not hold. One pass removes `$`, `\left`, … and spaces in a fixed order, so
  /// a removal can join the pieces of a token that an earlier step already looked for, and
  /// `\frac` repair adds one brace group per pass (see `normalizationIsNotIdempotent`). Marked as
  /// a known issue, intermittent because a given run's random inputs may miss it.
  @Test func normalizationIsIdempotent() async {
    await withKnownIssue("normalize is not idempotent: a removal can form a token an earlier step removes", isIntermittent: true) {
      await propertyCheck(count: 400, input: Self.text) { text in
        let once = MathNormalizer.normalize(text)
        #expect(MathNormalizer.normalize(once) == once, "\(text.debugDescription) → \(once.debugDescription)")
      }
    }
  }

  /// Counterexamples to idempotence: removing spaces or `$` joins `\left`, `\text{` or `tfrac`,
  /// which the next pass removes or rewrites; a `\frac` without braces gets one group per pass.
  /// The first normalization and the second are pinned, so that a change to either shows here.
  @Test(arguments: [
    ("\\le ft5", "\\left5", "5"),
    ("\\le$ft5", "\\left5", "5"),
    ("\\text {7}", "\\text{7}", "7"),
    ("\\t frac12", "\\tfrac12", "\\frac{1}{2}"),
    ("\\frac}", "\\frac{}}", "\\frac{}{}}"),
  ])
  func normalizationIsNotIdempotent(input: String, once: String, twice: String) {
    let first = MathNormalizer.normalize(input)
    #expect(first == once)
    #expect(MathNormalizer.normalize(first) == twice)
    withKnownIssue("normalize is not idempotent on \(input.debugDescription)") {
      #expect(MathNormalizer.normalize(first) == first)
    }
  }
}
