// The standard library's NFC (`_nfc`, behind SPI): Foundation's
// `precomposedStringWithCanonicalMapping` on Linux misses compositions of an already composed
// starter with a following starter (Hangul syllable + trailing jamo, U+0CCA U+0CD5), which
// changes token ids.
@_spi(_Unicode) import Swift
import Foundation

/// A token that is matched in text before pre-tokenization and never split or normalized (Qwen's
/// `<|im_start|>`, `<think>`, …).
public struct AddedToken: Sendable, Equatable {
  public let id: Int
  public let content: String
  /// Special tokens are dropped by `decode(_:skipSpecialTokens: true)`.
  public let special: Bool

  public init(id: Int, content: String, special: Bool) {
    self.id = id
    self.content = content
    self.special = special
  }
}

/// A byte-level BPE tokenizer (Qwen2/Qwen3, Llama 3, GPT-2, SmolLM), giving the same ids as
/// Hugging Face `tokenizers` for the same `tokenizer.json`.
///
/// Encoding: added tokens are matched first (leftmost, longest), the text between them is
/// NFC-normalized (when the tokenizer normalizes), split by its `PreTokenizer`, and each piece's
/// UTF-8 bytes are merged by `BytePairEncoder`. No BOS/EOS is added; chat formatting supplies special
/// tokens. Decoding maps tokens back to bytes and decodes UTF-8, replacing invalid sequences
/// with U+FFFD.
///
/// Not thread-safe (it keeps a per-piece cache); use one instance per thread.
public final class Tokenizer {
  /// Where it was loaded from.
  public let source: String
  /// Tokens of the BPE vocabulary followed by the added tokens; ids `0..<vocabularySize`.
  public let vocabularySize: Int
  public let addedTokens: [AddedToken]
  /// Token content by id (vocabulary strings in the byte-level alphabet, added tokens verbatim).
  private let tokenStrings: [String]
  private let tokenIDs: [String: Int]
  /// The bytes each token decodes to: `tokenBytes[tokenByteStarts[i]..<tokenByteStarts[i+1]]`.
  private let tokenBytes: [UInt8]
  private let tokenByteStarts: [Int32]
  private let specialIDs: Set<Int>
  private let bpe: BytePairEncoder
  private let addedMatcher: AddedTokenMatcher
  /// Tokens of pieces by their UTF-8 bytes (not by `String`, whose equality treats canonically
  /// equivalent texts as equal).
  private var cache: [[UInt8]: [Int32]] = [:]
  private var workspace = BytePairEncoder.Workspace()
  /// From tokenizer_config.json, when present.
  public let configuration: TokenizerConfiguration
  public let preTokenizer: PreTokenizer
  /// Whether text is NFC-normalized before pre-tokenization.
  public let normalizesNFC: Bool

  /// A tokenizer from a vocabulary of token spellings by id (in the byte-level alphabet).
  /// Token ids a tokenizer may use (no real vocabulary comes near ten million).
  static let idRange = 0..<10_000_000

  convenience init(
    source: String, vocabulary: [String: Int], merges: [(String, String)], addedTokens: [AddedToken],
    preTokenizer: PreTokenizer = .qwen2, normalizesNFC: Bool = true, configuration: TokenizerConfiguration
  ) throws {
    func fail(_ reason: String) -> TokenizerError { .invalidFile(path: source, reason: reason) }
    // Ids are checked before any arithmetic on them (found by fuzzing: -5 or 2⁶³ − 1 trapped).
    if let (token, id) = vocabulary.first(where: { !Self.idRange.contains($0.value) }) {
      throw fail("token \"\(token)\" has id \(id), outside 0..<\(Self.idRange.upperBound)")
    }
    let size = vocabulary.values.max().map { $0 + 1 } ?? 0
    var tokens = [String?](repeating: nil, count: size)
    for (token, id) in vocabulary {
      guard tokens[id] == nil else { throw fail("id \(id) is used by two tokens") }
      tokens[id] = token
    }
    try self.init(
      source: source, tokens: tokens, merges: merges, addedTokens: addedTokens, preTokenizer: preTokenizer,
      normalizesNFC: normalizesNFC, configuration: configuration)
  }

