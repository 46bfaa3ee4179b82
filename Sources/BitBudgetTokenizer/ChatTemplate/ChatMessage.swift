/// One turn of a conversation.
public struct ChatMessage: Sendable, Equatable {
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
    index >= 0 && index + needle.count <= scalars.count && Array(scalars[index..<(index + needle.count)]) == needle
  }

  func firstIndex(of text: String) -> Int? {
    let needle = Array(text.unicodeScalars)
    guard needle.count <= scalars.count else { return nil }
    return (0...(scalars.count - needle.count)).first { matches(needle, at: $0) }
  }

  func lastIndex(of text: String) -> Int? {
    let needle = Array(text.unicodeScalars)
    guard needle.count <= scalars.count else { return nil }
    return (0...(scalars.count - needle.count)).reversed().first { matches(needle, at: $0) }
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
