import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetTokenizer

@Suite struct ChatTemplateTests {
  struct Collection: Decodable {
    struct Template: Decodable {
      let name: String
      let source: String
      let special_tokens: [String: String]
      let template: String
    }

    let now: String
    let tools: String
    let conversations: [String: String]
    let templates: [Template]
  }

  struct Rendering: Decodable {
    let template: String
    let conversation: String
    let tools: Bool
    let add_generation_prompt: Bool
    let enable_thinking: Bool?
    let text: String?
    let error: String?
    let message: String?
  }

  static func fixture<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/chat-templates/\(name)")
    return try JSONDecoder().decode(type, from: Data(contentsOf: url))
  }

  /// The fixture's clock: 2026-01-15 09:30 (Llama 3.2 and Mistral Small print the date).
  static let fixedNow = Date(timeIntervalSince1970: 1_768_469_400)

  /// Every rendering of scripts/make-chat-template-fixture.py — 15 real templates (Qwen3,
  /// Qwen2.5, QwQ, DeepSeek-R1-Distill Qwen and Llama, SmolLM2/3, Llama 3.1–3.3, Mistral, Phi-4-mini,
  /// Gemma 3) over conversations with system prompts, several turns, thinking, tool calls, tools
  /// and Unicode — equals transformers' `apply_chat_template` byte for byte, and a conversation
  /// transformers refuses (`raise_exception`) or cannot render is refused with an error here.
  @Test func everyRenderingEqualsTransformers() throws {
    let collection = try Self.fixture("templates.json", as: Collection.self)
    let renderings = try Self.fixture("renderings.json", as: [Rendering].self)
    #expect(collection.templates.count == 15)
    #expect(renderings.count > 500)
    var templates: [String: ChatTemplate] = [:]
    for entry in collection.templates {
      templates[entry.name] = try ChatTemplate(entry.template, name: entry.name, specialTokens: entry.special_tokens)
    }
    var mismatches = 0
    for rendering in renderings {
      let template = try #require(templates[rendering.template])
      var options = ChatTemplate.Options(addGenerationPrompt: rendering.add_generation_prompt, enableThinking: rendering.enable_thinking)
      options.toolsJSON = rendering.tools ? collection.tools : nil
      options.now = Self.fixedNow
      options.timeZone = TimeZone(identifier: "UTC")!
      let conversation = try #require(collection.conversations[rendering.conversation])
      let label = "\(rendering.template) \(rendering.conversation) tools=\(rendering.tools) gen=\(rendering.add_generation_prompt) thinking=\(String(describing: rendering.enable_thinking))"
      do {
        let text = try template.render(conversationJSON: conversation, options: options)
        if text != rendering.text {
          mismatches += 1
          if mismatches <= 5 {
            Issue.record("\(label): rendered\n\(text.debugDescription)\nexpected\n\(rendering.text.debugDescription) (\(rendering.message ?? ""))")
          }
        }
      } catch {
        switch (error, rendering.error) {
        case (.refused(_, let message), "refused"?):
          #expect(message == rendering.message, "\(label)")
        case (.render, "render"?):
          break
        default:
          mismatches += 1
          if mismatches <= 5 { Issue.record("\(label): \(error), expected \(rendering.error ?? "text") \(rendering.message ?? "")") }
        }
      }
    }
    #expect(mismatches == 0)
  }

  /// The older Qwen3 corpus (multi-step tool responses, thinking kept after the last query).
  @Test func qwen3CorpusEqualsTransformers() throws {
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
    let collection = try Self.fixture("templates.json", as: Collection.self)
    let source = try #require(collection.templates.first { $0.name == "Qwen3" })
    let template = try ChatTemplate(source.template, name: "Qwen3", specialTokens: source.special_tokens)
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/tokenizer/qwen3-chat-template.json")
    let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: url))
    #expect(cases.count >= 30)
    for item in cases {
      let messages = try item.messages.map { ChatMessage(role: try #require(ChatMessage.Role(rawValue: $0.role)), content: $0.content) }
      let rendered = try template.render(messages, options: .init(addGenerationPrompt: item.add_generation_prompt, enableThinking: item.enable_thinking))
      #expect(rendered == item.text, "\(item.messages.map(\.role))")
    }
  }

  @Test func findsTheModelsThinkingTags() throws {
    let qwen = try Tokenizer.load(from: Fixtures.qwen3TokenizerDirectory)
    #expect(qwen.thinkingTags == .think)
    #expect(ThinkingTags.bracketThink.closing("\n</think>\n\nAnswer:") == "\n[/THINK]\n\nAnswer:")
    #expect(ThinkingTags.think.closing("a</think>") == "a</think>")
    #expect(ThinkingSplit.split("[THINK]x[/THINK]\ny", open: "[THINK]", close: "[/THINK]") == ("x", "y"))
  }

  /// A chat reply stops at the end-of-turn tokens its template writes (a base checkpoint's
  /// generation config lists only its end of text).
  @Test func endOfTurnTokensComeFromTheTemplate() throws {
    let qwen = try Tokenizer.load(from: Fixtures.qwen3TokenizerDirectory)
    #expect(qwen.endOfTurnIds(ChatTemplate.qwen3()) == [151645])
    #expect(qwen.endOfTurnIds(try ChatTemplate("{{ messages[0].content }}<end_of_turn>", name: "gemma-like")) == [])
  }

  @Test func splitsThinkingFromTheAnswer() {
    #expect(ThinkingSplit.split("<think>\nsteps\n</think>\n\nThe answer is 4.") == ("\nsteps\n", "The answer is 4."))
    #expect(ThinkingSplit.split("still thinking") == ("still thinking", nil))
    #expect(ThinkingSplit.split("a</think>b</think>c") == ("a", "b</think>c"))
    #expect(ThinkingSplit.split("</think>") == ("", ""))
  }
}

