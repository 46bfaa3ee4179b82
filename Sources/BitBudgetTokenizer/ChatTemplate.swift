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

/// Qwen3's chat template (the `chat_template` of its tokenizer_config.json) rendered natively,
/// without a Jinja engine; tool definitions are not supported. String operations work on Unicode
/// code points, as Jinja's Python strings do (a Swift `Character` would join "\r\n", or a tag and
/// a following combining mark).
///
/// Thinking mode (default) ends the prompt with `<|im_start|>assistant\n` and lets the model write
/// `<think>…</think>`; with `enableThinking: false` the prompt also carries an empty
/// `<think>\n\n</think>\n\n`. Earlier assistant turns lose their thinking, except those after the
/// last user query (multi-step tool use).
public enum QwenChatTemplate {
  public static func render(
    _ messages: [ChatMessage], addGenerationPrompt: Bool = true, enableThinking: Bool = true
  ) -> String {
    var text = ""
    if let first = messages.first, first.role == .system {
      text += "<|im_start|>system\n" + first.content + "<|im_end|>\n"
    }
    // The last user turn that is not a wrapped tool response.
    var lastQuery = messages.count - 1
    for index in messages.indices.reversed() {
      let message = messages[index]
      let content = CodePoints(message.content)
      if message.role == .user && !(content.hasPrefix("<tool_response>") && content.hasSuffix("</tool_response>")) {
        lastQuery = index
        break
      }
    }
    for (index, message) in messages.enumerated() {
      switch message.role {
      case .user:
        text += "<|im_start|>user\n" + message.content + "<|im_end|>\n"
      case .system:
        if index != 0 { text += "<|im_start|>system\n" + message.content + "<|im_end|>\n" }
      case .assistant:
        var content = CodePoints(message.content)
        var reasoning = CodePoints("")
        if let given = message.reasoningContent {
          reasoning = CodePoints(given)
        } else if let firstClose = content.firstIndex(of: "</think>"), let lastClose = content.lastIndex(of: "</think>") {
          // As the template's content.split('</think>'): thinking before the first, answer after
          // the last.
          reasoning = content.prefix(firstClose).strippingTrailing("\n")
          if let open = reasoning.lastIndex(of: "<think>") { reasoning = reasoning.suffix(from: open + 7) }
          reasoning = reasoning.strippingLeading("\n")
          content = content.suffix(from: lastClose + 8).strippingLeading("\n")
        }
        if index > lastQuery && (index == messages.count - 1 || !reasoning.isEmpty) {
          text += "<|im_start|>assistant\n<think>\n" + reasoning.strippingLeading("\n").strippingTrailing("\n").string
            + "\n</think>\n\n" + content.strippingLeading("\n").string
        } else {
          text += "<|im_start|>assistant\n" + content.string
        }
        text += "<|im_end|>\n"
      case .tool:
        if index == 0 || messages[index - 1].role != .tool { text += "<|im_start|>user" }
        text += "\n<tool_response>\n" + message.content + "\n</tool_response>"
        if index == messages.count - 1 || messages[index + 1].role != .tool { text += "<|im_end|>\n" }
      }
    }
    if addGenerationPrompt {
      text += "<|im_start|>assistant\n"
      if !enableThinking { text += "<think>\n\n</think>\n\n" }
    }
    return text
  }

  /// Splits generated text at the first `</think>`: the thinking (after an optional leading
  /// `<think>`) and the answer (leading newlines removed). Without `</think>` all of it is
  /// thinking and there is no answer.
  public static func splitThinking(_ text: String) -> (thinking: String, answer: String?) {
    let points = CodePoints(text)
    func dropThinkOpen(_ part: CodePoints) -> CodePoints {
      let trimmed = part.strippingLeading("\n")
      return trimmed.hasPrefix("<think>") ? trimmed.suffix(from: 7) : part
    }
    guard let close = points.firstIndex(of: "</think>") else {
      return (dropThinkOpen(points).string, nil)
    }
    return (dropThinkOpen(points.prefix(close)).string, points.suffix(from: close + 8).strippingLeading("\n").string)
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
