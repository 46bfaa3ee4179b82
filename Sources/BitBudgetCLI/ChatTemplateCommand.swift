import ArgumentParser
import BitBudgetEngine
import BitBudgetTokenizer
import Foundation

struct ChatTemplateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "chat-template",
    abstract: "Render a conversation in a model's own chat template.",
    discussion: """
      Prints the prompt exactly as transformers' apply_chat_template renders it (no newline is \
      added), so a template can be checked against Python's. --messages is a JSON file: an array \
      of messages as transformers takes them ({"role", "content"}, plus "tool_calls", \
      "reasoning_content", …), or an object {"messages": […], "tools": […]}. The template is the \
      model's (tokenizer_config.json chat_template, chat_template.jinja, or GGUF \
      tokenizer.chat_template) unless --chat-template names another.
      """)

  @Option(help: ArgumentHelp("A model folder, GGUF file, or Hub id (its tokenizer and chat template).", valueName: "path"))
  var model: String

  @Option(help: ArgumentHelp("The conversation: a JSON file (- for standard input).", valueName: "file"))
  var messages: String

  @Option(help: ArgumentHelp("Pass enable_thinking on or off (default: not passed; the template decides).", valueName: "on|off"))
  var thinking: Toggle?

  @Flag(name: .customLong("no-generation-prompt"), help: "Leave out the assistant turn's opening at the end.")
  var noGenerationPrompt = false

  @Option(
    name: .customLong("chat-template"),
    help: ArgumentHelp("This template instead of the model's (a .jinja file, a tokenizer_config.json, or qwen3).", valueName: "file"))
  var chatTemplate: String?

  @Flag(help: "Also print the token ids (one JSON object: {\"text\": …, \"ids\": […]}).")
  var json = false

  enum Toggle: String, ExpressibleByArgument, CaseIterable {
    case on, off
  }

  func run() throws {
    let tokenizer = try Tokenizer.load(anyFrom: model)
    let template: ChatTemplate
    if let chatTemplate {
      template = try ChatTemplate.load(chatTemplate, tokenizer: tokenizer)
    } else {
      guard let own = try tokenizer.chatTemplate(name: model) else {
        throw CommandFailure(
          message: "\(model) has no chat template (tokenizer_config.json chat_template, chat_template.jinja, or GGUF tokenizer.chat_template); give --chat-template")
      }
      template = own
    }
    let data: Data
    if messages == "-" {
      data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
      guard let contents = FileManager.default.contents(atPath: messages) else {
        throw CommandFailure(message: "\(messages): no such file")
      }
      data = contents
    }
    guard let conversation = String(validating: data, as: UTF8.self) else {
      throw CommandFailure(message: "\(messages) is not UTF-8 text")
    }
    let options = ChatTemplate.Options(addGenerationPrompt: !noGenerationPrompt, enableThinking: thinking.map { $0 == .on })
    let text = try template.render(conversationJSON: conversation, options: options)
    if json {
      struct Rendered: Encodable {
        let text: String
        let ids: [Int]
      }
      try Output.json(Rendered(text: text, ids: tokenizer.encode(text)))
    } else {
      Output.write(text)
    }
  }
}
