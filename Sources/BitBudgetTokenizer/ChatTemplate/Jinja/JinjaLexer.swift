/// A token of a template: literal text between tags, tag delimiters, and the expression tokens
/// inside tags. `offset` is the code-point offset in the (newline-normalized) source, for errors.
struct JinjaToken {
  enum Kind: Equatable {
    case text(String)
    case variableBegin, variableEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case symbol(String)
  }

  var kind: Kind
  var offset: Int
}

/// Splits a template into tokens as Jinja does with the environment transformers renders chat
/// templates in: `trim_blocks` (the newline after a block or comment tag is dropped),
/// `lstrip_blocks` (spaces and tabs before a block or comment tag on its own line are dropped),
/// `{%-`/`-%}` strip all whitespace on that side, `{%+`/`+%}` turn the two options off, newlines
/// are normalized to "\n" and one trailing newline of the template is dropped.
struct JinjaLexer {
  private let source: [Unicode.Scalar]
  private var position = 0
  private var tokens: [JinjaToken] = []

  init(_ template: String) {
    var scalars: [Unicode.Scalar] = []
    scalars.reserveCapacity(template.unicodeScalars.count)
    var iterator = template.unicodeScalars.makeIterator()
    var pending = iterator.next()
    while let scalar = pending {
      pending = iterator.next()
      if scalar == "\r" {
        scalars.append("\n")
        if pending == "\n" { pending = iterator.next() }
      } else {
        scalars.append(scalar)
      }
    }
    if scalars.last == "\n" { scalars.removeLast() }
    source = scalars
  }

  /// The normalized source (offsets in tokens and errors index it).
  var scalars: [Unicode.Scalar] { source }

  static func tokenize(_ template: String) throws(JinjaSyntaxError) -> (tokens: [JinjaToken], source: [Unicode.Scalar]) {
    var lexer = JinjaLexer(template)
    try lexer.run()
    return (lexer.tokens, lexer.source)
  }

  private func at(_ index: Int) -> Unicode.Scalar? { index < source.count ? source[index] : nil }