  /// A tokenizer from token spellings by id (`nil` for ids only added tokens fill); the first of
  /// duplicate spellings is the one BPE produces.
  public init(
    source: String, tokens: [String?], merges: [(String, String)], addedTokens: [AddedToken],
    preTokenizer: PreTokenizer, normalizesNFC: Bool, configuration: TokenizerConfiguration
  ) throws {
    self.source = source
    self.configuration = configuration
    self.preTokenizer = preTokenizer
    self.normalizesNFC = normalizesNFC
    func fail(_ reason: String) -> TokenizerError { .invalidFile(path: source, reason: reason) }
    if let added = addedTokens.first(where: { !Self.idRange.contains($0.id) }) {
      throw fail("added token \"\(added.content)\" has id \(added.id), outside 0..<\(Self.idRange.upperBound)")
    }
    let size = max(tokens.count, (addedTokens.map(\.id).max() ?? -1) + 1)
    guard size > 0, size <= Self.idRange.upperBound else { throw fail("the vocabulary has \(size) ids") }
    var strings = tokens + [String?](repeating: nil, count: size - tokens.count)
    var vocabulary: [String: Int] = [:]
    vocabulary.reserveCapacity(tokens.count)
    for (id, token) in tokens.enumerated() {
      if let token, vocabulary[token] == nil { vocabulary[token] = id }
    }
    for added in addedTokens {
      guard added.id >= 0, !added.content.isEmpty else { throw fail("added token \(added.id) is empty or has a negative id") }
      if let existing = strings[added.id], existing != ByteLevel.encode(Array(added.content.utf8)) {
        throw fail("added token \"\(added.content)\" reuses id \(added.id) of \"\(existing)\"")
      }
      strings[added.id] = added.content
    }
    var complete: [String] = []
    complete.reserveCapacity(size)
    for (id, string) in strings.enumerated() {
      guard let string else { throw fail("id \(id) has no token (ids must be contiguous)") }
      complete.append(string)
    }
    vocabularySize = complete.count
    self.addedTokens = addedTokens
    tokenStrings = complete
    var ids = vocabulary
    for added in addedTokens { ids[added.content] = added.id }
    tokenIDs = ids
    specialIDs = Set(addedTokens.filter(\.special).map(\.id))

    var byteTokens = [Int32](repeating: -1, count: 256)
    for byte in 0..<256 {
      if let id = vocabulary[String(ByteLevel.characters[byte])] { byteTokens[byte] = Int32(id) }
    }
    guard byteTokens.filter({ $0 >= 0 }).count >= 128 else {
      throw fail("the vocabulary lacks most byte-level tokens (is this a byte-level BPE tokenizer?)")
    }
    var table: [UInt64: UInt64] = [:]
    table.reserveCapacity(merges.count)
    for (rank, (left, right)) in merges.enumerated() {
      guard let a = vocabulary[left], let b = vocabulary[right] else {
        throw fail("merge \(rank) (\"\(left)\" \"\(right)\") uses a token that is not in the vocabulary")
      }
      guard let merged = vocabulary[left + right] else {
        throw fail("merge \(rank) (\"\(left)\" \"\(right)\") makes \"\(left + right)\", which is not in the vocabulary")
      }
      let key = BytePairEncoder.key(Int32(a), Int32(b))
      if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(UInt32(merged)) }
    }
    bpe = BytePairEncoder(byteTokens: byteTokens, merges: table)
    addedMatcher = AddedTokenMatcher(addedTokens)

