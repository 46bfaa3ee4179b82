import Foundation

extension ChatTemplate {
  /// Qwen3's chat template, verbatim from Qwen/Qwen3-0.6B's tokenizer_config.json: the template
  /// of every model in the paper, for remote servers whose model files are not here.
  public static func qwen3() -> ChatTemplate {
    // Parsing a fixed, tested template cannot fail.
    (try? ChatTemplate(qwen3Source, name: "Qwen3 (built in)", specialTokens: ["eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"]))!
  }

  public static let qwen3Source = #"""
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}
"""#
}

extension Tokenizer {
  /// The tokenizer's special tokens as chat templates see them (`bos_token`, `eos_token`,
  /// `pad_token`, `unk_token`; absent ones are left out, so templates see them undefined).
  public var specialTokenStrings: [String: String] {
    var tokens: [String: String] = [:]
    tokens["bos_token"] = configuration.bosToken
    tokens["eos_token"] = configuration.eosToken
    tokens["pad_token"] = configuration.padToken
    tokens["unk_token"] = configuration.unkToken
    return tokens
  }

  /// The model's own chat template, or nil when the tokenizer has none. `name` (e.g. the model's
  /// path) is named in errors.
  public func chatTemplate(name: String) throws(ChatTemplateError) -> ChatTemplate? {
    guard let source = configuration.chatTemplate else { return nil }
    return try ChatTemplate(source, name: name, specialTokens: specialTokenStrings)
  }
}

extension ChatTemplate {
  /// A template from a file: Jinja text (`chat_template.jinja`), or a tokenizer_config.json
  /// whose `chat_template` is read; `qwen3` names the built-in template. The special tokens come
  /// from `tokenizer` when there is one.
  public static func load(_ path: String, tokenizer: Tokenizer?) throws -> ChatTemplate {
    let specialTokens = tokenizer?.specialTokenStrings ?? [:]
    if path == "qwen3" {
      var template = qwen3()
      if tokenizer != nil { template.specialTokens = specialTokens }
      return template
    }
    guard FileManager.default.fileExists(atPath: path) else {
      throw TokenizerError.unreadable(path: path, reason: "no such file (a chat template: .jinja text, a tokenizer_config.json, or qwen3)")
    }
    if path.hasSuffix(".json") {
      let (configuration, _) = try Tokenizer.readConfiguration(path)
      guard let source = configuration.chatTemplate else {
        throw TokenizerError.invalidFile(path: path, reason: "no chat_template in this file")
      }
      return try ChatTemplate(source, name: path, specialTokens: specialTokens)
    }
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
      throw TokenizerError.invalidFile(path: path, reason: "not readable UTF-8 text")
    }
    return try ChatTemplate(text, name: path, specialTokens: specialTokens)
  }
}