  private func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
  }

  private mutating func run() throws(JinjaSyntaxError) {
    var lineStarting = true
    while position < source.count {
      // The next tag opening.
      var tagStart = position
      var opener: Unicode.Scalar?
      while tagStart + 1 < source.count {
        if source[tagStart] == "{", let next = at(tagStart + 1), next == "{" || next == "%" || next == "#" {
          opener = next
          break
        }
        tagStart += 1
      }
      guard let opener else {
        emitText(position..<source.count)
        return
      }
      let sign = at(tagStart + 2)
      var textEnd = tagStart
      if sign == "-" {
        while textEnd > position && isWhitespace(source[textEnd - 1]) { textEnd -= 1 }
      } else if sign != "+" && opener != "{" {
        // lstrip_blocks: only spaces and tabs between the line's start and the tag.
        var lineStart = textEnd
        while lineStart > position && source[lineStart - 1] != "\n" { lineStart -= 1 }
        if (lineStart > position || lineStarting) && lineStart < textEnd
          && source[lineStart..<textEnd].allSatisfy({ isWhitespace($0) })
        {
          textEnd = lineStart
        }
      }
      emitText(position..<textEnd)
      position = tagStart + 2 + (sign == "-" || sign == "+" ? 1 : 0)
      switch opener {
      case "#":
        try skipComment(from: tagStart)
      case "{":
        tokens.append(JinjaToken(kind: .variableBegin, offset: tagStart))
        try tokenizeTag(closing: "}", from: tagStart)
      default:
        if let rawEnd = try rawBlock(from: tagStart) {
          position = rawEnd
        } else {
          tokens.append(JinjaToken(kind: .blockBegin, offset: tagStart))
          try tokenizeTag(closing: "%", from: tagStart)
        }
      }
      lineStarting = position > 0 && source[position - 1] == "\n"
    }
  }

  private mutating func emitText(_ range: Range<Int>) {
    guard !range.isEmpty else { return }
    var view = String.UnicodeScalarView()
    view.append(contentsOf: source[range])
    tokens.append(JinjaToken(kind: .text(String(view)), offset: range.lowerBound))
  }

  /// After a tag's closing delimiter at `closeEnd` (just past `}}`, `%}` or `#}`) with the sign
  /// before it: `-` strips the following whitespace, a block or comment drops one newline.
  private mutating func finishTag(at closeEnd: Int, sign: Unicode.Scalar?, isBlock: Bool) {
    position = closeEnd
    if sign == "-" {
      while let scalar = at(position), isWhitespace(scalar) { position += 1 }
    } else if isBlock && sign != "+" && at(position) == "\n" {
      position += 1
    }
  }

  private mutating func skipComment(from start: Int) throws(JinjaSyntaxError) {
    var index = position
    while index + 1 < source.count {
      if source[index] == "#" && source[index + 1] == "}" {
        let sign = index > position ? source[index - 1] : nil
        finishTag(at: index + 2, sign: sign == "-" || sign == "+" ? sign : nil, isBlock: true)
        return
      }
      index += 1
    }
    throw JinjaSyntaxError(offset: start, message: "comment not closed with #}")
  }

  /// `{% raw %}…{% endraw %}`: the text in between, verbatim. Returns the position after it, or
  /// nil when the tag is not `raw`.
  private mutating func rawBlock(from start: Int) throws(JinjaSyntaxError) -> Int? {
    func word(at index: Int) -> (String, Int) {
      var index = index
      while let scalar = at(index), scalar == " " || scalar == "\t" || scalar == "\n" { index += 1 }
      var name = ""
      while let scalar = at(index), scalar.properties.isAlphabetic { name.unicodeScalars.append(scalar); index += 1 }
      return (name, index)
    }
    let (name, afterName) = word(at: position)
    guard name == "raw" else { return nil }
    func close(at index: Int) -> (end: Int, sign: Unicode.Scalar?)? {
      var index = index
      while let scalar = at(index), scalar == " " || scalar == "\t" || scalar == "\n" { index += 1 }
      var sign: Unicode.Scalar?
      if at(index) == "-" || at(index) == "+" { sign = at(index); index += 1 }
      return at(index) == "%" && at(index + 1) == "}" ? (index + 2, sign) : nil
    }
    guard let opening = close(at: afterName) else { return nil }
    // The opening tag strips with `-%}` but, unlike other blocks, drops no newline (Jinja's raw
    // rule has no trim_blocks suffix).
    var index = opening.end
    if opening.sign == "-" { while let scalar = at(index), isWhitespace(scalar) { index += 1 } }
    let bodyStart = index
    while index + 1 < source.count {
      if source[index] == "{" && source[index + 1] == "%" {
        var inner = index + 2
        let innerSign = at(inner)
        if innerSign == "-" || innerSign == "+" { inner += 1 }
        let (endName, afterEnd) = word(at: inner)
        if endName == "endraw", let closing = close(at: afterEnd) {
          var bodyEnd = index
          if innerSign == "-" {
            while bodyEnd > bodyStart && isWhitespace(source[bodyEnd - 1]) { bodyEnd -= 1 }
          } else if innerSign != "+" {
            // lstrip_blocks before `{% endraw %}`.
            var lineStart = bodyEnd
            while lineStart > bodyStart && source[lineStart - 1] != "\n" { lineStart -= 1 }
            if lineStart > bodyStart || (lineStart > 0 && source[lineStart - 1] == "\n") {
              if source[lineStart..<bodyEnd].allSatisfy({ $0 == " " || $0 == "\t" }) { bodyEnd = lineStart }
            }
          }
          emitText(bodyStart..<bodyEnd)
          finishTag(at: closing.end, sign: closing.sign, isBlock: true)
          return position
        }
      }
      index += 1
    }
    throw JinjaSyntaxError(offset: start, message: "{% raw %} without {% endraw %}")
  }

  private static let symbols: [String] = [
    "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|", "(", ")",
    "[", "]", "{", "}",
  ]

  /// Expression tokens up to the tag's closing `}}` or `%}` (a `}` inside brackets is a symbol).
  private mutating func tokenizeTag(closing: Unicode.Scalar, from start: Int) throws(JinjaSyntaxError) {
    var depth = 0
    while true {
      while let scalar = at(position), isWhitespace(scalar) { position += 1 }
      guard let scalar = at(position) else {
        throw JinjaSyntaxError(offset: start, message: closing == "}" ? "{{ not closed with }}" : "{% not closed with %}")
      }
      // The closing delimiter, with an optional whitespace-control sign.
      if depth == 0 {
        var index = position
        var sign: Unicode.Scalar?
        if scalar == "-" || scalar == "+" { sign = scalar; index += 1 }
        if at(index) == closing && at(index + 1) == "}" && (sign != "+" || closing == "%") {
          tokens.append(JinjaToken(kind: closing == "}" ? .variableEnd : .blockEnd, offset: position))
          finishTag(at: index + 2, sign: sign, isBlock: closing == "%")
          return
        }
      }
      let tokenStart = position
      if scalar == "_" || scalar.properties.isAlphabetic {
        var name = ""
        while let next = at(position), next == "_" || next.properties.isAlphabetic || ("0"..."9").contains(next) {
          name.unicodeScalars.append(next)
          position += 1
        }
        tokens.append(JinjaToken(kind: .name(name), offset: tokenStart))
      } else if ("0"..."9").contains(scalar) {
        tokens.append(JinjaToken(kind: try number(), offset: tokenStart))
      } else if scalar == "'" || scalar == "\"" {
        tokens.append(JinjaToken(kind: .string(try stringLiteral()), offset: tokenStart))
      } else if let symbol = JinjaLexer.symbols.first(where: { matches($0) }) {
        position += symbol.unicodeScalars.count
        if symbol == "(" || symbol == "[" || symbol == "{" { depth += 1 }
        if symbol == ")" || symbol == "]" || symbol == "}" { depth -= 1 }
        tokens.append(JinjaToken(kind: .symbol(symbol), offset: tokenStart))
      } else {
        throw JinjaSyntaxError(offset: position, message: "unexpected character '\(scalar.escaped(asASCII: false))'")
      }
    }
  }

  private func matches(_ text: String) -> Bool {
    var index = position
    for scalar in text.unicodeScalars {
      guard at(index) == scalar else { return false }
      index += 1
    }
    return true
  }

  private mutating func number() throws(JinjaSyntaxError) -> JinjaToken.Kind {
    let start = position
    var digits = ""
    var isFloat = false
    func take(_ allowed: (Unicode.Scalar) -> Bool) {
      while let scalar = at(position), allowed(scalar) {
        if scalar != "_" { digits.unicodeScalars.append(scalar) }
        position += 1
      }
    }
    let isDigit: (Unicode.Scalar) -> Bool = { ("0"..."9").contains($0) || $0 == "_" }
    take(isDigit)
    if at(position) == ".", let next = at(position + 1), ("0"..."9").contains(next) {
      isFloat = true
      digits += "."
      position += 1
      take(isDigit)
    }
    if at(position) == "e" || at(position) == "E" {
      var index = position + 1
      if at(index) == "+" || at(index) == "-" { index += 1 }
      if let next = at(index), ("0"..."9").contains(next) {
        isFloat = true
        digits += "e" + (at(position + 1) == "-" ? "-" : "")
        position = index
        take(isDigit)
      }
    }
    if isFloat, let value = Double(digits) { return .float(value) }
    if !isFloat, let value = Int(digits) { return .integer(value) }
    throw JinjaSyntaxError(offset: start, message: "number \(digits) out of range")
  }

  /// A quoted string with Python's escapes (`\n`, `\t`, `\\`, `\'`, `\xNN`, `\uNNNN`, …; an
  /// unknown escape keeps its backslash, as Python's `unicode-escape` does).
  private mutating func stringLiteral() throws(JinjaSyntaxError) -> String {
    let start = position
    let quote = source[position]
    position += 1
    var value = String.UnicodeScalarView()
    while let scalar = at(position) {
      position += 1
      if scalar == quote { return String(value) }
      guard scalar == "\\" else {
        value.append(scalar)
        continue
      }
      guard let escaped = at(position) else { break }
      position += 1
      switch escaped {
      case "n": value.append("\n")
      case "t": value.append("\t")
      case "r": value.append("\r")
      case "\\": value.append("\\")
      case "'": value.append("'")
      case "\"": value.append("\"")
      case "a": value.append("\u{07}")
      case "b": value.append("\u{08}")
      case "f": value.append("\u{0C}")
      case "v": value.append("\u{0B}")
      case "\n": break
      case "0"..."7":
        var code = escaped.value - 48
        var count = 1
        while count < 3, let next = at(position), ("0"..."7").contains(next) {
          code = code * 8 + next.value - 48
          position += 1
          count += 1
        }
        guard let decoded = Unicode.Scalar(code) else { throw JinjaSyntaxError(offset: position, message: "bad octal escape") }
        value.append(decoded)
      case "x", "u", "U":
        let length = escaped == "x" ? 2 : escaped == "u" ? 4 : 8
        var code: UInt32 = 0
        for _ in 0..<length {
          guard let next = at(position), let digit = UInt32(String(next), radix: 16) else {
            throw JinjaSyntaxError(offset: position, message: "truncated \\\(escaped) escape")
          }
          code = code * 16 + digit
          position += 1
        }
        guard let decoded = Unicode.Scalar(code) else { throw JinjaSyntaxError(offset: position, message: "\\\(escaped) escape is not a code point") }
        value.append(decoded)
      default:
        value.append("\\")
        value.append(escaped)
      }
    }
    throw JinjaSyntaxError(offset: start, message: "string literal not closed")
  }
}

/// A template that cannot be parsed, at a code-point offset of the normalized source.
struct JinjaSyntaxError: Error {
  var offset: Int
  var message: String
}
