import Foundation

/// A model's own chat template (the Jinja `chat_template` of its tokenizer_config.json,
/// `chat_template.jinja`, or GGUF `tokenizer.chat_template`), rendered as transformers'
/// `apply_chat_template` renders it: Jinja with `trim_blocks` and `lstrip_blocks`, transformers'
/// `tojson`, `raise_exception` and `strftime_now`, the tokenizer's special tokens as variables
/// (`bos_token`, `eos_token`, …), `tools` and `documents` as `none` unless given.
///
/// Parsing costs one pass over the template; a render walks it once per message (microseconds
/// for the templates of Qwen, Llama, Mistral, Gemma). Rendering is bounded (statements, macro
/// depth, sizes), so a hostile template fails with an error rather than hanging.
public struct ChatTemplate: @unchecked Sendable {
  /// Where the template came from (a file, a model), named in errors.
  public let name: String
  /// The template text.
  public let source: String
  /// `bos_token`, `eos_token`, `pad_token`, `unk_token` as the tokenizer names them; a token
  /// the tokenizer does not have is left undefined, as transformers leaves it.
  public var specialTokens: [String: String]

  // Immutable after parsing, hence the unchecked Sendable.
  private let nodes: [JinjaNode]
  private let scalars: [Unicode.Scalar]

  public init(_ source: String, name: String, specialTokens: [String: String] = [:]) throws(ChatTemplateError) {
    self.name = name
    self.source = source
    self.specialTokens = specialTokens
    do {
      let (tokens, scalars) = try JinjaLexer.tokenize(source)
      self.scalars = scalars
      nodes = try JinjaParser.parse(tokens)
    } catch {
      let (line, column) = ChatTemplate.location(of: error.offset, in: Array(JinjaLexer(source).scalars))
      throw .syntax(template: name, line: line, column: column, message: error.message)
    }
  }

  /// What a render is asked for, beyond the messages.
  public struct Options: Sendable {
    /// Ends the prompt with the assistant's turn opening (transformers' `add_generation_prompt`).
    public var addGenerationPrompt = true
    /// Passed as `enable_thinking` when set; nil leaves it undefined (the template's default).
    public var enableThinking: Bool?
    /// Tool definitions: a JSON array of OpenAI-style function schemas, passed as `tools`.
    public var toolsJSON: String?
    /// More variables: a JSON object merged into the template's context (e.g. `date_string`).
    public var variablesJSON: String?
    /// The clock behind `strftime_now` (Llama 3.2 and Mistral templates print today's date).
    public var now = Date()
    public var timeZone = TimeZone.current

    public init(addGenerationPrompt: Bool = true, enableThinking: Bool? = nil) {
      self.addGenerationPrompt = addGenerationPrompt
      self.enableThinking = enableThinking
    }
  }

  /// Renders a conversation of plain messages (an assistant's `reasoningContent` is passed as
  /// `reasoning_content`, as transformers passes it).
  public func render(_ messages: [ChatMessage], options: Options = Options()) throws(ChatTemplateError) -> String {
    let values: [JinjaValue] = messages.map { message in
      var dictionary = JinjaDictionary([("role", .string(message.role.rawValue)), ("content", .string(message.content))])
      if let reasoning = message.reasoningContent { dictionary["reasoning_content"] = .string(reasoning) }
      return .dictionary(dictionary)
    }
    return try render(values, options: options)
  }

  /// Renders a conversation given as JSON: an array of message objects as transformers takes
  /// them (`role`, `content` as a string or a list of parts, `tool_calls`, `reasoning_content`,
  /// …), or an object with `messages` and optionally `tools`.
  public func render(conversationJSON: String, options: Options = Options()) throws(ChatTemplateError) -> String {
    var options = options
    let parsed: JinjaValue
    do {
      parsed = try JinjaJSON.parse(conversationJSON)
    } catch {
      throw .invalidConversation(error.message)
    }
    var messages: [JinjaValue]
    switch parsed {
    case .array(let items):
      messages = items
    case .dictionary(let object):
      guard case .array(let items)? = object["messages"] else {
        throw .invalidConversation("an object needs a \"messages\" array")
      }
      messages = items
      if let tools = object["tools"], options.toolsJSON == nil {
        do { options.toolsJSON = try JinjaJSON.dump(tools) } catch { throw .invalidConversation(error.failure.message) }
      }
    default:
      throw .invalidConversation("expected a JSON array of messages")
    }
    for (position, message) in messages.enumerated() {
      guard case .dictionary(let object) = message, case .string? = object["role"] else {
        throw .invalidConversation("message \(position) is not an object with a string \"role\"")
      }
    }
    return try render(messages, options: options)
  }