    var bytes: [UInt8] = []
    var starts: [Int32] = [0]
    starts.reserveCapacity(complete.count + 1)
    let addedIDs = Set(addedTokens.map(\.id))
    for (id, string) in complete.enumerated() {
      if addedIDs.contains(id) {
        bytes += Array(string.utf8)
      } else if let decoded = ByteLevel.decode(string) {
        bytes += decoded
      } else {
        throw fail("vocabulary token \"\(string)\" (id \(id)) has characters outside the byte-level alphabet")
      }
      starts.append(Int32(bytes.count))
    }
    tokenBytes = bytes
    tokenByteStarts = starts
  }

  /// The id of a token's content (a vocabulary string in the byte-level alphabet, or an added
  /// token), or nil.
  public func id(of token: String) -> Int? { tokenIDs[token] }

  /// The content of a token, or nil for an unknown id.
  public func token(_ id: Int) -> String? {
    id >= 0 && id < vocabularySize ? tokenStrings[id] : nil
  }

  /// The merges as token ids, in rank order.
  func bpeMerges() -> [(left: Int, right: Int)] {
    bpe.merges.sorted { $0.value < $1.value }.map {
      (Int(UInt32(truncatingIfNeeded: $0.key >> 32)), Int(UInt32(truncatingIfNeeded: $0.key & 0xFFFF_FFFF)))
    }
  }

  /// Whether `id` is a special added token.
  public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

  // MARK: Encoding

  /// The ids of a text as the model reads it on its own (not a chat prompt): the BOS token first
  /// when the tokenizer adds one (`configuration.addBosToken`), as transformers' `tokenizer(text)`.
  public func encodePrompt(_ text: String) -> [Int] {
    let ids = encode(text)
    guard configuration.addBosToken, let bos = configuration.bosToken.flatMap(id(of:)) else { return ids }
    return [bos] + ids
  }

  /// The token ids of `text`, without special tokens added.
  public func encode(_ text: String) -> [Int] {
    var output: [Int32] = []
    output.reserveCapacity(text.utf8.count / 3 + 4)
    var segmentStart = text.startIndex
    for match in addedMatcher.matches(in: text) {
      encodeOrdinary(text[segmentStart..<match.range.lowerBound], into: &output)
      output.append(Int32(match.id))
      segmentStart = match.range.upperBound
    }
    encodeOrdinary(text[segmentStart...], into: &output)
    return output.map(Int.init)
  }

  /// Text without added tokens: NFC, pre-tokenize, BPE each piece.
  private func encodeOrdinary(_ segment: Substring, into output: inout [Int32]) {
    if segment.isEmpty { return }
    let scalars = normalizesNFC ? Array(Self.nfc(segment).unicodeScalars) : Array(segment.unicodeScalars)
    var pieces: [Range<Int>] = []
    pieces.reserveCapacity(scalars.count / 4 + 1)
    preTokenizer.split(scalars, into: &pieces)
    var bytes: [UInt8] = []
    for piece in pieces {
      bytes.removeAll(keepingCapacity: true)
      for scalar in scalars[piece] { UTF8.encode(scalar) { bytes.append($0) } }
      if bytes.count <= BytePairEncoder.cacheablePieceBytes {
        let key = bytes
        if let cached = cache[key] {
          output += cached
          continue
        }
        var tokens: [Int32] = []
        bytes.withUnsafeBufferPointer { bpe.encode($0, into: &tokens, work: &workspace) }
        if cache.count >= BytePairEncoder.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = tokens
        output += tokens
      } else {
        bytes.withUnsafeBufferPointer { bpe.encode($0, into: &output, work: &workspace) }
      }
    }
  }

  /// NFC of `text`; ASCII (always NFC) is returned as is.
  public static func nfc<S: StringProtocol>(_ text: S) -> String {
    if text.utf8.allSatisfy({ $0 < 0x80 }) { return String(text) }
    return String(String.UnicodeScalarView(String(text)._nfc))
  }

  // MARK: Decoding

  /// The bytes of `ids`; throws for an id the tokenizer does not have.
  public func bytes(of ids: [Int], skipSpecialTokens: Bool = false) throws -> [UInt8] {
    var result: [UInt8] = []
    for id in ids {
      try appendBytes(of: id, to: &result, skipSpecialTokens: skipSpecialTokens)
    }
    return result
  }

  func appendBytes(of id: Int, to result: inout [UInt8], skipSpecialTokens: Bool) throws {
    guard id >= 0 && id < vocabularySize else {
      throw TokenizerError.unknownTokenID(id, vocabularySize: vocabularySize)
    }
    if skipSpecialTokens && specialIDs.contains(id) { return }
    result += tokenBytes[Int(tokenByteStarts[id])..<Int(tokenByteStarts[id + 1])]
  }

  /// The text of `ids` (invalid UTF-8 becomes U+FFFD, as `errors="replace"`).
  public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws -> String {
    String(decoding: try bytes(of: ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
  }
}
