import Foundation

/// JSON in and out of template values, keeping the order of object keys (Foundation's parser
/// does not, and `tojson` of a tool definition shows it).
enum JinjaJSON {
  /// `json.dumps` options, as transformers' `tojson` filter passes them.
  struct Options {
    var indent: String?
    var itemSeparator: String
    var keySeparator: String
    var sortKeys = false
    var ensureASCII = false

    init() {
      itemSeparator = ", "
      keySeparator = ": "
    }

    init(_ arguments: JinjaArguments) throws {
      self.init()
      if let flag = arguments.value(0, "ensure_ascii") { ensureASCII = flag.isTruthy }
      switch arguments.value(1, "indent") {
      case nil, .none?: break
      case .int(let width)?: indent = String(repeating: " ", count: min(max(width, 0), 1_000))
      case .string(let text)?: indent = text
      case let other?: throw JinjaFailure("tojson indent must be an int or a string, not \(other.typeName)")
      }
      if indent != nil { itemSeparator = "," }
      if let separators = arguments.value(2, "separators"), !(separators.isUndefined) {
        if case .none = separators {
        } else {
          guard let pair = separators.elements, pair.count == 2, case .string(let item) = pair[0], case .string(let key) = pair[1]
          else { throw JinjaFailure("tojson separators must be a pair of strings") }
          itemSeparator = item
          keySeparator = key
        }
      }
      if let flag = arguments.value(3, "sort_keys") { sortKeys = flag.isTruthy }
    }
  }

  static func dump(_ value: JinjaValue, options: Options = Options()) throws -> String {
    var output = ""
    try write(value, options: options, depth: 0, into: &output)
    return output
  }

  private static func write(_ value: JinjaValue, options: Options, depth: Int, into output: inout String) throws {
    guard depth < 512 else { throw JinjaFailure("tojson: nesting too deep") }
    func newline(_ level: Int) {
      if let indent = options.indent { output += "\n" + String(repeating: indent, count: level) }
    }
    switch value {
    case .undefined(let what): throw JinjaFailure("Object of type Undefined is not JSON serializable ('\(what)')")
    case .none: output += "null"
    case .bool(let flag): output += flag ? "true" : "false"
    case .int(let number): output += String(number)
    case .double(let number):
      output += number.isNaN ? "NaN" : number.isInfinite ? (number < 0 ? "-Infinity" : "Infinity") : JinjaValue.pythonFloat(number)
    case .string(let text): output += quoted(text, ensureASCII: options.ensureASCII)
    case .array(let items), .tuple(let items):
      guard !items.isEmpty else { output += "[]"; return }
      output += "["
      for (position, item) in items.enumerated() {
        if position > 0 { output += options.itemSeparator }
        newline(depth + 1)
        try write(item, options: options, depth: depth + 1, into: &output)
      }
      newline(depth)
      output += "]"
    case .dictionary(let dictionary):
      try writeObject(dictionary.pairs, options: options, depth: depth, into: &output)
    case .namespace(let namespace):
      throw JinjaFailure("Object of type Namespace is not JSON serializable (\(namespace.attributes.keys.count) attributes)")
    case .callable(let callable):
      throw JinjaFailure("Object of type function is not JSON serializable ('\(callable.name)')")
    }
  }

