/// One turn of a conversation.
public struct ChatMessage: Sendable, Equatable {
  /// Who speaks a turn.
  public enum Role: String, Sendable {
    case system, user, assistant, tool
  }

  public var role: Role
  public var content: String
  /// An assistant turn's thinking, if given apart from `content`.
  public var reasoningContent: String?

  public init(role: Role, content: String, reasoningContent: String? = nil) {
    self.role = role
    self.content = content
    self.reasoningContent = reasoningContent
  }
}

/// Where a reasoning model's thinking ends in its output.
public enum ThinkingSplit {
  /// Splits generated text at the first `close` (e.g. `</think>`): the thinking (after an
  /// optional leading `open`) and the answer (leading newlines removed). Without `close` all of
  /// it is thinking and there is no answer.
  public static func split(_ text: String, open: String = "<think>", close: String = "</think>") -> (thinking: String, answer: String?) {
    let points = CodePoints(text)
    let openCount = open.unicodeScalars.count
    func dropThinkOpen(_ part: CodePoints) -> CodePoints {
      let trimmed = part.strippingLeading("\n")
      return !open.isEmpty && trimmed.hasPrefix(open) ? trimmed.suffix(from: openCount) : part
    }
    guard !close.isEmpty, let end = points.firstIndex(of: close) else {
      return (dropThinkOpen(points).string, nil)
    }
    return (dropThinkOpen(points.prefix(end)).string, points.suffix(from: end + close.unicodeScalars.count).strippingLeading("\n").string)
  }
}

/// A string as code points, for Python-like string operations.
struct CodePoints {
  var scalars: [Unicode.Scalar]

  init(_ text: String) { scalars = Array(text.unicodeScalars) }
  init(_ scalars: ArraySlice<Unicode.Scalar>) { self.scalars = Array(scalars) }

  var string: String {
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    return String(view)
  }

  var isEmpty: Bool { scalars.isEmpty }

  func matches(_ needle: [Unicode.Scalar], at index: Int) -> Bool {
    guard index >= 0, index + needle.count <= scalars.count else { return false }
    for offset in needle.indices where scalars[index + offset] != needle[offset] { return false }
    return true
  }

  /// Knuth–Morris–Pratt: linear in the text and the needle, whatever they hold (a template may
  /// search megabytes it built).
  private static func search(_ haystack: [Unicode.Scalar], _ needle: [Unicode.Scalar]) -> Int? {
    guard !needle.isEmpty else { return 0 }
    guard needle.count <= haystack.count else { return nil }
    var failure = [Int](repeating: 0, count: needle.count)
    var k = 0
    for i in 1..<max(needle.count, 1) {
      while k > 0 && needle[i] != needle[k] { k = failure[k - 1] }
      if needle[i] == needle[k] { k += 1 }
      failure[i] = k
    }
    k = 0
    for (i, scalar) in haystack.enumerated() {
      while k > 0 && scalar != needle[k] { k = failure[k - 1] }
      if scalar == needle[k] { k += 1 }
      if k == needle.count { return i - needle.count + 1 }
    }
    return nil
  }

  func firstIndex(of text: String) -> Int? {
    CodePoints.search(scalars, Array(text.unicodeScalars))
  }

  func lastIndex(of text: String) -> Int? {
    let needle = Array(text.unicodeScalars)
    return CodePoints.search(scalars.reversed(), needle.reversed()).map { scalars.count - $0 - needle.count }
  }

  func hasPrefix(_ text: String) -> Bool { matches(Array(text.unicodeScalars), at: 0) }

  func hasSuffix(_ text: String) -> Bool {
    let needle = Array(text.unicodeScalars)
    return matches(needle, at: scalars.count - needle.count)
  }

  func prefix(_ count: Int) -> CodePoints { CodePoints(scalars.prefix(count)) }
  func suffix(from index: Int) -> CodePoints { CodePoints(scalars.suffix(from: min(index, scalars.count))) }

  func strippingLeading(_ scalar: Unicode.Scalar) -> CodePoints { CodePoints(scalars.drop { $0 == scalar }) }

  func strippingTrailing(_ scalar: Unicode.Scalar) -> CodePoints {
    var end = scalars.count
    while end > 0 && scalars[end - 1] == scalar { end -= 1 }
    return CodePoints(scalars.prefix(end))
  }
}
