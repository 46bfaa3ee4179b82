import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetTokenizer

@Suite struct TokenizerTests {
  /// A fresh instance per test (a tokenizer keeps a cache and is not shared between threads).
  static func qwen3() throws -> Tokenizer {
    try Tokenizer.load(from: Fixtures.qwen3TokenizerDirectory)
  }

  @Test func decodeOfEncodeIsTheNFCText() throws {
    let tokenizer = try Self.qwen3()
    for entry in try CorpusTests.corpus() {
      // Compared as code points: Swift's String == would accept any canonically equal text.
      let decoded = try tokenizer.decode(tokenizer.encode(entry.text))
      #expect(Array(decoded.unicodeScalars) == Array(entry.nfc.unicodeScalars), "\(entry.text.debugDescription.prefix(80))")
      #expect(Array(try tokenizer.decode(entry.ids).unicodeScalars) == Array(entry.nfc.unicodeScalars))
      #expect(Array(Tokenizer.nfc(entry.text).unicodeScalars) == Array(entry.nfc.unicodeScalars))
    }
  }

  @Test func streamingDecodeEqualsWholeDecode() throws {
    let tokenizer = try Self.qwen3()
    for entry in try CorpusTests.corpus() {
      var decoder = StreamingDecoder(tokenizer: tokenizer)
      var streamed = ""
      for id in entry.ids { streamed += try decoder.append(id) }
      streamed += decoder.finish()
      #expect(streamed == (try tokenizer.decode(entry.ids)))
    }
  }

  /// A character split over tokens is held back until it is complete, and an unfinished one
  /// becomes U+FFFD at the end.
  @Test func streamingHoldsBackIncompleteCharacters() throws {
    let tokenizer = try Self.qwen3()
    // Byte-level tokens of the 4 bytes of 😀 (F0 9F 98 80), one byte each.
    let bytes: [UInt8] = [0xF0, 0x9F, 0x98, 0x80]
    let ids = try bytes.map { try #require(tokenizer.id(of: ByteLevel.encode([$0]))) }
    var decoder = StreamingDecoder(tokenizer: tokenizer)
    #expect(try decoder.append(ids[0]) == "")
    #expect(try decoder.append(ids[1]) == "")
    #expect(try decoder.append(ids[2]) == "")
    #expect(try decoder.append(ids[3]) == "😀")
    #expect(try decoder.append(ids[0]) == "")
    #expect(decoder.finish() == "\u{FFFD}")
    // An invalid continuation is emitted at once.
    var other = StreamingDecoder(tokenizer: tokenizer)
    #expect(try other.append(ids[0]) == "")
    #expect(try other.append(try #require(tokenizer.id(of: "a"))) == "\u{FFFD}a")
  }

  @Test func addedTokensAndSpecialTokens() throws {
    let tokenizer = try Self.qwen3()
    #expect(tokenizer.encode("<|im_start|>user\nhi<|im_end|>") == [151644, 872, 198, 6023, 151645])
    #expect(tokenizer.encode("<think>") == [151667])
    #expect(tokenizer.encode("</think>") == [151668])
    #expect(tokenizer.isSpecial(151645))
    #expect(!tokenizer.isSpecial(151668))
    #expect(try tokenizer.decode([151644, 872, 151645], skipSpecialTokens: true) == "user")
    #expect(try tokenizer.decode([151667, 151668], skipSpecialTokens: true) == "<think></think>")
    #expect(tokenizer.vocabularySize == 151_669)
    #expect(tokenizer.encode("Hello, world! 12345") == [9707, 11, 1879, 0, 220, 16, 17, 18, 19, 20])
  }

  /// A tokenizer.json post-processor that puts a special token first (Llama 3's BOS) makes
  /// `encodePrompt` give the ids the `tokenizers` library gives with special tokens added
  /// (fixture from scripts/make-chat-template-fixture.py), while `encode` adds nothing.
  @Test func postProcessorBOSIsPrepended() throws {
    struct Fixture: Decodable {
      struct Case: Decodable {
        let text: String
        let ids: [Int]
      }
      let cases: [Case]
    }
    let fixtureURL = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/tokenizer/bos-post-processor.json")
    let fixtureData = try Data(contentsOf: fixtureURL)
    let fixture = try JSONDecoder().decode(Fixture.self, from: fixtureData)
    let processor = try #require((try JSONSerialization.jsonObject(with: fixtureData) as? [String: Any])?["post_processor"])
    let source = URL(fileURLWithPath: Fixtures.qwen3TokenizerDirectory).appendingPathComponent("tokenizer.json")
    var spec = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any])
    spec["post_processor"] = processor
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bos-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    try JSONSerialization.data(withJSONObject: spec).write(to: folder.appendingPathComponent("tokenizer.json"))
    let tokenizer = try Tokenizer.load(from: folder.path)
    #expect(tokenizer.configuration.addBosToken)
    for item in fixture.cases {
      #expect(tokenizer.encodePrompt(item.text) == item.ids, "\(item.text)")
      #expect(tokenizer.encode(item.text) == Array(item.ids.dropFirst()))
    }
    // The Qwen3 tokenizer itself adds nothing (its config says add_bos_token false).
    #expect(try Self.qwen3().encodePrompt("Hello") == (try Self.qwen3().encode("Hello")))
  }

  @Test func unknownIDsAreErrors() throws {
    let tokenizer = try Self.qwen3()
    #expect(throws: TokenizerError.unknownTokenID(151_669, vocabularySize: 151_669)) { try tokenizer.decode([1, 151_669]) }
    #expect(throws: TokenizerError.self) { try tokenizer.decode([-1]) }
    var decoder = StreamingDecoder(tokenizer: tokenizer)
    #expect(throws: TokenizerError.self) { try decoder.append(200_000) }
  }

  /// vocab.json + merges.txt, and tokenizer.json with merges as "a b" strings, give the same ids.
  @Test func otherFileLayoutsGiveTheSameIds() throws {
    let tokenizer = try Self.qwen3()
    let directory = try Fixtures.temporaryDirectory("layouts")
    defer { try? FileManager.default.removeItem(at: directory) }
    let source = URL(fileURLWithPath: Fixtures.qwen3TokenizerDirectory)
    let pairFolder = directory.appendingPathComponent("vocab-merges")
    let stringFolder = directory.appendingPathComponent("string-merges")
    for folder in [pairFolder, stringFolder] {
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      try FileManager.default.copyItem(at: source.appendingPathComponent("tokenizer_config.json"), to: folder.appendingPathComponent("tokenizer_config.json"))
    }
    for file in ["vocab.json", "merges.txt"] {
      try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: pairFolder.appendingPathComponent(file))
    }
    var json = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("tokenizer.json"))) as! [String: Any]
    var model = json["model"] as! [String: Any]
    model["merges"] = (model["merges"] as! [[String]]).map { $0.joined(separator: " ") }
    json["model"] = model
    try JSONSerialization.data(withJSONObject: json).write(to: stringFolder.appendingPathComponent("tokenizer.json"))
    let fromVocab = try Tokenizer.load(from: pairFolder.path)
    let fromStrings = try Tokenizer.load(from: stringFolder.path)
    for entry in try CorpusTests.corpus().prefix(300) {
      #expect(fromVocab.encode(entry.text) == entry.ids)
      #expect(fromStrings.encode(entry.text) == entry.ids)
    }
    #expect(fromVocab.vocabularySize == tokenizer.vocabularySize)
  }
}

