/// Decodes tokens one at a time for display: each `append` returns the text that is complete so
/// far and holds back the bytes of a UTF-8 sequence that the next tokens may finish (a byte-level
/// BPE token can end in the middle of a character). The concatenation of all `append` results and
/// `finish()` equals `Tokenizer.decode` of all the tokens.
public struct StreamingDecoder {
  public let tokenizer: Tokenizer
  public let skipSpecialTokens: Bool
  private var pending: [UInt8] = []

  public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
    self.tokenizer = tokenizer
    self.skipSpecialTokens = skipSpecialTokens
  }

  /// The text completed by `id` (possibly empty).
  public mutating func append(_ id: Int) throws -> String {
    try tokenizer.appendBytes(of: id, to: &pending, skipSpecialTokens: skipSpecialTokens)
    let keep = Self.incompleteSuffixLength(pending)
    let ready = pending.count - keep
    guard ready > 0 else { return "" }
    let text = String(decoding: pending[0..<ready], as: UTF8.self)
    pending.removeFirst(ready)
    return text
  }

  /// Whatever is held back, decoded (an unfinished sequence becomes U+FFFD).
  public mutating func finish() -> String {
    defer { pending.removeAll() }
    return String(decoding: pending, as: UTF8.self)
  }

  /// Length of a trailing prefix of a valid UTF-8 sequence that more bytes could complete, or 0.
  static func incompleteSuffixLength(_ bytes: [UInt8]) -> Int {
    let n = bytes.count
    var back = 1
    while back <= min(3, n) {
      let byte = bytes[n - back]
      if byte & 0xC0 != 0x80 {
        // A lead byte `back` bytes from the end: incomplete if it needs more than `back` bytes and
        // the bytes after it are valid continuations for it.
        let needed: Int
        switch byte {
        case 0xC2...0xDF: needed = 2
        case 0xE0...0xEF: needed = 3
        case 0xF0...0xF4: needed = 4
        default: return 0
        }
        guard back < needed else { return 0 }
        if back >= 2 {
          let second = bytes[n - back + 1]
          let (low, high): (UInt8, UInt8) =
            switch byte {
            case 0xE0: (0xA0, 0xBF)
            case 0xED: (0x80, 0x9F)
            case 0xF0: (0x90, 0xBF)
            case 0xF4: (0x80, 0x8F)
            default: (0x80, 0xBF)
            }
          guard second >= low && second <= high else { return 0 }
        }
        return back
      }
      back += 1
    }
    return 0
  }
}
