import BitBudgetTokenizer
import Foundation

/// `QwenChatTemplate.render` of a conversation decoded from the input, and `splitThinking` of
/// the whole input as generated text.
///
/// Input layout (see `Fuzz/scripts/make-seeds.py`): byte 0 holds flags (bit 0: add the generation
/// prompt, bit 1: enable thinking); the rest is UTF-8 text split at U+001E into messages. Each
/// message's first character picks its role (`s` system, `u` user, `a` assistant, `t` tool;
/// anything else: its code point mod 4) and the rest is its content; a U+001F in an assistant
/// message separates `content` from `reasoningContent`.
enum ChatTemplateTarget {
  static let roles: [ChatMessage.Role] = [.system, .user, .assistant, .tool]

  static func messages(_ text: Substring) -> [ChatMessage] {
    text.split(separator: "\u{1E}", omittingEmptySubsequences: false).map { record in
      guard let first = record.unicodeScalars.first else { return ChatMessage(role: .user, content: "") }
      let role: ChatMessage.Role =
        switch first {
        case "s": .system
        case "u": .user
        case "a": .assistant
        case "t": .tool
        default: roles[Int(first.value % 4)]
        }
      let body = String(record.unicodeScalars.dropFirst())
      if role == .assistant, let separator = body.firstIndex(of: "\u{1F}") {
        return ChatMessage(role: role, content: String(body[..<separator]), reasoningContent: String(body[body.index(after: separator)...]))
      }
      return ChatMessage(role: role, content: body)
    }
  }

  static let target = FuzzTarget(
    name: "chat-template", summary: "QwenChatTemplate.render + splitThinking on arbitrary text"
  ) { input in
    guard let flags = input.first else { return }
    let text = UnsafeRawBufferPointer(rebasing: input.dropFirst()).text
    let conversation = messages(Substring(text))
    let rendered = QwenChatTemplate.render(
      conversation, addGenerationPrompt: flags & 1 != 0, enableThinking: flags & 2 != 0)
    // Every user message's text appears verbatim in the prompt.
    for message in conversation where message.role == .user {
      invariant(rendered.utf8.count >= message.content.utf8.count, "rendered prompt shorter than a user message")
    }
    let (thinking, answer) = QwenChatTemplate.splitThinking(text)
    invariant(
      thinking.unicodeScalars.count + (answer?.unicodeScalars.count ?? 0) <= text.unicodeScalars.count,
      "splitThinking returned more text than it was given")
  }
}