/// Malformed or unsupported tokenizer files are one-line errors naming the file.
@Suite struct TokenizerRejectionTests {
  static func write(_ json: String, config: String? = nil) throws -> URL {
    let directory = try Fixtures.temporaryDirectory("bad-tokenizer")
    try Data(json.utf8).write(to: directory.appendingPathComponent("tokenizer.json"))
    if let config { try Data(config.utf8).write(to: directory.appendingPathComponent("tokenizer_config.json")) }
    return directory
  }

  static let byteVocab: String = {
    let entries = (0..<256).map { byte -> String in
      let token = ByteLevel.encode([UInt8(byte)])
      let escaped = String(data: try! JSONSerialization.data(withJSONObject: token, options: .fragmentsAllowed), encoding: .utf8)!
      return "\(escaped):\(byte)"
    }
    return "{" + entries.joined(separator: ",") + ",\"ab\":256}"
  }()

  static func tokenizerJSON(merges: String = #"["a b"]"#, vocab: String = byteVocab, preTokenizer: String? = nil, normalizer: String = #"{"type":"NFC"}"#) -> String {
    let pattern = String(data: try! JSONSerialization.data(withJSONObject: PreTokenizer.qwen2Pattern, options: .fragmentsAllowed), encoding: .utf8)!
    let pre = preTokenizer ?? #"{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":\#(pattern)},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}"#
    return #"{"version":"1.0","added_tokens":[{"id":257,"content":"<x>","special":true,"lstrip":false,"rstrip":false,"single_word":false,"normalized":false}],"normalizer":\#(normalizer),"pre_tokenizer":\#(pre),"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":\#(vocab),"merges":\#(merges)}}"#
  }

