/// How text is split into the pieces BPE encodes separately. Each case is one of the regexes of
/// byte-level BPE tokenizers, written as a scanner over Unicode scalars instead of a regex engine:
/// at each position the alternatives are tried in order (leftmost-first, greedy with the
/// backtracking the regex would do), and they cover every character, so the pieces tile the text.
/// Cost: one classification per scalar (a table for ASCII, the general category otherwise).
public enum PreTokenizer: String, Sendable, CaseIterable {
  /// Qwen2/Qwen3 (`tokenizer.json` Split with `qwen2Pattern`, behaviour Isolated).
  case qwen2
  /// Llama 3: as Qwen2 but digits in runs of up to three.
  case llama3
  /// GPT-2's byte-level regex (`ByteLevel` with `use_regex`).
  case gpt2
  /// SmolLM: every digit split off first (`Digits` with `individual_digits`), then GPT-2's regex.
  case smollm

  public static let qwen2Pattern =
    #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
  public static let llama3Pattern =
    #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
  public static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

  /// The pre-tokenizer of a GGUF file's `tokenizer.ggml.pre` name, or nil.
  public static func fromGGUFName(_ name: String) -> PreTokenizer? {
    switch name {
    case "qwen2", "deepseek-r1-qwen": .qwen2
    case "llama3", "llama-v3", "llama-bpe": .llama3
    case "gpt2", "default": .gpt2
    case "smollm": .smollm
    default: nil
    }
  }

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

  /// Appends the pieces of `scalars` (index ranges, in order) to `pieces`.
  func split(_ scalars: [Unicode.Scalar], into pieces: inout [Range<Int>]) {
    var classes = [Class]()
    classes.reserveCapacity(scalars.count)
    for scalar in scalars { classes.append(Self.classOf(scalar)) }
    switch self {
    case .qwen2: Self.splitQwen(scalars, classes, 0..<scalars.count, digitRun: 1, into: &pieces)
    case .llama3: Self.splitQwen(scalars, classes, 0..<scalars.count, digitRun: 3, into: &pieces)
    case .gpt2: Self.splitGPT2(scalars, classes, 0..<scalars.count, into: &pieces)
    case .smollm:
      // Digits first: each digit is a piece; GPT-2's regex splits the text between them.
      var start = 0
      for i in 0..<scalars.count where classes[i] == .number {
        Self.splitGPT2(scalars, classes, start..<i, into: &pieces)
        pieces.append(i..<(i + 1))
        start = i + 1
      }
      Self.splitGPT2(scalars, classes, start..<scalars.count, into: &pieces)
    }
  }

  @inline(__always)
  static func isWhitespace(_ c: Class) -> Bool { c == .newline || c == .space || c == .otherWhitespace }

  /// `\s+(?!\S)|\s+` (and, with `newlines`, `\s*[\r\n]+` first) at `i`, a whitespace character:
  /// the end of the piece.
  @inline(__always)
  static func whitespaceEnd(_ classes: [Class], _ i: Int, _ end: Int, newlines: Bool) -> Int {
    var runEnd = i
    var lastNewline = -1
    while runEnd < end && isWhitespace(classes[runEnd]) {
      if classes[runEnd] == .newline { lastNewline = runEnd }
      runEnd += 1
    }
    // \s*[\r\n]+ : up to and including the run's last newline.
    if newlines && lastNewline >= 0 { return lastNewline + 1 }
    // \s+(?!\S) takes the whole run at the end of the text, else all but its last character
    // (which leads the next piece); \s+ takes a single whitespace before a non-space.
    if runEnd == end || runEnd - i == 1 { return runEnd }
    return runEnd - 1
  }

  /// Qwen2's regex (digit runs of 1) or Llama 3's (of up to 3) over `range`.
  static func splitQwen(
    _ scalars: [Unicode.Scalar], _ classes: [Class], _ range: Range<Int>, digitRun: Int,
    into pieces: inout [Range<Int>]
  ) {
    let count = range.upperBound
    var i = range.lowerBound
    while i < count {
      let start = i
      // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
      if scalars[i] == "'", let length = contraction(scalars, after: i, end: count, foldCase: true) {
        i += 1 + length
      } else if classes[i] == .letter
        || (classes[i] != .newline && classes[i] != .number && i + 1 < count && classes[i + 1] == .letter)
      {
        // 2. [^\r\n\p{L}\p{N}]?\p{L}+
        i += 1
        while i < count && classes[i] == .letter { i += 1 }
      } else if classes[i] == .number {
        // 3. \p{N} or \p{N}{1,3}
        i += 1
        while i < count && i - start < digitRun && classes[i] == .number { i += 1 }
      } else if classes[i] == .symbol || (classes[i] == .space && i + 1 < count && classes[i + 1] == .symbol) {
        // 4. ' '?[^\s\p{L}\p{N}]+[\r\n]*
        i += classes[i] == .space ? 1 : 0
        while i < count && classes[i] == .symbol { i += 1 }
        while i < count && classes[i] == .newline { i += 1 }
      } else {
        // 5–7. Whitespace.
        i = whitespaceEnd(classes, i, count, newlines: true)
      }
      pieces.append(start..<i)
    }
  }

  /// GPT-2's regex over `range`.
  static func splitGPT2(
    _ scalars: [Unicode.Scalar], _ classes: [Class], _ range: Range<Int>, into pieces: inout [Range<Int>]
  ) {
    let count = range.upperBound
    var i = range.lowerBound
    while i < count {
      let start = i
      let afterSpace = classes[i] == .space && i + 1 < count ? classes[i + 1] : nil
      if scalars[i] == "'", let length = contraction(scalars, after: i, end: count, foldCase: false) {
        // 's|'t|'re|'ve|'m|'ll|'d (lowercase only)
        i += 1 + length
      } else if classes[i] == .letter || afterSpace == .letter {
        // ' '?\p{L}+
        i += classes[i] == .space ? 1 : 0
        while i < count && classes[i] == .letter { i += 1 }
      } else if classes[i] == .number || afterSpace == .number {
        // ' '?\p{N}+
        i += classes[i] == .space ? 1 : 0
        while i < count && classes[i] == .number { i += 1 }
      } else if classes[i] == .symbol || afterSpace == .symbol {
        // ' '?[^\s\p{L}\p{N}]+
        i += classes[i] == .space ? 1 : 0
        while i < count && classes[i] == .symbol { i += 1 }
      } else {
        // \s+(?!\S)|\s+
        i = whitespaceEnd(classes, i, count, newlines: false)
      }
      pieces.append(start..<i)
    }
  }

  /// Length of a contraction suffix (`s`, `t`, `re`, `ve`, `m`, `ll`, `d`) after the apostrophe at
  /// `index`, or nil. With `foldCase`, any case (as the regex's `(?i:…)`; ſ folds to s).
  @inline(__always)
  static func contraction(_ scalars: [Unicode.Scalar], after index: Int, end: Int, foldCase: Bool) -> Int? {
    func at(_ offset: Int) -> Unicode.Scalar? {
      let position = index + offset
      guard position < end else { return nil }
      let scalar = scalars[position]
      guard foldCase else { return scalar }
      switch scalar.value {
      case 0x41...0x5A: return Unicode.Scalar(scalar.value + 32)
      case 0x17F: return "s"
      default: return scalar
      }
    }
    switch at(1) {
    case "s", "t", "m", "d": return 1
    case "r", "v": return at(2) == "e" ? 2 : nil
    case "l": return at(2) == "l" ? 2 : nil
    default: return nil
    }
  }
}
