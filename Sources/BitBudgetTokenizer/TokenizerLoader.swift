import Foundation

/// What `tokenizer_config.json` says about special tokens and chat formatting.
public struct TokenizerConfiguration: Sendable, Equatable {
  public var tokenizerClass: String?
  public var eosToken: String?
  public var padToken: String?
  public var bosToken: String?
  public var unkToken: String?
  /// Whether encoding a text (not a chat prompt, whose template writes `bos_token` itself)
  /// starts with the BOS token: tokenizer_config.json `add_bos_token`, else a tokenizer.json
  /// post-processor whose template starts with a special token (Llama 3), else GGUF
  /// `tokenizer.ggml.add_bos_token`.
  public var addBosToken = false
  /// `add_bos_token` was written in tokenizer_config.json (it then overrides the post-processor).
  var addBosTokenGiven = false
  /// The Jinja chat template (tokenizer_config.json `chat_template`, the folder's
  /// `chat_template.jinja`, or GGUF `tokenizer.chat_template`).
  public var chatTemplate: String?

  public init() {}

  /// The tokenizer classes whose behaviour this implementation reproduces (byte-level BPE; for the
  /// generic classes, tokenizer.json describes the pipeline, and it is checked when read).
  public static let supportedClasses: Set<String> = [
    "Qwen2Tokenizer", "Qwen2TokenizerFast", "GPT2Tokenizer", "GPT2TokenizerFast", "PreTrainedTokenizerFast",
  ]
}