  /// transformers copies a message's reasoning (`reasoning_content`, `thinking` or `reasoning`)
  /// to both `thinking` and `reasoning_content`, which is what templates read.
  private static func aliasReasoning(_ message: JinjaValue) -> JinjaValue {
    guard case .dictionary(let object) = message else { return message }
    let reasoning = ["reasoning_content", "thinking", "reasoning"].lazy.compactMap { key -> JinjaValue? in
      guard let value = object[key] else { return nil }
      if case .none = value { return nil }
      return value
    }.first
    guard let reasoning else { return message }
    var aliased = JinjaDictionary([("thinking", reasoning)])
    for (key, value) in object.pairs { aliased[key] = value }
    aliased["reasoning_content"] = reasoning
    return .dictionary(aliased)
  }

  private func render(_ messages: [JinjaValue], options: Options) throws(ChatTemplateError) -> String {
    let globals = JinjaScope(parent: nil)
    let interpreter = JinjaInterpreter(globals: globals)
    defer { interpreter.finish() }
    installGlobals(globals, interpreter: interpreter, options: options)
    for (key, value) in specialTokens { globals.variables[key] = .string(value) }
    globals.variables["messages"] = .array(messages.map(ChatTemplate.aliasReasoning))
    globals.variables["add_generation_prompt"] = .bool(options.addGenerationPrompt)
    globals.variables["tools"] = JinjaValue.none
    globals.variables["documents"] = JinjaValue.none
    do {
      if let tools = options.toolsJSON { globals.variables["tools"] = try JinjaJSON.parse(tools) }
      if let variables = options.variablesJSON {
        guard case .dictionary(let object) = try JinjaJSON.parse(variables) else {
          throw ChatTemplateError.invalidConversation("variables must be a JSON object")
        }
        for (key, value) in object.pairs { globals.variables[key] = value }
      }
    } catch let error as ChatTemplateError {
      throw error
    } catch {
      throw .invalidConversation("\(error)")
    }
    if let thinking = options.enableThinking { globals.variables["enable_thinking"] = .bool(thinking) }
    var output = ""
    do {
      _ = try interpreter.render(nodes, scope: JinjaScope(parent: globals), into: &output)
    } catch {
      if error.failure.raised { throw .refused(template: name, message: error.failure.message) }
      let (line, column) = ChatTemplate.location(of: error.offset, in: scalars)
      throw .render(template: name, line: line, column: column, message: error.failure.message)
    }
    return output
  }

  private func installGlobals(_ globals: JinjaScope, interpreter: JinjaInterpreter, options: Options) {
    func function(_ name: String, _ body: @escaping (JinjaArguments) throws -> JinjaValue) {
      globals.variables[name] = .callable(JinjaCallable(name: name, call: body))
    }
    function("raise_exception") { arguments in
      throw JinjaFailure(arguments.positional.first?.text ?? "raise_exception()", raised: true)
    }
    // Unowned: the interpreter outlives every value its render makes.
    function("namespace") { [unowned interpreter] arguments in
      var attributes = JinjaDictionary()
      for value in arguments.positional {
        guard case .dictionary(let initial) = value else { throw JinjaFailure("namespace() takes a mapping or keyword arguments") }
        for (key, item) in initial.pairs { attributes[key] = item }
      }
      for (key, value) in arguments.keywords { attributes[key] = value }
      _ = try JinjaInterpreter.nestable(attributes.pairs.map(\.1))
      let namespace = JinjaNamespace(attributes)
      interpreter.namespaces.append(namespace)
      return .namespace(namespace)
    }
    function("dict") { arguments in
      var dictionary = JinjaDictionary()
      for value in arguments.positional {
        guard case .dictionary(let initial) = value else { throw JinjaFailure("dict() takes a mapping or keyword arguments") }
        for (key, item) in initial.pairs { dictionary[key] = item }
      }
      for (key, value) in arguments.keywords { dictionary[key] = value }
      _ = try JinjaInterpreter.nestable(dictionary.pairs.map(\.1))
      return .dictionary(dictionary)
    }
    function("range") { arguments in
      let bounds = try arguments.positional.map { value -> Int in
        guard case .int(let number) = value else { throw JinjaFailure("range() takes integers, not \(value.typeName)") }
        return number
      }
      guard (1...3).contains(bounds.count), arguments.keywords.isEmpty else { throw JinjaFailure("range() takes 1 to 3 integers") }
      let start = bounds.count > 1 ? bounds[0] : 0
      let stop = bounds.count > 1 ? bounds[1] : bounds[0]
      let step = bounds.count > 2 ? bounds[2] : 1
      guard step != 0 else { throw JinjaFailure("range() step must not be zero") }
      // In Double: Int bounds can overflow the difference; the count is checked before use.
      let span = step > 0 ? Double(stop) - Double(start) : Double(start) - Double(stop)
      let count = max(0, (span / Double(step.magnitude)).rounded(.up))
      guard count <= Double(JinjaBuiltins.maximumRange) else {
        throw JinjaFailure("range() of \(count) items is too large (limit \(JinjaBuiltins.maximumRange), as Python's sandbox)")
      }
      return .array((0..<Int(count)).map { .int(start + $0 * step) })
    }
    let now = options.now
    let timeZone = options.timeZone
    function("strftime_now") { arguments in
      guard case .string(let format)? = arguments.positional.first else { throw JinjaFailure("strftime_now() takes a format string") }
      return .string(try Strftime.format(format, date: now, timeZone: timeZone))
    }
  }

