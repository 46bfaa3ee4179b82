import Foundation
import BitBudgetTokenizer

extension Tokenizer {
  /// The byte-level BPE tokenizer a GGUF file carries (`tokenizer.ggml.model` = "gpt2"): its
  /// `tokens` (by id), `merges`, `token_type` (3 = control, added as special tokens; 4 =
  /// user-defined, added as plain added tokens) and the pre-tokenizer named by
  /// `tokenizer.ggml.pre`.
  public static func fromGGUF(_ file: GGUFFile) throws -> Tokenizer {
    let path = file.path
    func fail(_ reason: String) -> TokenizerError { .invalidFile(path: path, reason: reason) }
    let metadata = file.metadata
    guard let model = metadata["tokenizer.ggml.model"]?.string else { throw fail("no tokenizer.ggml.model") }
    guard model == "gpt2" else {
      throw TokenizerError.unsupported(path: path, what: "tokenizer.ggml.model \"\(model)\" (only gpt2, byte-level BPE)")
    }
    let preName = metadata["tokenizer.ggml.pre"]?.string ?? "default"
    guard let pre = PreTokenizer.fromGGUFName(preName) else {
      throw TokenizerError.unsupported(path: path, what: "pre-tokenizer \"\(preName)\" (supported: qwen2, llama3, gpt2, smollm)")
    }
    guard let tokenValues = metadata["tokenizer.ggml.tokens"]?.array else { throw fail("no tokenizer.ggml.tokens") }
    var tokens: [String?] = []
    tokens.reserveCapacity(tokenValues.count)
    for value in tokenValues {
      guard let token = value.string else { throw fail("tokenizer.ggml.tokens has a non-string entry") }
      tokens.append(token)
    }
    let types = try (metadata["tokenizer.ggml.token_type"]?.array ?? []).map { value -> Int in
      guard let type = value.integer else { throw fail("tokenizer.ggml.token_type has a non-integer entry") }
      return type
    }
    guard types.isEmpty || types.count == tokens.count else {
      throw fail("tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
    }
    var merges: [(String, String)] = []
    for value in metadata["tokenizer.ggml.merges"]?.array ?? [] {
      guard let text = value.string, let pair = Tokenizer.splitMerge(text) else { throw fail("a merge is not \"a b\"") }
      merges.append(pair)
    }
    // Control and user-defined tokens are matched in text before BPE. A vocabulary spells tokens
    // in the byte-level alphabet; ones spelled otherwise are taken as raw text.
    var added: [AddedToken] = []
    for (id, type) in types.enumerated() where type == 3 || type == 4 {
      guard let spelling = tokens[id], !spelling.isEmpty else { continue }
      let content = Self.byteLevelDecoded(spelling) ?? spelling
      added.append(AddedToken(id: id, content: content, special: type == 3))
      tokens[id] = Self.byteLevelSpelling(content)
    }
    var configuration = TokenizerConfiguration()
    func token(_ key: String) -> String? {
      metadata[key]?.integer.flatMap { tokens.indices.contains($0) ? tokens[$0].map { Self.byteLevelDecoded($0) ?? $0 } : nil }
    }
    configuration.eosToken = token("tokenizer.ggml.eos_token_id")
    configuration.bosToken = token("tokenizer.ggml.bos_token_id")
    configuration.padToken = token("tokenizer.ggml.padding_token_id")
    configuration.unkToken = token("tokenizer.ggml.unknown_token_id")
    // Without the key, llama.cpp adds BOS when the pre-tokenizer is Llama 3's (`llama-bpe`), as
    // Llama 3's tokenizer.json post-processor does.
    configuration.addBosToken = metadata["tokenizer.ggml.add_bos_token"].map { $0 == .bool(true) } ?? (pre == .llama3)
    configuration.chatTemplate = metadata["tokenizer.chat_template"]?.string
    return try Tokenizer(
      source: path, tokens: tokens, merges: merges, addedTokens: added, preTokenizer: pre,
      normalizesNFC: pre == .qwen2, configuration: configuration)
  }
}

extension Tokenizer {
  /// A tokenizer from a tokenizer file or folder (`Tokenizer.load(from:)`) or from a GGUF file's
  /// metadata, or a Hub id (whose tokenizer files alone are downloaded when missing).
  public static func load(anyFrom reference: String) throws -> Tokenizer {
    let path = try HubCache.resolve(reference, content: .tokenizer)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
      let handle = FileHandle(forReadingAtPath: path), handle.readData(ofLength: 4) == Data("GGUF".utf8)
    {
      return try fromGGUF(try GGUFFile(path: path))
    }
    return try load(from: path)
  }
}