extension Tokenizer {
  /// Loads a tokenizer from a model folder or a file: `tokenizer.json` (preferred), or
  /// `vocab.json` + `merges.txt`, plus `tokenizer_config.json` when the folder has one.
  public static func load(from path: String) throws -> Tokenizer {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw TokenizerError.unreadable(path: path, reason: "no such file or folder")
    }
    let folder = isDirectory.boolValue ? path : (path as NSString).deletingLastPathComponent
    let configPath = (folder as NSString).appendingPathComponent("tokenizer_config.json")
    var config = FileManager.default.fileExists(atPath: configPath)
      ? try readConfiguration(configPath) : (TokenizerConfiguration(), [AddedToken]())
    // transformers saves the template beside the config, and reads it in preference to it.
    let templatePath = (folder as NSString).appendingPathComponent("chat_template.jinja")
    if FileManager.default.fileExists(atPath: templatePath) {
      guard let data = FileManager.default.contents(atPath: templatePath), let text = String(data: data, encoding: .utf8) else {
        throw TokenizerError.invalidFile(path: templatePath, reason: "not readable UTF-8 text")
      }
      config.0.chatTemplate = text
    }
    if let tokenizerClass = config.0.tokenizerClass,
      !TokenizerConfiguration.supportedClasses.contains(tokenizerClass)
    {
      throw TokenizerError.unsupported(
        path: configPath,
        what: "tokenizer_class \"\(tokenizerClass)\" (supported: \(TokenizerConfiguration.supportedClasses.sorted().joined(separator: ", ")))")
    }
    if !isDirectory.boolValue {
      return try fromTokenizerJSON(path, configuration: config.0)
    }
    let json = (path as NSString).appendingPathComponent("tokenizer.json")
    if FileManager.default.fileExists(atPath: json) {
      return try fromTokenizerJSON(json, configuration: config.0)
    }
    let vocab = (path as NSString).appendingPathComponent("vocab.json")
    let merges = (path as NSString).appendingPathComponent("merges.txt")
    if FileManager.default.fileExists(atPath: vocab) && FileManager.default.fileExists(atPath: merges) {
      return try fromVocabAndMerges(vocab: vocab, merges: merges, addedTokens: config.1, configuration: config.0)
    }
    throw TokenizerError.unreadable(path: path, reason: "no tokenizer.json, nor vocab.json and merges.txt, in this folder")
  }

  static func readJSONObject(_ path: String) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TokenizerError.unreadable(path: path, reason: "cannot open the file")
    }
    let object: Any
    do {
      object = try JSONSerialization.jsonObject(with: data)
    } catch {
      throw TokenizerError.invalidFile(path: path, reason: "not valid JSON (truncated?)")
    }
    guard let root = object as? [String: Any] else { throw TokenizerError.invalidFile(path: path, reason: "not a JSON object") }
    return root
  }

  /// A token string from a config value that is a string or `{"content": …}`.
  static func tokenContent(_ value: Any?) -> String? {
    if let text = value as? String { return text }
    if let object = value as? [String: Any] { return object["content"] as? String }
    return nil
  }

  static func readConfiguration(_ path: String) throws -> (TokenizerConfiguration, [AddedToken]) {
    let root = try readJSONObject(path)
    var config = TokenizerConfiguration()
    config.tokenizerClass = root["tokenizer_class"] as? String
    config.eosToken = tokenContent(root["eos_token"])
    config.padToken = tokenContent(root["pad_token"])
    config.bosToken = tokenContent(root["bos_token"])
    config.unkToken = tokenContent(root["unk_token"])
    config.addBosToken = root["add_bos_token"] as? Bool ?? false
    config.addBosTokenGiven = root["add_bos_token"] is Bool
    switch root["chat_template"] {
    case let template as String:
      config.chatTemplate = template
    case let named as [[String: Any]]:
      // Several named templates (tool use, RAG): the one named "default" is the chat template.
      config.chatTemplate = named.first { $0["name"] as? String == "default" }?["template"] as? String
    default:
      break
    }
    var added: [AddedToken] = []
    if let decoder = root["added_tokens_decoder"] {
      guard let entries = decoder as? [String: Any] else {
        throw TokenizerError.invalidFile(path: path, reason: "added_tokens_decoder is not an object")
      }
      for (key, value) in entries {
        guard let id = Int(key), let entry = value as? [String: Any], let content = entry["content"] as? String else {
          throw TokenizerError.invalidFile(path: path, reason: "added_tokens_decoder[\"\(key)\"] is not {\"content\": …} under a numeric id")
        }
        try checkPlainAddedToken(entry, content: content, path: path)
        added.append(AddedToken(id: id, content: content, special: entry["special"] as? Bool ?? false))
      }
    }
    return (config, added.sorted { $0.id < $1.id })
  }

  /// Added tokens with `lstrip`, `rstrip`, `single_word` or `normalized` change how text around
  /// them is split; Qwen's have none, and they are not implemented.
  static func checkPlainAddedToken(_ entry: [String: Any], content: String, path: String) throws {
    for flag in ["lstrip", "rstrip", "single_word", "normalized"] where entry[flag] as? Bool == true {
      throw TokenizerError.unsupported(path: path, what: "added token \"\(content)\" with \(flag)")
    }
  }

  /// The special token a tokenizer.json post-processor puts before a single text (Llama 3's
  /// TemplateProcessing writes `<|begin_of_text|>`), if any.
  static func leadingSpecialToken(_ processor: Any?) -> String? {
    guard let object = processor as? [String: Any] else { return nil }
    switch object["type"] as? String {
    case "TemplateProcessing":
      guard let single = object["single"] as? [[String: Any]], let first = single.first,
        let special = first["SpecialToken"] as? [String: Any]
      else { return nil }
      return special["id"] as? String
    case "Sequence":
      return (object["processors"] as? [Any])?.lazy.compactMap { leadingSpecialToken($0) }.first
    default:
      return nil
    }
  }

  static func fromTokenizerJSON(_ path: String, configuration: TokenizerConfiguration) throws -> Tokenizer {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TokenizerError.unreadable(path: path, reason: "cannot open the file")
    }
    var reader = TokenizerJSONReader(path: path, data: data)
    let parsed = try reader.read()
    let root = parsed.root
    let model = parsed.model
    func fail(_ reason: String) -> TokenizerError { .invalidFile(path: path, reason: reason) }
    func unsupported(_ what: String) -> TokenizerError { .unsupported(path: path, what: what) }

    guard parsed.sawVocabulary else { throw fail("no model.vocab object") }
    guard parsed.sawMerges else { throw fail("no model.merges list") }
    if let type = model["type"] as? String, type != "BPE" {
      throw unsupported("model type \"\(type)\" (only BPE)")
    }
    if let prefix = model["continuing_subword_prefix"] as? String, !prefix.isEmpty {
      throw unsupported("continuing_subword_prefix \"\(prefix)\"")
    }
    if let suffix = model["end_of_word_suffix"] as? String, !suffix.isEmpty {
      throw unsupported("end_of_word_suffix \"\(suffix)\"")
    }
    if model["byte_fallback"] as? Bool == true { throw unsupported("byte_fallback") }
    if model["ignore_merges"] as? Bool == true { throw unsupported("ignore_merges") }

    var normalizesNFC = false
    if let normalizer = root["normalizer"], !(normalizer is NSNull) {
      let type = (normalizer as? [String: Any])?["type"] as? String
      guard type == "NFC" else { throw unsupported("normalizer \(type.map { "\"\($0)\"" } ?? "?") (only NFC or none)") }
      normalizesNFC = true
    }
    let preTokenizer = try preTokenizer(root["pre_tokenizer"], path: path)
    if let decoder = root["decoder"] as? [String: Any], let type = decoder["type"] as? String, type != "ByteLevel" {
      throw unsupported("decoder \"\(type)\" (only ByteLevel)")
    }

    var added: [AddedToken] = []
    if let list = root["added_tokens"] {
      guard let entries = list as? [Any] else { throw fail("added_tokens is not a list") }
      for (index, item) in entries.enumerated() {
        guard let entry = item as? [String: Any], let id = (entry["id"] as? NSNumber)?.intValue,
          let content = entry["content"] as? String
        else { throw fail("added_tokens[\(index)] lacks an id or content") }
        try checkPlainAddedToken(entry, content: content, path: path)
        added.append(AddedToken(id: id, content: content, special: entry["special"] as? Bool ?? false))
      }
    }
    var configuration = configuration
    if !configuration.addBosTokenGiven, let leading = leadingSpecialToken(root["post_processor"]) {
      configuration.addBosToken = true
      configuration.bosToken = configuration.bosToken ?? leading
    }
    return try Tokenizer(
      source: path, vocabulary: parsed.vocabulary, merges: parsed.merges, addedTokens: added, preTokenizer: preTokenizer,
      normalizesNFC: normalizesNFC, configuration: configuration)
  }

  /// The pre-tokenizer a `tokenizer.json` describes: Split(one of the known regexes, Isolated)
  /// then ByteLevel without its own regex; ByteLevel with GPT-2's regex; or Digits(individual)
  /// then that (SmolLM).
  static func preTokenizer(_ value: Any?, path: String) throws -> PreTokenizer {
    func unsupported() -> TokenizerError {
      .unsupported(path: path, what: "pre-tokenizer (only the Qwen2, Llama 3, GPT-2 and SmolLM byte-level ones)")
    }
    guard let object = value as? [String: Any] else { throw unsupported() }
    func isByteLevel(_ step: [String: Any], regex: Bool) -> Bool {
      step["type"] as? String == "ByteLevel" && (step["use_regex"] as? Bool ?? true) == regex
        && step["add_prefix_space"] as? Bool != true
    }
    if isByteLevel(object, regex: true) { return .gpt2 }
    let steps = object["type"] as? String == "Sequence" ? object["pretokenizers"] as? [[String: Any]] ?? [] : []
    if steps.count == 2, steps[0]["type"] as? String == "Digits", steps[0]["individual_digits"] as? Bool == true,
      isByteLevel(steps[1], regex: true)
    {
      return .smollm
    }
    guard steps.count == 2, steps[0]["type"] as? String == "Split", steps[0]["behavior"] as? String == "Isolated",
      steps[0]["invert"] as? Bool != true, isByteLevel(steps[1], regex: false),
      let pattern = (steps[0]["pattern"] as? [String: Any])?["Regex"] as? String
    else { throw unsupported() }
    switch pattern {
    case PreTokenizer.qwen2Pattern: return .qwen2
    case PreTokenizer.llama3Pattern: return .llama3
    case PreTokenizer.gpt2Pattern: return .gpt2
    default: throw unsupported()
    }
  }

  /// A merges entry "a b" split at its single space.
  static func splitMerge(_ text: Substring) -> (String, String)? {
    let parts = text.split(separator: " ", omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
    return (String(parts[0]), String(parts[1]))
  }

  public static func splitMerge(_ text: String) -> (String, String)? { splitMerge(Substring(text)) }

  static func fromVocabAndMerges(
    vocab: String, merges: String, addedTokens: [AddedToken], configuration: TokenizerConfiguration
  ) throws -> Tokenizer {
    let root = try readJSONObject(vocab)
    var vocabulary: [String: Int] = [:]
    vocabulary.reserveCapacity(root.count)
    for (token, value) in root {
      guard let id = (value as? NSNumber)?.intValue, !(value is String) else {
        throw TokenizerError.invalidFile(path: vocab, reason: "\"\(token)\" does not map to an id")
      }
      vocabulary[token] = id
    }
    guard let data = FileManager.default.contents(atPath: merges), let text = String(data: data, encoding: .utf8) else {
      throw TokenizerError.unreadable(path: merges, reason: "cannot open the file as UTF-8 text")
    }
    var pairs: [(String, String)] = []
    // Lines end in "\n" or "\r\n" (Qwen's merges.txt); byte-level tokens never contain a newline.
    for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
      if line.isEmpty || (number == 0 && line.hasPrefix("#version")) { continue }
      guard let pair = splitMerge(line) else {
        throw TokenizerError.invalidFile(path: merges, reason: "line \(number + 1) is not \"a b\"")
      }
      pairs.append(pair)
    }
    return try Tokenizer(source: vocab, vocabulary: vocabulary, merges: pairs, addedTokens: addedTokens, configuration: configuration)
  }
}