  private static func writeObject(_ pairs: [(String, JinjaValue)], options: Options, depth: Int, into output: inout String) throws {
    guard !pairs.isEmpty else { output += "{}"; return }
    let ordered = options.sortKeys ? pairs.sorted { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) { $0.value < $1.value } } : pairs
    output += "{"
    for (position, (key, item)) in ordered.enumerated() {
      if position > 0 { output += options.itemSeparator }
      if let indent = options.indent { output += "\n" + String(repeating: indent, count: depth + 1) }
      output += quoted(key, ensureASCII: options.ensureASCII) + options.keySeparator
      try write(item, options: options, depth: depth + 1, into: &output)
    }
    if let indent = options.indent { output += "\n" + String(repeating: indent, count: depth) }
    output += "}"
  }

  /// A JSON string as Python's `json.dumps` writes it.
  static func quoted(_ text: String, ensureASCII: Bool) -> String {
    var output = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": output += "\\\""
      case "\\": output += "\\\\"
      case "\n": output += "\\n"
      case "\r": output += "\\r"
      case "\t": output += "\\t"
      case "\u{08}": output += "\\b"
      case "\u{0C}": output += "\\f"
      default:
        if scalar.value < 0x20 || (ensureASCII && scalar.value > 0x7E) {
          if scalar.value > 0xFFFF {
            let value = scalar.value - 0x10000
            output += String(format: "\\u%04x\\u%04x", 0xD800 + (value >> 10), 0xDC00 + (value & 0x3FF))
          } else {
            output += String(format: "\\u%04x", scalar.value)
          }
        } else {
          output.unicodeScalars.append(scalar)
        }
      }
    }
    return output + "\""
  }

  // MARK: Parsing

  /// Parses JSON text (objects keep their key order; integers stay integers).
  static func parse(_ text: String) throws(JinjaFailure) -> JinjaValue {
    var parser = Parser(scalars: Array(text.unicodeScalars))
    parser.skipWhitespace()
    let value = try parser.value(depth: 0)
    parser.skipWhitespace()
    guard parser.position == parser.scalars.count else { throw parser.fail("unexpected text after the JSON value") }
    return value
  }

  private struct Parser {
    let scalars: [Unicode.Scalar]
    var position = 0

    func fail(_ message: String) -> JinjaFailure { JinjaFailure("JSON at character \(position): \(message)") }

    mutating func skipWhitespace() {
      while position < scalars.count, [" ", "\n", "\r", "\t"].contains(scalars[position]) { position += 1 }
    }

    mutating func literal(_ word: String, _ value: JinjaValue) throws(JinjaFailure) -> JinjaValue {
      for scalar in word.unicodeScalars {
        guard position < scalars.count, scalars[position] == scalar else { throw fail("invalid literal") }
        position += 1
      }
      return value
    }

    mutating func value(depth: Int) throws(JinjaFailure) -> JinjaValue {
      guard depth < 512 else { throw fail("nested too deep") }
      guard position < scalars.count else { throw fail("unexpected end") }
      switch scalars[position] {
      case "{":
        position += 1
        var dictionary = JinjaDictionary()
        skipWhitespace()
        if position < scalars.count, scalars[position] == "}" { position += 1; return .dictionary(dictionary) }
        while true {
          skipWhitespace()
          guard position < scalars.count, scalars[position] == "\"" else { throw fail("expected a string key") }
          let key = try string()
          skipWhitespace()
          guard position < scalars.count, scalars[position] == ":" else { throw fail("expected ':'") }
          position += 1
          skipWhitespace()
          dictionary[key] = try value(depth: depth + 1)
          skipWhitespace()
          guard position < scalars.count else { throw fail("unexpected end in an object") }
          if scalars[position] == "," { position += 1; continue }
          guard scalars[position] == "}" else { throw fail("expected ',' or '}'") }
          position += 1
          return .dictionary(dictionary)
        }
      case "[":
        position += 1
        var items: [JinjaValue] = []
        skipWhitespace()
        if position < scalars.count, scalars[position] == "]" { position += 1; return .array(items) }
        while true {
          skipWhitespace()
          items.append(try value(depth: depth + 1))
          skipWhitespace()
          guard position < scalars.count else { throw fail("unexpected end in an array") }
          if scalars[position] == "," { position += 1; continue }
          guard scalars[position] == "]" else { throw fail("expected ',' or ']'") }
          position += 1
          return .array(items)
        }
      case "\"": return .string(try string())
      case "t": return try literal("true", .bool(true))
      case "f": return try literal("false", .bool(false))
      case "n": return try literal("null", .none)
      default: return try number()
      }
    }

    mutating func number() throws(JinjaFailure) -> JinjaValue {
      let start = position
      var isFloat = false
      while position < scalars.count, "+-0123456789.eE".unicodeScalars.contains(scalars[position]) {
        if ".eE".unicodeScalars.contains(scalars[position]) { isFloat = true }
        position += 1
      }
      let text = CodePoints(scalars[start..<position]).string
      if !isFloat, let integer = Int(text) { return .int(integer) }
      guard !text.isEmpty, let double = Double(text) else { throw fail("invalid value") }
      return .double(double)
    }

    mutating func string() throws(JinjaFailure) -> String {
      position += 1
      var view = String.UnicodeScalarView()
      while position < scalars.count {
        let scalar = scalars[position]
        position += 1
        switch scalar {
        case "\"": return String(view)
        case "\\":
          guard position < scalars.count else { throw fail("unterminated escape") }
          let escaped = scalars[position]
          position += 1
          switch escaped {
          case "\"", "\\", "/": view.append(escaped)
          case "n": view.append("\n")
          case "t": view.append("\t")
          case "r": view.append("\r")
          case "b": view.append("\u{08}")
          case "f": view.append("\u{0C}")
          case "u":
            var code = try hex4()
            if (0xD800..<0xDC00).contains(code), position + 1 < scalars.count, scalars[position] == "\\", scalars[position + 1] == "u" {
              position += 2
              let low = try hex4()
              if (0xDC00..<0xE000).contains(low) { code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00) }
            }
            view.append(Unicode.Scalar(code) ?? "\u{FFFD}")
          default: throw fail("invalid escape")
          }
        default:
          view.append(scalar)
        }
      }
      throw fail("unterminated string")
    }

    mutating func hex4() throws(JinjaFailure) -> UInt32 {
      guard position + 4 <= scalars.count, let code = UInt32(CodePoints(scalars[position..<(position + 4)]).string, radix: 16) else {
        throw fail("invalid \\u escape")
      }
      position += 4
      return code
    }
  }
}
