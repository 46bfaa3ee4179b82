import Foundation

/// A value inside a chat template, with Python's semantics as Jinja gives them: strings are
/// sequences of code points, `none` prints as "None", a missing key is `undefined`.
indirect enum JinjaValue {
  /// A name or key that does not exist; prints as "", is falsy, iterates as empty. The text names
  /// what was looked up, for the error when it is used as a value.
  case undefined(String)
  case none
  case bool(Bool)
  case int(Int)
  case double(Double)
  case string(String)
  case array([JinjaValue])
  /// A tuple: a list that prints with parentheses and never equals a list.
  case tuple([JinjaValue])
  case dictionary(JinjaDictionary)
  case namespace(JinjaNamespace)
  case callable(JinjaCallable)

  /// The items of a list or tuple.
  var elements: [JinjaValue]? {
    switch self {
    case .array(let items), .tuple(let items): items
    default: nil
    }
  }

  var isUndefined: Bool {
    if case .undefined = self { return true }
    return false
  }

  var isTruthy: Bool {
    switch self {
    case .undefined, .none: false
    case .bool(let value): value
    case .int(let value): value != 0
    case .double(let value): value != 0
    case .string(let value): !value.isEmpty
    case .array(let items), .tuple(let items): !items.isEmpty
    case .dictionary(let dictionary): !dictionary.keys.isEmpty
    case .namespace, .callable: true
    }
  }

  var typeName: String {
    switch self {
    case .undefined: "undefined"
    case .none: "NoneType"
    case .bool: "bool"
    case .int: "int"
    case .double: "float"
    case .string: "str"
    case .array: "list"
    case .tuple: "tuple"
    case .dictionary: "dict"
    case .namespace: "Namespace"
    case .callable: "function"
    }
  }

  /// Python's `str()`.
  var text: String {
    switch self {
    case .undefined: ""
    case .string(let value): value
    default: repr
    }
  }

  /// Python's `repr()`.
  var repr: String { repr(printing: []) }

  /// `repr`, with the namespaces being printed: one met again prints as `<Namespace {...}>`, as
  /// Python prints a dictionary that holds itself.
  private func repr(printing: Set<ObjectIdentifier>) -> String {
    switch self {
    case .undefined: ""
    case .none: "None"
    case .bool(let value): value ? "True" : "False"
    case .int(let value): String(value)
    case .double(let value): JinjaValue.pythonFloat(value)
    case .string(let value): JinjaValue.pythonQuoted(value)
    case .array(let items): "[" + items.map { $0.repr(printing: printing) }.joined(separator: ", ") + "]"
    case .tuple(let items): "(" + items.map { $0.repr(printing: printing) }.joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
    case .dictionary(let dictionary):
      "{" + dictionary.pairs.map { JinjaValue.pythonQuoted($0.0) + ": " + $0.1.repr(printing: printing) }.joined(separator: ", ") + "}"
    case .namespace(let namespace):
      printing.contains(ObjectIdentifier(namespace))
        ? "<Namespace {...}>"
        : "<Namespace {" + namespace.attributes.pairs.map {
          JinjaValue.pythonQuoted($0.0) + ": " + $0.1.repr(printing: printing.union([ObjectIdentifier(namespace)]))
        }.joined(separator: ", ") + "}>"
    case .callable(let callable): "<function \(callable.name)>"
    }
  }

  /// Python's float repr (Swift's description matches it: shortest round-trip digits, ".0" on
  /// integral values, a signed two-digit exponent from 1e16 and below 1e-4).
  static func pythonFloat(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    // Swift switches to exponent form at 2^53, Python at 1e16; between them values are integers.
    if value.magnitude >= 9_007_199_254_740_992, value.magnitude < 1e16 { return String(format: "%.1f", value) }
    return "\(value)"
  }

  /// A value's nesting (lists, tuples, dictionaries), checked only up to `limit`.
  func isShallower(than limit: Int) -> Bool {
    guard limit > 0 else { return false }
    switch self {
    case .array(let items), .tuple(let items): return items.allSatisfy { $0.isShallower(than: limit - 1) }
    case .dictionary(let dictionary): return dictionary.pairs.allSatisfy { $0.1.isShallower(than: limit - 1) }
    default: return true
    }
  }

  /// Python's `repr` of a string: single quotes unless the text has one and no double quote.
  static func pythonQuoted(_ value: String) -> String {
    let quote: Character = value.contains("'") && !value.contains("\"") ? "\"" : "'"
    var out = String(quote)
    for scalar in value.unicodeScalars {
      switch scalar {
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if Character(scalar) == quote {
          out += "\\" + String(quote)
        } else if !isPrintable(scalar) {
          out += scalar.value < 0x100
            ? String(format: "\\x%02x", scalar.value)
            : scalar.value < 0x10000 ? String(format: "\\u%04x", scalar.value) : String(format: "\\U%08x", scalar.value)
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + String(quote)
  }

  /// Python's `str.isprintable` for one character: not a control, format, surrogate, private-use
  /// or unassigned code point, nor a separator other than the space.
  static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator: false
    case .spaceSeparator: scalar == " "
    default: true
    }
  }
}

/// A dictionary that keeps insertion order, as Python's does (`tojson` and `items` show it).
struct JinjaDictionary {
  private(set) var keys: [String] = []
  private(set) var values: [String: JinjaValue] = [:]

  init() {}

  init(_ pairs: [(String, JinjaValue)]) {
    for (key, value) in pairs { self[key] = value }
  }

  subscript(key: String) -> JinjaValue? {
    get { values[key] }
    set {
      if let newValue {
        if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
      } else if values.removeValue(forKey: key) != nil {
        keys.removeAll { $0 == key }
      }
    }
  }

  var pairs: [(String, JinjaValue)] { keys.map { ($0, values[$0] ?? .none) } }
}

/// `namespace(...)`: the one mutable object a template can make (a reference, so `set ns.x`
/// inside a loop is seen after it).
final class JinjaNamespace {
  var attributes: JinjaDictionary

  init(_ attributes: JinjaDictionary) { self.attributes = attributes }
}

/// A function a template can call: a global (`range`, `namespace`, `raise_exception`), a bound
/// method (`text.split`), or a macro.
struct JinjaCallable {
  let name: String
  let call: (_ arguments: JinjaArguments) throws -> JinjaValue
}

/// Positional and keyword arguments of a call.
struct JinjaArguments {
  var positional: [JinjaValue]
  var keywords: [(String, JinjaValue)]

  init(_ positional: [JinjaValue] = [], keywords: [(String, JinjaValue)] = []) {
    self.positional = positional
    self.keywords = keywords
  }

  /// The argument at `index` or named `name`, or nil when neither is given.
  func value(_ index: Int, _ name: String) -> JinjaValue? {
    if let keyword = keywords.first(where: { $0.0 == name }) { return keyword.1 }
    return index < positional.count ? positional[index] : nil
  }

  /// Fails on more positional arguments than `names`, or on a keyword not in `names`.
  func check(_ function: String, accepts names: [String]) throws {
    if positional.count > names.count {
      throw JinjaFailure("\(function)() takes at most \(names.count) argument\(names.count == 1 ? "" : "s") (\(positional.count) given)")
    }
    for (name, _) in keywords where !names.contains(name) {
      throw JinjaFailure("\(function)() got an unexpected keyword argument '\(name)'")
    }
  }
}

/// An error while rendering, before it is given the template's name and position.
struct JinjaFailure: Error {
  var message: String
  /// True for `raise_exception(...)`: the template refused the conversation.
  var raised = false

  init(_ message: String, raised: Bool = false) {
    self.message = message
    self.raised = raised
  }
}
