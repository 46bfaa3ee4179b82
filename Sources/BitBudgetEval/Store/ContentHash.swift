/// FNV-1a over 64 bits: a stable fingerprint of text, the same on every platform and run (Swift's
/// `Hasher` is seeded per process). It identifies content; it does not authenticate it.
struct ContentHash {
  private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

  mutating func add(_ text: String) {
    for byte in text.utf8 {
      value ^= UInt64(byte)
      value = value &* 0x0000_0100_0000_01B3
    }
  }

  /// Adds `text` with its length in front, so that fields cannot run into each other
  /// (["ab", "c"] and ["a", "bc"] hash differently).
  mutating func addField(_ text: String) {
    add("\(text.utf8.count):")
    add(text)
  }

  /// 16 lowercase hex digits.
  var hex: String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
  }
}
