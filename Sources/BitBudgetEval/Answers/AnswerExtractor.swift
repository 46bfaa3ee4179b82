/// Pulls the final answer out of a model's output (`algorithms.md` §7.4).
///
/// Math: the last `\boxed{…}` (brace-matched; `\boxed 5` reads up to the next `$` or line end),
/// else the fallbacks of the Qwen2.5-Math/R-KV parser — `final answer is $…$. I hope`, `he
/// answer is`, `final answer is` — else the last number. Letters (multiple choice): `Answer: C`
/// (simple-evals), `\boxed{C}` / `\boxed{\text{C}}`, `"answer": "C"` (Qwen's JSON), `(C)`.
/// The answer part (after the last end of thinking) is searched first, then the whole output (a
/// truncated thinking often boxes its answer inside the thinking).
public enum AnswerExtractor {
  /// How reasoning models close their thinking: `</think>` (Qwen3, QwQ, DeepSeek-R1, SmolLM3,
  /// Phi-4-reasoning) and `[/THINK]` (Mistral's Magistral), the closings of the tokenizer's
  /// `ThinkingTags.known`.
  public static let thinkingEnds = ["</think>", "[/THINK]"]

  /// The text after the last end of thinking, or nil if thinking never closed.
  public static func answerPart(of output: String) -> Substring? {
    let ends = thinkingEnds.compactMap { output.range(of: $0, options: .backwards) }
    guard let end = ends.max(by: { $0.upperBound < $1.upperBound }) else { return nil }
    return output[end.upperBound...]
  }

  /// The extracted math answer (not normalized), or nil.
  public static func math(_ output: String) -> String? {
    if let part = answerPart(of: output), let found = mathCandidate(String(part)) { return found }
    return mathCandidate(output)
  }

  /// The extracted letter `A`–`D` (or up to `letters`), or nil.
  public static func letter(_ output: String, letters: String = "ABCD") -> String? {
    if let part = answerPart(of: output), let found = letterCandidate(String(part), letters: letters) { return found }
    return letterCandidate(output, letters: letters)
  }

  // MARK: Math

  static func mathCandidate(_ text: String) -> String? {
    if let boxed = lastBoxed(text) { return boxed }
    for (marker, end) in [("final answer is $", "$. I hope"), ("he answer is", nil), ("final answer is", nil)] as [(String, String?)] {
      guard let range = text.range(of: marker, options: .backwards) else { continue }
      var rest = text[range.upperBound...]
      if let end, let stop = rest.range(of: end) { rest = rest[..<stop.lowerBound] }
      let candidate = rest.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
      let trimmed = candidate.trimmingCharacters(in: [" ", ":", "$", "."])
      if !trimmed.isEmpty { return trimmed }
    }
    return lastNumber(text)
  }

  /// The content of the last `\boxed` (or `\fbox`): brace-matched after `{`, else up to the next
  /// `$` or line end. Nil when there is none or its braces never close.
  public static func lastBoxed(_ text: String) -> String? {
    let scalars = Array(text.unicodeScalars)
    var position: Int?
    for marker in ["boxed", "fbox"] {
      if let found = lastIndex(of: marker, in: scalars), found > (position ?? -1) { position = found + marker.unicodeScalars.count }
    }
    guard var i = position else { return nil }
    if i < scalars.count, scalars[i] == "{" {
      var depth = 0
      let start = i + 1
      while i < scalars.count {
        if scalars[i] == "{" { depth += 1 }
        if scalars[i] == "}" {
          depth -= 1
          if depth == 0 { return String(String.UnicodeScalarView(scalars[start..<i])) }
        }
        i += 1
      }
      return nil
    }
    while i < scalars.count, scalars[i] == " " { i += 1 }
    let start = i
    while i < scalars.count, scalars[i] != "$", scalars[i] != "\n" { i += 1 }
    let content = String(String.UnicodeScalarView(scalars[start..<i])).trimmingCharacters(in: .whitespaces)
    return content.isEmpty ? nil : content
  }

  static func lastIndex(of marker: String, in scalars: [Unicode.Scalar]) -> Int? {
    let pattern = Array(marker.unicodeScalars)
    guard scalars.count >= pattern.count else { return nil }
    var i = scalars.count - pattern.count
    while i >= 0 {
      if Array(scalars[i..<(i + pattern.count)]) == pattern { return i }
      i -= 1
    }
    return nil
  }

  /// The last number in the text (`-12`, `3.5`, `1,000`), or nil.
  static func lastNumber(_ text: String) -> String? {
    var best: Substring?
    var i = text.startIndex
    while i < text.endIndex {
      if text[i].isASCII && text[i].isNumber {
        var start = i
        if start > text.startIndex, text[text.index(before: start)] == "-" { start = text.index(before: start) }
        var end = i
        while end < text.endIndex, text[end].isASCII, text[end].isNumber || ((text[end] == "." || text[end] == ",")
          && text.index(after: end) < text.endIndex && text[text.index(after: end)].isASCII && text[text.index(after: end)].isNumber)
        {
          end = text.index(after: end)
        }
        best = text[start..<end]
        i = end
      } else {
        i = text.index(after: i)
      }
    }
    return best.map { $0.replacingOccurrences(of: ",", with: "") }
  }

  // MARK: Letters

  static func letterCandidate(_ text: String, letters: String) -> String? {
    let allowed = Set(letters)
    func single(_ candidate: Substring) -> String? {
      let trimmed = candidate.trimmingCharacters(in: CharacterSet(charactersIn: " \t$*().:\"'"))
      guard trimmed.count == 1, let c = trimmed.uppercased().first, allowed.contains(c) else { return nil }
      return String(c)
    }
    // "Answer: C" (first match, as simple-evals), case-insensitive, optional $ around the letter.
    let lower = text.lowercased()
    var search = lower.startIndex
    while let range = lower.range(of: "answer", range: search..<lower.endIndex) {
      var i = range.upperBound
      while i < lower.endIndex, lower[i] == " " || lower[i] == "\t" || lower[i] == "*" { i = lower.index(after: i) }
      if i < lower.endIndex, lower[i] == ":" {
        i = lower.index(after: i)
        while i < lower.endIndex, lower[i] == " " || lower[i] == "\t" || lower[i] == "$" || lower[i] == "*" { i = lower.index(after: i) }
        if i < lower.endIndex {
          let next = lower.index(after: i)
          let boundary = next == lower.endIndex || !lower[next].isLetter
          if boundary, let letter = single(text[i..<next]) { return letter }
        }
      }
      search = range.upperBound
    }
    if let boxed = lastBoxed(text) {
      var inner = Substring(boxed)
      if inner.hasPrefix("\\text{"), inner.hasSuffix("}") { inner = inner.dropFirst(6).dropLast() }
      if let letter = single(inner) { return letter }
    }
    // Qwen's JSON: "answer": "C"
    if let range = text.range(of: "\"answer\"", options: [.caseInsensitive, .backwards]) {
      let rest = text[range.upperBound...].drop { $0 == " " || $0 == ":" }
      if rest.hasPrefix("\""), let letter = single(rest.dropFirst().prefix(1)) { return letter }
    }
    // "(C)": the last parenthesized allowed letter.
    var found: String?
    var i = text.startIndex
    while i < text.endIndex {
      if text[i] == "(" {
        let a = text.index(after: i)
        if a < text.endIndex, text.index(after: a) < text.endIndex, text[text.index(after: a)] == ")", allowed.contains(text[a]) {
          found = String(text[a])
        }
      }
      i = text.index(after: i)
    }
    return found
  }
}

import Foundation
