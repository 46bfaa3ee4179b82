import BitBudgetTokenizer
import Foundation

/// `ChatTemplate` parsing and rendering (a template is untrusted input: it comes with a model
/// file), and `ThinkingSplit` of the whole input as generated text.
///
/// Input layout (see `Fuzz/scripts/make-seeds.py`): byte 0 holds flags (bit 0: add the generation
/// prompt, bit 1: pass enable_thinking, bit 2: its value, bit 3: the conversation is JSON); the
/// rest is UTF-8 text: the template, then U+001D, then the conversation — JSON, or records split
/// at U+001E whose first character picks the role (`s` system, `u` user, `a` assistant, `t` tool;
/// anything else: its code point mod 4) and whose rest is the content (a U+001F in an assistant
/// record separates `content` from `reasoningContent`).
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
    name: "chat-template", summary: "ChatTemplate parse + render (Jinja) and ThinkingSplit on arbitrary text"
  ) { input in
    guard let flags = input.first else { return }
    let text = UnsafeRawBufferPointer(rebasing: input.dropFirst()).text
    let parts = text.split(separator: "\u{1D}", maxSplits: 1, omittingEmptySubsequences: false)
    let conversation = parts.count > 1 ? parts[1] : ""
    var options = ChatTemplate.Options(addGenerationPrompt: flags & 1 != 0, enableThinking: flags & 2 != 0 ? flags & 4 != 0 : nil)
    options.now = Date(timeIntervalSince1970: 1_768_469_400)
    if let template = try? ChatTemplate(String(parts[0]), name: "fuzz", specialTokens: ["bos_token": "<s>", "eos_token": "</s>"]) {
      if flags & 8 != 0 {
        _ = try? template.render(conversationJSON: String(conversation), options: options)
      } else {
        _ = try? template.render(messages(conversation), options: options)
      }
    }
    let (thinking, answer) = ThinkingSplit.split(text)
    invariant(
      thinking.unicodeScalars.count + (answer?.unicodeScalars.count ?? 0) <= text.unicodeScalars.count,
      "ThinkingSplit returned more text than it was given")
  }
}
