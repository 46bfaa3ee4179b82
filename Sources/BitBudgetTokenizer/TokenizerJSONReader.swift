import Foundation

/// Reads `tokenizer.json` quickly: the model's `vocab` object and `merges` list (300,000 strings
/// for Qwen3) are parsed straight into Swift values by a byte scanner, and everything else (a few
/// small objects) by `JSONSerialization`. Parsing the whole 11 MB file with `JSONSerialization`
/// and casting from `Any` took 190 ms of the 280 ms load; this takes about 60.
///
/// The scanner accepts exactly JSON (RFC 8259) in the parts it reads and reports the byte offset
/// of the first error, so a truncated or corrupt file is rejected with a useful message.
struct TokenizerJSONReader {
  let path: String
  let bytes: [UInt8]
  private var position = 0

  struct Result {
    var vocabulary: [String: Int] = [:]
    var merges: [(String, String)] = []
    /// Top-level keys other than "model", and the model's keys other than vocab/merges.
    var root: [String: Any] = [:]
    var model: [String: Any] = [:]
    var sawVocabulary = false
    var sawMerges = false
  }

  init(path: String, data: Data) {
    self.path = path
    bytes = [UInt8](data)
  }

  private func fail(_ reason: String) -> TokenizerError {
    .invalidFile(path: path, reason: "\(reason) at byte \(position) (truncated or not JSON?)")
  }

  mutating func read() throws -> Result {
    var result = Result()
    skipWhitespace()
    try readObject { reader, key in
      if key == "model" {
        try reader.readObject { reader, modelKey in
          switch modelKey {
          case "vocab":
            result.vocabulary = try reader.readVocabulary()
            result.sawVocabulary = true
          case "merges":
            result.merges = try reader.readMerges()
            result.sawMerges = true
          default:
            result.model[modelKey] = try reader.readSmallValue()
          }
        }
      } else {
        result.root[key] = try reader.readSmallValue()
      }
    }
    skipWhitespace()
    guard position == bytes.count else { throw fail("unexpected data after the top-level object") }
    return result
  }

  // MARK: Structure

  private mutating func skipWhitespace() {
    while position < bytes.count {
      switch bytes[position] {
      case 0x20, 0x09, 0x0A, 0x0D: position += 1
      default: return
      }
    }
  }

  private mutating func expect(_ byte: UInt8) throws {
    skipWhitespace()
    guard position < bytes.count, bytes[position] == byte else {
      throw fail("expected '\(Character(Unicode.Scalar(byte)))'")
    }
    position += 1
  }

  private mutating func peek() -> UInt8? {
    skipWhitespace()
    return position < bytes.count ? bytes[position] : nil
  }

  /// Calls `body` for each key of an object, positioned at its value (which `body` must consume).
  private mutating func readObject(_ body: (inout TokenizerJSONReader, String) throws -> Void) throws {
    try expect(UInt8(ascii: "{"))
    if peek() == UInt8(ascii: "}") {
      position += 1
      return
    }
    while true {
      skipWhitespace()
      let key = try readString()
      try expect(UInt8(ascii: ":"))
      try body(&self, key)
      skipWhitespace()
      guard position < bytes.count else { throw fail("unterminated object") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
      } else if bytes[position] == UInt8(ascii: "}") {
        position += 1
        return
      } else {
        throw fail("expected ',' or '}'")
      }
    }
  }

  /// Any value, parsed by `JSONSerialization` after its extent is found.
  private mutating func readSmallValue() throws -> Any {
    skipWhitespace()
    let start = position
    try skipValue()
    let slice = Data(bytes[start..<position])
    do {
      return try JSONSerialization.jsonObject(with: slice, options: [.fragmentsAllowed])
    } catch {
      position = start
      throw fail("invalid JSON value")
    }
  }

  /// Moves past one value, checking only its nesting and strings.
  private mutating func skipValue() throws {
    skipWhitespace()
    guard position < bytes.count else { throw fail("missing value") }
    switch bytes[position] {
    case UInt8(ascii: "\""):
      _ = try readString()
    case UInt8(ascii: "{"), UInt8(ascii: "["):
      var depth = 0
      repeat {
        guard position < bytes.count else { throw fail("unterminated object or list") }
        switch bytes[position] {
        case UInt8(ascii: "\""):
          _ = try readString()
          continue
        case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
        case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
        default: break
        }
        position += 1
      } while depth > 0
    default:
      while position < bytes.count {
        switch bytes[position] {
        case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: return
        default: position += 1
        }
      }
    }
  }

  // MARK: Vocabulary and merges

