import Foundation
import SwiftCSV

/// How a task's answers are compared.
public enum AnswerType: String, Sendable, Codable, CaseIterable {
  /// AIME-style: extracted with `\boxed{}` and the fallbacks, compared as integers.
  case integer
  /// Multiple choice: one letter.
  case letter
  /// Compared as numbers (within 1e-6 relative), e.g. `3.5` = `\frac{7}{2}`.
  case number
  /// Compared as strings after math normalization.
  case string
}

/// One question: its prompt text (the user message, before the chat template), the gold answer
/// in normalized form, and for multiple choice the shown choices.
public struct TaskItem: Sendable, Equatable, Codable {
  public let id: String
  public let question: String
  public let gold: String
  public let choices: [String]?

  public init(id: String, question: String, gold: String, choices: [String]? = nil) {
    self.id = id
    self.question = question
    self.gold = gold
    self.choices = choices
  }
}

/// A set of questions with one answer type and prompt template.
public struct EvalTask: Sendable {
  public let name: String
  public let answerType: AnswerType
  public let items: [TaskItem]
  /// The user message; `{question}` (and for letters `{choices}`) are replaced.
  public var template: String

  public init(name: String, answerType: AnswerType, items: [TaskItem], template: String? = nil) {
    self.name = name
    self.answerType = answerType
    self.items = items
    self.template = template ?? Self.defaultTemplate(answerType)
  }

