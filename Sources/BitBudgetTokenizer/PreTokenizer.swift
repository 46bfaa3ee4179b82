/// Splits text into the pieces BPE encodes separately, exactly as the Qwen2/Qwen3 pre-tokenizer
/// regex does (`tokenizer.json` `Split` with behavior `Isolated`):
///
///     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
///
/// Written as a scanner over Unicode scalars instead of a regex engine: each alternative is tried
/// in order at each position (leftmost-first, greedy with the backtracking the regex would do), and
/// the alternatives cover every character, so the pieces tile the text. Cost: one classification
/// per scalar (a table for ASCII, the Unicode general category otherwise).
enum QwenPreTokenizer {
  /// The regex this scanner implements, as `tokenizer.json` spells it.
  static let pattern =
    #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

  enum Class: UInt8 {
    case letter, number, newline, space, otherWhitespace, symbol
  }

  static let asciiClasses: [Class] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

  @inline(__always)
  static func classOf(_ scalar: Unicode.Scalar) -> Class {
    scalar.value < 128 ? asciiClasses[Int(scalar.value)] : classify(scalar)
  }

  static func classify(_ scalar: Unicode.Scalar) -> Class {
    switch scalar {
    case "\r", "\n": return .newline
    case " ": return .space
    default: break
    }
    let properties = scalar.properties
    if properties.isWhitespace { return .otherWhitespace }
    switch properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
      return .letter
    case .decimalNumber, .letterNumber, .otherNumber:
      return .number
    default:
      return .symbol
    }
  }

  /// The pieces of `text` as index ranges of its Unicode scalars, in order.
  static func split(_ scalars: [Unicode.Scalar], into pieces: inout [Range<Int>]) {
    let count = scalars.count
    var classes = [Class]()
    classes.reserveCapacity(count)
    for scalar in scalars { classes.append(classOf(scalar)) }
    @inline(__always) func isWhitespace(_ c: Class) -> Bool {
      c == .newline || c == .space || c == .otherWhitespace
    }
    var i = 0
    while i < count {
      let start = i
      var end = i
      defer { pieces.append(start..<end) }
      // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
      if scalars[i] == "'", let length = contraction(scalars, after: i) {
        end = i + 1 + length
        i = end
        continue
      }
      let c = classes[i]
      // 2. [^\r\n\p{L}\p{N}]?\p{L}+
      if c == .letter || (c != .newline && c != .number && i + 1 < count && classes[i + 1] == .letter) {
        end = i + 1
        while end < count && classes[end] == .letter { end += 1 }
        i = end
        continue
      }
      // 3. \p{N}
      if c == .number {
        end = i + 1
        i = end
        continue
      }
      // 4. ' '?[^\s\p{L}\p{N}]+[\r\n]*
      let symbolStart = c == .space && i + 1 < count && classes[i + 1] == .symbol ? i + 1 : i
      if classes[symbolStart] == .symbol {
        end = symbolStart
        while end < count && classes[end] == .symbol { end += 1 }
        while end < count && classes[end] == .newline { end += 1 }
        i = end
        continue
      }
      // Whitespace from here on: W = the maximal whitespace run at i.
      var runEnd = i
      var lastNewline = -1
      while runEnd < count && isWhitespace(classes[runEnd]) {
        if classes[runEnd] == .newline { lastNewline = runEnd }
        runEnd += 1
      }
      // 5. \s*[\r\n]+ : up to and including the run's last newline.
      if lastNewline >= 0 {
        end = lastNewline + 1
      } else if runEnd == count || runEnd - i == 1 {
        // 6. \s+(?!\S) matches the whole run at the end of the text; 7. \s+ a single space
        // before a non-space.
        end = runEnd
      } else {
        // 6. \s+(?!\S): all but the last whitespace, which then leads the next piece.
        end = runEnd - 1
      }
      i = end
    }
  }

  /// Length of a contraction suffix (`s`, `t`, `re`, `ve`, `m`, `ll`, `d`, any case) after the
  /// apostrophe at `index`, or nil.
  @inline(__always)
  static func contraction(_ scalars: [Unicode.Scalar], after index: Int) -> Int? {
    func folded(_ offset: Int) -> Unicode.Scalar? {
      let at = index + offset
      guard at < scalars.count else { return nil }
      let scalar = scalars[at]
      switch scalar.value {
      case 0x41...0x5A: return Unicode.Scalar(scalar.value + 32)
      case 0x17F: return "s"  // ſ folds to s
      case 0x212A: return "k"  // Kelvin sign folds to k
      default: return scalar
      }
    }
    switch folded(1) {
    case "s", "t", "m", "d": return 1
    case "r", "v": return folded(2) == "e" ? 2 : nil
    case "l": return folded(2) == "l" ? 2 : nil
    default: return nil
    }
  }
}