  private mutating func readVocabulary() throws -> [String: Int] {
    var vocabulary: [String: Int] = [:]
    vocabulary.reserveCapacity(160_000)
    try readObject { reader, token in
      let id = try reader.readInteger()
      if vocabulary.updateValue(id, forKey: token) != nil {
        throw reader.fail("token \"\(token)\" appears twice in model.vocab")
      }
    }
    return vocabulary
  }

  private mutating func readMerges() throws -> [(String, String)] {
    var merges: [(String, String)] = []
    merges.reserveCapacity(160_000)
    try expect(UInt8(ascii: "["))
    if peek() == UInt8(ascii: "]") {
      position += 1
      return merges
    }
    while true {
      switch peek() {
      case UInt8(ascii: "\""):
        let text = try readString()
        guard let pair = Tokenizer.splitMerge(text) else { throw fail("merge \(merges.count) \"\(text)\" is not \"a b\"") }
        merges.append(pair)
      case UInt8(ascii: "["):
        position += 1
        skipWhitespace()
        let left = try readString()
        try expect(UInt8(ascii: ","))
        skipWhitespace()
        let right = try readString()
        try expect(UInt8(ascii: "]"))
        merges.append((left, right))
      default:
        throw fail("merge \(merges.count) is neither \"a b\" nor [\"a\", \"b\"]")
      }
      skipWhitespace()
      guard position < bytes.count else { throw fail("unterminated merges list") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
      } else if bytes[position] == UInt8(ascii: "]") {
        position += 1
        return merges
      } else {
        throw fail("expected ',' or ']' in merges")
      }
    }
  }

  private mutating func readInteger() throws -> Int {
    skipWhitespace()
    var value = 0
    var digits = 0
    let negative = position < bytes.count && bytes[position] == UInt8(ascii: "-")
    if negative { position += 1 }
    while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 {
      guard digits < 12 else { throw fail("number too large") }
      value = value * 10 + Int(bytes[position] - 0x30)
      digits += 1
      position += 1
    }
    guard digits > 0 else { throw fail("expected an integer id") }
    if position < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[position]) {
      throw fail("expected an integer id")
    }
    return negative ? -value : value
  }

  // MARK: Strings

  /// A JSON string at the current position (which must be its opening quote).
  private mutating func readString() throws -> String {
    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a string") }
    position += 1
    let start = position
    // Fast path: no escapes.
    while position < bytes.count {
      let byte = bytes[position]
      if byte == UInt8(ascii: "\"") {
        let text = bytes.withUnsafeBufferPointer { buffer in
          String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<position]), as: UTF8.self)
        }
        position += 1
        return text
      }
      if byte == UInt8(ascii: "\\") { break }
      if byte < 0x20 { throw fail("control character in a string") }
      position += 1
    }
    var raw = [UInt8](bytes[start..<min(position, bytes.count)])
    while position < bytes.count {
      let byte = bytes[position]
      position += 1
      switch byte {
      case UInt8(ascii: "\""):
        return String(decoding: raw, as: UTF8.self)
      case UInt8(ascii: "\\"):
        guard position < bytes.count else { throw fail("unterminated escape") }
        let escape = bytes[position]
        position += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): raw.append(escape)
        case UInt8(ascii: "b"): raw.append(0x08)
        case UInt8(ascii: "f"): raw.append(0x0C)
        case UInt8(ascii: "n"): raw.append(0x0A)
        case UInt8(ascii: "r"): raw.append(0x0D)
        case UInt8(ascii: "t"): raw.append(0x09)
        case UInt8(ascii: "u"):
          var scalar = try readHex4()
          if (0xD800...0xDBFF).contains(scalar), position + 1 < bytes.count,
            bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u")
          {
            let save = position
            position += 2
            let low = try readHex4()
            if (0xDC00...0xDFFF).contains(low) {
              scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else {
              position = save
            }
          }
          // Lone surrogates become U+FFFD, as JSONSerialization does.
          let value = Unicode.Scalar(scalar) ?? "\u{FFFD}"
          UTF8.encode(value) { raw.append($0) }
        default:
          throw fail("invalid escape")
        }
      default:
        if byte < 0x20 { throw fail("control character in a string") }
        raw.append(byte)
      }
    }
    throw fail("unterminated string")
  }

  private mutating func readHex4() throws -> UInt32 {
    guard position + 4 <= bytes.count else { throw fail("truncated \\u escape") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let byte = bytes[position]
      let digit: UInt32
      switch byte {
      case 0x30...0x39: digit = UInt32(byte - 0x30)
      case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
      case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
      default: throw fail("invalid \\u escape")
      }
      value = value * 16 + digit
      position += 1
    }
    return value
  }
}
