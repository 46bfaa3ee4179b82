import BitBudgetTestSupport
import Foundation
import Testing

import BitBudgetTokenizer

@Suite struct ChatTemplateTests {
  struct Case: Decodable {
    struct Message: Decodable {
      let role: String
      let content: String
    }

    let messages: [Message]
    let add_generation_prompt: Bool
    let enable_thinking: Bool
    let text: String
  }

  /// Renderings equal transformers' `apply_chat_template` with Qwen3's Jinja template.
  @Test func matchesTransformers() throws {
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/tokenizer/qwen3-chat-template.json")
    let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: url))
    #expect(cases.count >= 30)
    for item in cases {
      let messages = try item.messages.map { ChatMessage(role: try #require(ChatMessage.Role(rawValue: $0.role)), content: $0.content) }
      let rendered = QwenChatTemplate.render(messages, addGenerationPrompt: item.add_generation_prompt, enableThinking: item.enable_thinking)
      #expect(rendered == item.text, "\(item.messages.map(\.role))")
    }
  }

  @Test func splitsThinkingFromTheAnswer() {
    #expect(QwenChatTemplate.splitThinking("<think>\nsteps\n</think>\n\nThe answer is 4.") == ("\nsteps\n", "The answer is 4."))
    #expect(QwenChatTemplate.splitThinking("still thinking") == ("still thinking", nil))
    #expect(QwenChatTemplate.splitThinking("a</think>b</think>c") == ("a", "b</think>c"))
    #expect(QwenChatTemplate.splitThinking("</think>") == ("", ""))
  }
}
