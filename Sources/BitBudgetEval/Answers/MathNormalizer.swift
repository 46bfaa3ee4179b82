import Foundation

/// Normalizes extracted math answers for comparison (`algorithms.md` §7.4–7.5), after the
/// Qwen2.5-Math evaluation's `strip_string`: `\left`/`\right`, `\!`, `\,`, `$`, `\text{…}` units,
/// `^\circ`, `%`, spaces removed; `tfrac`/`dfrac` → `frac`; `\frac12` → `\frac{1}{2}`; `a/b` →
/// `\frac{a}{b}`; a trailing `.` and an `x =` prefix dropped.
public enum MathNormalizer {
  public static func normalize(_ answer: String) -> String {
    var s = answer.replacingOccurrences(of: "\n", with: "").trimmingCharacters(in: .whitespaces)
    for token in ["\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "$", "^\\circ", "^{\\circ}", "\\%", "%", "\\$"] {
      s = s.replacingOccurrences(of: token, with: "")
    }
    s = s.replacingOccurrences(of: "tfrac", with: "frac").replacingOccurrences(of: "dfrac", with: "frac")
    s = removeText(s)
    s = s.replacingOccurrences(of: " ", with: "")
    while s.hasSuffix(".") { s.removeLast() }
    // "x=5" → "5" (a short variable name before one "=")
    let parts = s.split(separator: "=", omittingEmptySubsequences: false)
    if parts.count == 2, parts[0].count <= 2 { s = String(parts[1]) }
    s = fixFractions(s)
    if let slash = s.firstIndex(of: "/"), s.filter({ $0 == "/" }).count == 1 {
      let a = s[..<slash], b = s[s.index(after: slash)...]
      if Int(a) != nil, Int(b) != nil { s = "\\frac{\(a)}{\(b)}" }
    }
    if s.hasPrefix("0.") == false, s.hasPrefix(".") { s = "0" + s }
    return s
  }

  /// `\text{…}` → its content (a unit like `\text{ cm}` becomes "cm", then the caller's
  /// integer parse drops it); `\mbox{…}` likewise.
  static func removeText(_ s: String) -> String {
    var result = s
    for command in ["\\text{", "\\textbf{", "\\mbox{", "\\mathrm{"] {
      while let range = result.range(of: command) {
        var depth = 1
        var i = range.upperBound
        while i < result.endIndex, depth > 0 {
          if result[i] == "{" { depth += 1 }
          if result[i] == "}" { depth -= 1 }
          if depth > 0 { i = result.index(after: i) }
        }
        guard i < result.endIndex else { break }
        let inner = result[range.upperBound..<i]
        result.replaceSubrange(range.lowerBound...i, with: inner)
      }
    }
    return result
  }

  /// `\frac12` → `\frac{1}{2}`, `\frac1{2}` → `\frac{1}{2}`.
  static func fixFractions(_ s: String) -> String {
    let parts = s.components(separatedBy: "\\frac")
    guard parts.count > 1 else { return s }
    var result = parts[0]
    for part in parts.dropFirst() {
      result += "\\frac"
      var rest = Substring(part)
      for _ in 0..<2 {
        if rest.hasPrefix("{") {
          guard let close = matchingBrace(rest) else { result += rest; rest = ""; break }
          result += rest[...close]
          rest = rest[rest.index(after: close)...]
        } else if let first = rest.first {
          result += "{\(first)}"
          rest = rest.dropFirst()
        }
      }
      result += rest
    }
    return result
  }

  static func matchingBrace(_ s: Substring) -> Substring.Index? {
    var depth = 0
    for i in s.indices {
      if s[i] == "{" { depth += 1 }
      if s[i] == "}" {
        depth -= 1
        if depth == 0 { return i }
      }
    }
    return nil
  }

  /// An AIME-style integer answer: after `normalize`, thousands separators and units removed,
  /// `033` → 33, `33.0` → 33; nil unless it is an integer (AIME: 0…999 — range checks are the
  /// caller's).
  public static func integer(_ answer: String) -> Int? {
    var s = normalize(answer).replacingOccurrences(of: ",", with: "").replacingOccurrences(of: "{", with: "")
      .replacingOccurrences(of: "}", with: "")
    // Drop a trailing unit word ("45cm", "7degrees").
    while let last = s.last, last.isLetter { s.removeLast() }
    if let value = Int(s) { return value }
    if let value = Double(s), value.isFinite, value == value.rounded(), abs(value) < 1e15 { return Int(value) }
    return nil
  }

  /// A number answer (`3.5`, `\frac{7}{2}`, `-2`), or nil.
  public static func number(_ answer: String) -> Double? {
    let s = normalize(answer).replacingOccurrences(of: ",", with: "")
    if let value = Double(s) { return value }
    if s.hasPrefix("\\frac{") || s.hasPrefix("-\\frac{") {
      let negative = s.hasPrefix("-")
      let body = s.dropFirst(negative ? 7 : 6)
      let pieces = body.split(separator: "}", omittingEmptySubsequences: false)
      if pieces.count >= 2, let a = Double(pieces[0]), pieces[1].hasPrefix("{"), let b = Double(pieces[1].dropFirst()), b != 0 {
        return (negative ? -1 : 1) * a / b
      }
    }
    return nil
  }
}
