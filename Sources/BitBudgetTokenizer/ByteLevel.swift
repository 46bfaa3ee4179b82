/// GPT-2's byte-level alphabet: every byte is represented by one printable Unicode character, so
/// that byte-level BPE vocabularies are plain strings. Bytes 33–126, 161–172 and 174–255 map to the
/// same code point; the other 68 bytes map, in increasing order, to U+0100, U+0101, … (space → 'Ġ'
/// U+0120, newline → 'Ċ' U+010A).
enum ByteLevel {
  /// The character of each byte.
  static let characters: [Unicode.Scalar] = {
    var table = [Unicode.Scalar](repeating: " ", count: 256)
    var next: UInt32 = 256
    for byte in 0..<256 {
      let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
      if printable {
        table[byte] = Unicode.Scalar(UInt32(byte))!
      } else {
        table[byte] = Unicode.Scalar(next)!
        next += 1
      }
    }
    return table
  }()

  /// The byte of each alphabet character (code points below 324), or nil.
  static let bytes: [UInt8?] = {
    var table = [UInt8?](repeating: nil, count: 324)
    for (byte, scalar) in characters.enumerated() { table[Int(scalar.value)] = UInt8(byte) }
    return table
  }()

  /// The alphabet string of `raw` bytes (how a vocabulary spells them).
  static func encode<S: Sequence>(_ raw: S) -> String where S.Element == UInt8 {
    var text = String.UnicodeScalarView()
    for byte in raw { text.append(characters[Int(byte)]) }
    return String(text)
  }

  /// The bytes a vocabulary string stands for, or nil if it has a character outside the alphabet.
  static func decode(_ token: String) -> [UInt8]? {
    var result: [UInt8] = []
    result.reserveCapacity(token.unicodeScalars.count)
    for scalar in token.unicodeScalars {
      guard Int(scalar.value) < bytes.count, let byte = bytes[Int(scalar.value)] else { return nil }
      result.append(byte)
    }
    return result
  }
}

extension Tokenizer {
  /// How a byte-level vocabulary spells `text` (its UTF-8 bytes in GPT-2's byte alphabet).
  public static func byteLevelSpelling(_ text: String) -> String { ByteLevel.encode(Array(text.utf8)) }

  /// The text a byte-level vocabulary spelling stands for, or nil if it is not one (a character
  /// outside the alphabet, or bytes that are not UTF-8).
  public static func byteLevelDecoded(_ spelling: String) -> String? {
    guard let bytes = ByteLevel.decode(spelling) else { return nil }
    return String(validating: bytes, as: UTF8.self)
  }
}