  /// Line and column (1-based, in code points) of an offset in the normalized source.
  private static func location(of offset: Int, in scalars: [Unicode.Scalar]) -> (Int, Int) {
    var line = 1
    var column = 1
    for scalar in scalars.prefix(max(0, min(offset, scalars.count))) {
      if scalar == "\n" {
        line += 1
        column = 1
      } else {
        column += 1
      }
    }
    return (line, column)
  }
}

/// A chat template that cannot be parsed or rendered, or that refused the conversation.
public enum ChatTemplateError: Error, Equatable, CustomStringConvertible {
  /// Syntax the interpreter does not know or that is not Jinja.
  case syntax(template: String, line: Int, column: Int, message: String)
  /// An error while rendering (an undefined value used, a type error).
  case render(template: String, line: Int, column: Int, message: String)
  /// The template's own `raise_exception(message)`: it does not accept this conversation.
  case refused(template: String, message: String)
  /// The messages (or tools, or variables) are not what a template takes.
  case invalidConversation(String)

  public var description: String {
    switch self {
    case .syntax(let template, let line, let column, let message):
      "chat template \(template), line \(line), column \(column): \(message)"
    case .render(let template, let line, let column, let message):
      "chat template \(template), line \(line), column \(column), while rendering: \(message)"
    case .refused(let template, let message):
      "chat template \(template) refused the conversation: \(message)"
    case .invalidConversation(let message):
      "invalid conversation: \(message)"
    }
  }
}

extension Error {
  /// The failure inside a located render error (or the error itself).
  var failure: JinjaFailure {
    if let located = self as? JinjaInterpreter.Located { return located.failure }
    if let failure = self as? JinjaFailure { return failure }
    return JinjaFailure("\(self)")
  }
}

/// Python's `datetime.strftime` for the directives templates use, in the C locale.
enum Strftime {
  static func format(_ format: String, date: Date, timeZone: TimeZone) throws -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = timeZone
    let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
    let year = parts.year ?? 1970
    let month = parts.month ?? 1
    let day = parts.day ?? 1
    let hour = parts.hour ?? 0
    let weekday = ((parts.weekday ?? 1) + 5) % 7  // Monday = 0
    let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    let days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
    var output = ""
    var iterator = format.makeIterator()
    while let character = iterator.next() {
      guard character == "%" else {
        output.append(character)
        continue
      }
      guard let directive = iterator.next() else {
        output += "%"
        break
      }
      switch directive {
      case "Y": output += String(year)
      case "y": output += two(year % 100)
      case "m": output += two(month)
      case "d": output += two(day)
      case "e": output += day < 10 ? " \(day)" : "\(day)"
      case "B": output += months[month - 1]
      case "b", "h": output += String(months[month - 1].prefix(3))
      case "A": output += days[weekday]
      case "a": output += String(days[weekday].prefix(3))
      case "H": output += two(hour)
      case "I": output += two(hour % 12 == 0 ? 12 : hour % 12)
      case "p": output += hour < 12 ? "AM" : "PM"
      case "M": output += two(parts.minute ?? 0)
      case "S": output += two(parts.second ?? 0)
      case "j":
        let ordinal = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
        output += ordinal < 10 ? "00\(ordinal)" : ordinal < 100 ? "0\(ordinal)" : "\(ordinal)"
      case "%": output += "%"
      default: throw JinjaFailure("strftime_now: directive %\(directive) is not supported")
      }
    }
    return output
  }
}