  @Test func acceptsAMinimalTokenizer() throws {
    let folder = try Self.write(Self.tokenizerJSON())
    defer { try? FileManager.default.removeItem(at: folder) }
    let tokenizer = try Tokenizer.load(from: folder.path)
    #expect(tokenizer.encode("ab<x>ba") == [256, 257, 98, 97])
    #expect(try tokenizer.decode([256, 257]) == "ab<x>")
  }

  /// A byte the vocabulary lacks is dropped, as `tokenizers` does without an unknown token
  /// (checked: "\u{0}ab" → [256], "x\u{0}y" → [120, 121]).
  @Test func dropsBytesTheVocabularyLacks() throws {
    let folder = try Self.write(Self.tokenizerJSON(vocab: Self.byteVocab.replacingOccurrences(of: #""Ā":0"#, with: #""zz":0"#)))
    defer { try? FileManager.default.removeItem(at: folder) }
    let tokenizer = try Tokenizer.load(from: folder.path)
    #expect(tokenizer.encode("\u{0}ab") == [256])
    #expect(tokenizer.encode("x\u{0}y") == [120, 121])
  }

  @Test func rejectsBadFiles() throws {
    let cases: [(String, String?, String)] = [
      ("{", nil, "truncated"),
      ("[]", nil, "expected '{'"),
      (#"{"model":{"type":"BPE","vocab":{"a":0}}}"#, nil, "merges"),
      (Self.tokenizerJSON(merges: #"["a"]"#), nil, "not \"a b\""),
      (Self.tokenizerJSON(merges: #"["a q"]"#), nil, "not in the vocabulary"),
      (Self.tokenizerJSON(merges: #"[["a","b","c"]]"#), nil, "expected ']'"),
      (Self.tokenizerJSON(vocab: #"{"a":0}"#), nil, "has no token"),
      (Self.tokenizerJSON(vocab: #"{"a":"zero"}"#), nil, "integer id"),
      (Self.tokenizerJSON(preTokenizer: #"{"type":"Whitespace"}"#), nil, "pre-tokenizer"),
      (Self.tokenizerJSON(preTokenizer: #"{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]}"#), nil, "pre-tokenizer"),
      (Self.tokenizerJSON(normalizer: #"{"type":"NFKC"}"#), nil, "normalizer"),
      (Self.tokenizerJSON().replacingOccurrences(of: #""type":"BPE""#, with: #""type":"WordPiece""#), nil, "WordPiece"),
      (Self.tokenizerJSON().replacingOccurrences(of: #""lstrip":false"#, with: #""lstrip":true"#), nil, "lstrip"),
      (Self.tokenizerJSON(), #"{"tokenizer_class": "LlamaTokenizer"}"#, "tokenizer_class \"LlamaTokenizer\""),
      (Self.tokenizerJSON(), "{oops", "not valid JSON"),
      // Ids outside any vocabulary used to trap before they were checked (found by fuzzing).
      (#"{"model":{"vocab":{"a":-5},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"}}"#, nil, "id -5, outside"),
      (#"{"model":{"vocab":{},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"},"added_tokens":[{"id":9223372036854775807,"content":"x"}]}"#, nil, "id 9223372036854775807, outside"),
    ]
    for (json, config, phrase) in cases {
      let folder = try Self.write(json, config: config)
      defer { try? FileManager.default.removeItem(at: folder) }
      do {
        _ = try Tokenizer.load(from: folder.path)
        Issue.record("accepted: \(json.prefix(80))")
      } catch let error as TokenizerError {
        #expect(error.description.contains(phrase), "\(error)")
        #expect(error.description.contains(folder.path), "\(error)")
        #expect(!error.description.contains("\n"))
      }
    }
  }

  @Test func rejectsTruncationsOfTheRealFile() throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.qwen3TokenizerDirectory).appendingPathComponent("tokenizer.json"))
    for length in [0, 1, 100, 5_000, data.count / 2, data.count - 2] {
      let directory = try Fixtures.temporaryDirectory("cut-tokenizer")
      defer { try? FileManager.default.removeItem(at: directory) }
      try data.prefix(length).write(to: directory.appendingPathComponent("tokenizer.json"))
      #expect(throws: TokenizerError.self, "length \(length)") { try Tokenizer.load(from: directory.path) }
    }
  }

  @Test func rejectsMissingFiles() throws {
    #expect(throws: TokenizerError.self) { try Tokenizer.load(from: "/nonexistent/tokenizer.json") }
    let directory = try Fixtures.temporaryDirectory("empty-tokenizer")
    defer { try? FileManager.default.removeItem(at: directory) }
    #expect(throws: TokenizerError.self) { try Tokenizer.load(from: directory.path) }
  }
}
