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
/// without a Jinja engine; tool definitions are not supported.
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
      if message.role == .user
        && !(message.content.hasPrefix("<tool_response>") && message.content.hasSuffix("</tool_response>"))
      {
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
        var content = message.content
        var reasoning = ""
        if let given = message.reasoningContent {
          reasoning = given
        } else if let firstClose = content.range(of: "</think>"),
          let lastClose = content.range(of: "</think>", options: .backwards)
        {
          // As the template's content.split('</think>'): thinking before the first, answer after
          // the last.
          reasoning = String(stripTrailing(content[..<firstClose.lowerBound], "\n"))
          if let open = reasoning.range(of: "<think>", options: .backwards) {
            reasoning = String(reasoning[open.upperBound...])
          }
          reasoning = String(stripLeading(Substring(reasoning), "\n"))
          content = String(stripLeading(content[lastClose.upperBound...], "\n"))
        }
        if index > lastQuery && (index == messages.count - 1 || !reasoning.isEmpty) {
          text += "<|im_start|>assistant\n<think>\n" + strip(reasoning, "\n") + "\n</think>\n\n"
            + String(stripLeading(Substring(content), "\n"))
        } else {
          text += "<|im_start|>assistant\n" + content
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
    guard let close = text.range(of: "</think>") else {
      return (String(dropThinkOpen(Substring(text))), nil)
    }
    let thinking = dropThinkOpen(text[..<close.lowerBound])
    return (String(thinking), String(stripLeading(text[close.upperBound...], "\n")))
  }

  private static func dropThinkOpen(_ text: Substring) -> Substring {
    let trimmed = stripLeading(text, "\n")
    return trimmed.hasPrefix("<think>") ? trimmed.dropFirst("<think>".count) : text
  }

  static func stripLeading(_ text: Substring, _ character: Character) -> Substring {
    text.drop { $0 == character }
  }

  static func stripTrailing(_ text: Substring, _ character: Character) -> Substring {
    var result = text
    while result.last == character { result = result.dropLast() }
    return result
  }

  static func strip(_ text: String, _ character: Character) -> String {
    String(stripTrailing(stripLeading(Substring(text), character), character))
  }
}

import Foundation