@Suite struct JinjaFeatureTests {
  struct Case: Decodable {
    let template: String
    let variables: String
    let text: String?
    let error: String?
    let message: String?
  }

  /// Small templates over each feature the interpreter implements (whitespace control, loops and
  /// their scoping, macros, every filter, test and string method, operators, literals, undefined
  /// values, syntax errors) render as transformers' Jinja environment renders them, or fail as it
  /// fails (refusals with the same message).
  @Test func everyFeatureMatchesJinja() throws {
    let cases = try ChatTemplateTests.fixture("jinja-features.json", as: [Case].self)
    #expect(cases.count > 60)
    for (index, item) in cases.enumerated() {
      var options = ChatTemplate.Options()
      options.variablesJSON = item.variables
      options.now = ChatTemplateTests.fixedNow
      options.timeZone = TimeZone(identifier: "UTC")!
      do {
        let template = try ChatTemplate(item.template, name: "case \(index)")
        let text = try template.render([], options: options)
        #expect(text == item.text, "case \(index) \(item.template.debugDescription): \(item.error ?? "") \(item.message ?? "")")
      } catch {
        switch (error, item.error) {
        case (.syntax, "syntax"?), (.render, "render"?): break
        case (.refused(_, let message), "refused"?): #expect(message == item.message)
        default: Issue.record("case \(index) \(item.template.debugDescription): \(error), expected \(item.error ?? "text \(item.text.debugDescription)")")
        }
      }
    }
  }

  @Test func errorsNameTheTemplateAndPosition() throws {
    #expect(throws: ChatTemplateError.syntax(template: "t", line: 2, column: 1, message: "unknown tag 'bogus'")) {
      try ChatTemplate("line one\n{% bogus %}", name: "t")
    }
    let template = try ChatTemplate("a\n{{ x.y }}", name: "t")
    #expect(throws: ChatTemplateError.render(template: "t", line: 2, column: 1, message: "'x' is undefined (reading .y)")) {
      try template.render([])
    }
  }

  /// A hostile template fails with an error instead of running away.
  @Test func boundsHostileTemplates() throws {
    for source in [
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
      "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
      "{{ 'x' * 100000000 }}",
      "{{ range(100000000) | length }}",
      "{% set ns = namespace(me=none) %}{% set ns.me = ns %}{{ ns.me.me.me is defined }}",
    ] {
      let template = try ChatTemplate(source, name: "hostile")
      do {
        _ = try template.render([])
      } catch {
        continue
      }
      #expect(source.contains("namespace"), "\(source) rendered")
    }
  }

  /// Deep nesting is a syntax error, not a stack overflow.
  @Test func boundsNesting() {
    for source in [
      "{{ " + String(repeating: "(", count: 5_000) + "1" + String(repeating: ")", count: 5_000) + " }}",
      "{{ " + String(repeating: "[", count: 5_000) + " }}",
      "{{ " + String(repeating: "not ", count: 5_000) + "x }}",
      "{{ " + String(repeating: "-", count: 5_000) + "1 }}",
      String(repeating: "{% if x %}", count: 5_000),
      "{{ 1" + String(repeating: " ~ 1", count: 5_000) + " }}",
      "{{ x" + String(repeating: ".a", count: 5_000) + " }}",
      "{{ x" + String(repeating: " | trim", count: 5_000) + " }}",
    ] {
      #expect(throws: ChatTemplateError.self) { try ChatTemplate(source, name: "deep") }
    }
  }

  @Test func builtInQwen3TemplateParses() throws {
    let text = try ChatTemplate.qwen3().render([ChatMessage(role: .user, content: "hi")])
    #expect(text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
  }
}