  /// The Qwen recommendations (`algorithms.md` §8.2): math problems ask for a boxed answer;
  /// multiple choice uses simple-evals' template.
  public static func defaultTemplate(_ type: AnswerType) -> String {
    switch type {
    case .letter:
      return "Answer the following multiple choice question. The last line of your response should be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before answering.\n\n{question}\n\n{choices}"
    default:
      return "{question}\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    }
  }

  /// The user message of `item`.
  public func prompt(for item: TaskItem) -> String {
    var text = template.replacingOccurrences(of: "{question}", with: item.question)
    if let choices = item.choices {
      let lines = choices.enumerated().map { "\(Character(UnicodeScalar(UInt8(65 + $0.offset))))) \($0.element)" }
      text = text.replacingOccurrences(of: "{choices}", with: lines.joined(separator: "\n"))
    }
    return text
  }

  /// The normalized answer of `output`, or nil when none can be extracted.
  public func extractAnswer(_ output: String) -> String? {
    switch answerType {
    case .letter:
      return AnswerExtractor.letter(output, letters: String("ABCDEFGHIJ".prefix(max(2, items.first?.choices?.count ?? 4))))
    case .integer:
      return AnswerExtractor.math(output).flatMap(MathNormalizer.integer).map(String.init)
    case .number:
      return AnswerExtractor.math(output).flatMap(MathNormalizer.number).map { String($0) }
    case .string:
      return AnswerExtractor.math(output).map(MathNormalizer.normalize)
    }
  }

  /// Whether an extracted answer equals the gold one.
  public func isCorrect(_ answer: String?, gold: String) -> Bool {
    answerType.isCorrect(answer, gold: gold)
  }

  /// A fingerprint of what the model is asked and how its answers are read: the answer type,
  /// the prompt template and every question's id, text and choices — not the gold answers, so
  /// fixing an answer key re-grades stored samples instead of starting new scenarios.
  public var contentDigest: String {
    var hash = ContentHash()
    hash.addField(answerType.rawValue)
    hash.addField(template)
    for item in items {
      hash.addField(item.id)
      hash.addField(item.question)
      hash.addField(item.choices.map { "\($0.count)" } ?? "-")
      for choice in item.choices ?? [] { hash.addField(choice) }
    }
    return hash.hex
  }
}

extension AnswerType {
  /// Whether a normalized extracted answer equals a normalized gold answer (numbers within
  /// 1e-6 relative).
  public func isCorrect(_ answer: String?, gold: String) -> Bool {
    guard let answer else { return false }
    if self == .number, let a = Double(answer), let b = Double(gold) {
      return abs(a - b) <= 1e-6 * max(1, abs(b))
    }
    return answer == gold
  }
}

extension EvalTask {
  /// A JSONL task: one object per line with a question (`problem`, `question`, `Problem` or
  /// `Question`), an `answer` (`Answer`, `solution`…), and optionally `id` and `choices` (for
  /// letters: a list whose order is shown as A, B, …; `answer` then a letter or the correct
  /// choice's text). Hugging Face's `math-ai/aime25` and `yentinglin/aime_2025` files load as
  /// they are. Gold answers are normalized like extracted ones; an answer that cannot be read as
  /// the type is an error naming the line.
  public static func jsonl(path: String, answerType: AnswerType, name: String? = nil) throws -> EvalTask {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw EvalError.unreadableFile(path: path, reason: "no such file or not readable")
    }
    guard let text = String(data: data, encoding: .utf8) else { throw EvalError.unreadableFile(path: path, reason: "not UTF-8") }
    var items: [TaskItem] = []
    var ids = Set<String>()
    // "\r\n" is one Character in Swift: split on it too, or a Windows file is one long line.
    let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
    for (number, line) in lines.enumerated() {
      let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !trimmed.isEmpty else { continue }
      let location = "\(path):\(number + 1)"
      guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
        throw EvalError.invalidTask(location: location, reason: "not a JSON object")
      }
      func field(_ names: [String]) -> Any? { names.lazy.compactMap { object[$0] }.first { !($0 is NSNull) } }
      guard let question = field(["problem", "question", "Problem", "Question"]) as? String, !question.isEmpty else {
        throw EvalError.invalidTask(location: location, reason: "no \"problem\" or \"question\" text")
      }
      guard let rawAnswer = field(["answer", "Answer"]) else {
        throw EvalError.invalidTask(location: location, reason: "no \"answer\"")
      }
      let answerText: String
      switch rawAnswer {
      case let s as String: answerText = s
      case let n as NSNumber where String(cString: n.objCType) != "c": answerText = n.stringValue  // "c": a JSON boolean
      default: throw EvalError.invalidTask(location: location, reason: "\"answer\" must be a string or a number")
      }
      var choices: [String]?
      if let list = field(["choices", "options"]) {
        guard let strings = list as? [String], (2...10).contains(strings.count) else {
          throw EvalError.invalidTask(location: location, reason: "\"choices\" must be a list of 2 to 10 strings")
        }
        choices = strings
      }
      let id: String
      switch field(["id", "ID", "problem_id", "idx"]) {
      case let s as String: id = s
      case let n as NSNumber: id = n.stringValue
      default: id = String(items.count)
      }
      guard ids.insert(id).inserted else { throw EvalError.invalidTask(location: location, reason: "duplicate id \"\(id)\"") }
      let gold = try normalizedGold(answerText, type: answerType, choices: choices, location: location)
      items.append(TaskItem(id: id, question: question, gold: gold, choices: choices))
    }
    guard !items.isEmpty else { throw EvalError.invalidTask(location: path, reason: "no questions") }
    if answerType == .letter, items.contains(where: { $0.choices == nil }) {
      throw EvalError.invalidTask(location: path, reason: "letter answers need \"choices\" on every line")
    }
    return EvalTask(name: name ?? (path as NSString).lastPathComponent, answerType: answerType, items: items)
  }

  static func normalizedGold(_ answer: String, type: AnswerType, choices: [String]?, location: String) throws -> String {
    switch type {
    case .integer:
      guard let value = MathNormalizer.integer(answer) else {
        throw EvalError.invalidTask(location: location, reason: "answer \"\(answer)\" is not an integer")
      }
      return String(value)
    case .number:
      guard let value = MathNormalizer.number(answer) else {
        throw EvalError.invalidTask(location: location, reason: "answer \"\(answer)\" is not a number")
      }
      return String(value)
    case .string:
      return MathNormalizer.normalize(answer)
    case .letter:
      let letters = "ABCDEFGHIJ".prefix(choices?.count ?? 4)
      let trimmed = answer.trimmingCharacters(in: CharacterSet(charactersIn: " ()."))
      if trimmed.count == 1, let c = trimmed.uppercased().first, letters.contains(c) { return String(c) }
      if let index = choices?.firstIndex(of: answer) { return String(letters[letters.index(letters.startIndex, offsetBy: index)]) }
      throw EvalError.invalidTask(location: location, reason: "answer \"\(answer)\" is neither a letter A–\(letters.last.map(String.init) ?? "D") nor one of the choices")
    }
  }

  /// GPQA from its official CSV (`Question`, `Correct Answer`, `Incorrect Answer 1..3`, and
  /// `Record ID` when present). The four choices of question `i` (0-based, file order) are
  /// shuffled by Fisher–Yates with `SeededGenerator(seed: seed ^ (i · 0x9E3779B97F4A7C15))`, so the
  /// order is fixed by the seed and the question's position.
  public static func gpqa(csvPath path: String, seed: UInt64 = 0, name: String = "gpqa-diamond") throws -> EvalTask {
    let csv: CSV<Named>
    do {
      csv = try CSV<Named>(url: URL(fileURLWithPath: path), delimiter: .comma, loadColumns: false)
    } catch let error as CSVParseError {
      throw EvalError.invalidTask(location: path, reason: "malformed CSV (\(error))")
    } catch {
      throw EvalError.unreadableFile(path: path, reason: error.localizedDescription)
    }
    let needed = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]
    let missing = needed.filter { !csv.header.contains($0) }
    guard missing.isEmpty else {
      throw EvalError.invalidTask(location: path, reason: "missing column(s) \(missing.joined(separator: ", ")) (GPQA's CSV has \(needed.joined(separator: ", ")))")
    }
    var items: [TaskItem] = []
    for (i, row) in csv.rows.enumerated() {
      let location = "\(path) row \(i + 2)"
      let values = needed.map { (row[$0] ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
      guard values.allSatisfy({ !$0.isEmpty }) else {
        throw EvalError.invalidTask(location: location, reason: "an empty question or answer")
      }
      var order = [0, 1, 2, 3]
      var generator = SeededGenerator(seed: seed ^ (UInt64(i) &* 0x9E37_79B9_7F4A_7C15))
      order.shuffle(using: &generator)
      let choices = order.map { values[1 + $0] }
      let gold = String("ABCD"[String.Index(utf16Offset: order.firstIndex(of: 0)!, in: "ABCD")])
      let id = (row["Record ID"]).flatMap { $0.isEmpty ? nil : $0 } ?? String(i)
      items.append(TaskItem(id: id, question: values[0], gold: gold, choices: choices))
    }
    guard !items.isEmpty else { throw EvalError.invalidTask(location: path, reason: "no questions") }
    return EvalTask(name: name, answerType: .letter, items: items)
  }
}
