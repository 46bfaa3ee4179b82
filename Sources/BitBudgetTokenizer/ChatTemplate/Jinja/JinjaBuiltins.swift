import Foundation

/// Operators, attribute and item access, filters, tests and methods, with the semantics that
/// Python gives them under Jinja's sandbox (the environment transformers renders chat templates
/// in): a missing key or attribute is `undefined`, `a + b` needs matching types, string
/// operations work on code points.
enum JinjaBuiltins {
  /// Bounds what one operation may build (`'x' * n`, `range(n)`), so a hostile template fails
  /// instead of exhausting memory.
  static let maximumItems = 1 << 22
  /// Python's sandbox refuses ranges longer than this.
  static let maximumRange = 100_000

  /// Fails when a string or list built by an operation would exceed `maximumItems`.
  static func checkSize(_ count: Int, _ what: String) throws {
    if count > maximumItems { throw JinjaFailure("\(what) of \(count) items is too large (limit \(maximumItems))") }
  }

  // MARK: Access

  static func attribute(_ base: JinjaValue, _ name: String) throws -> JinjaValue {
    switch base {
    case .undefined(let what):
      throw JinjaFailure("'\(what)' is undefined (reading .\(name))")
    case .dictionary(let dictionary):
      if let method = dictionaryMethod(dictionary, name) { return method }
      return dictionary[name] ?? .undefined(name)
    case .namespace(let namespace):
      return namespace.attributes[name] ?? .undefined(name)
    case .string(let text):
      return stringMethod(text, name) ?? .undefined(name)
    case .array(let items):
      return arrayMethod(items, name) ?? .undefined(name)
    default:
      return .undefined(name)
    }
  }

  static func item(_ base: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
    switch (base, key) {
    case (.undefined(let what), _):
      throw JinjaFailure("'\(what)' is undefined (reading [\(key.repr)])")
    case (.dictionary(let dictionary), .string(let name)):
      if let value = dictionary[name] { return value }
      return dictionaryMethod(dictionary, name) ?? .undefined(name)
    case (.namespace(let namespace), .string(let name)):
      return namespace.attributes[name] ?? .undefined(name)
    case (.array(let items), _), (.tuple(let items), _):
      guard let position = integer(key) else { return .undefined("[\(key.repr)]") }
      let resolved = position < 0 ? items.count + position : position
      return items.indices.contains(resolved) ? items[resolved] : .undefined("[\(position)]")
    case (.string(let text), _):
      let scalars = Array(text.unicodeScalars)
      guard let position = integer(key) else {
        if case .string(let name) = key { return stringMethod(text, name) ?? .undefined(name) }
        return .undefined("[\(key.repr)]")
      }
      let resolved = position < 0 ? scalars.count + position : position
      return scalars.indices.contains(resolved) ? .string(String(scalars[resolved])) : .undefined("[\(position)]")
    default:
      return .undefined("[\(key.repr)]")
    }
  }

  private static func integer(_ value: JinjaValue) -> Int? {
    switch value {
    case .int(let number): number
    case .bool(let flag): flag ? 1 : 0
    default: nil
    }
  }

  /// Python's `sequence[start:stop:step]`.
  static func slice(_ base: JinjaValue, start: Int?, stop: Int?, step: Int?) throws -> JinjaValue {
    let step = step ?? 1
    guard step != 0 else { throw JinjaFailure("slice step cannot be zero") }
    func indices(count: Int) -> [Int] {
      func clamp(_ value: Int?, _ defaultValue: Int, low: Int, high: Int) -> Int {
        guard var value else { return defaultValue }
        if value < 0 { value += count }
        return min(max(value, low), high)
      }
      if step > 0 {
        let from = clamp(start, 0, low: 0, high: count)
        let to = clamp(stop, count, low: 0, high: count)
        return from < to ? Array(stride(from: from, to: to, by: step)) : []
      }
      let from = clamp(start, count - 1, low: -1, high: count - 1)
      let to = clamp(stop, -1, low: -1, high: count - 1)
      return from > to ? Array(stride(from: from, to: to, by: step)) : []
    }
    switch base {
    case .array(let items):
      return .array(indices(count: items.count).map { items[$0] })
    case .tuple(let items):
      return .tuple(indices(count: items.count).map { items[$0] })
    case .string(let text):
      let scalars = Array(text.unicodeScalars)
      var view = String.UnicodeScalarView()
      for index in indices(count: scalars.count) { view.append(scalars[index]) }
      return .string(String(view))
    case .undefined(let what):
      throw JinjaFailure("'\(what)' is undefined (slicing it)")
    default:
      throw JinjaFailure("'\(base.typeName)' object is not subscriptable")
    }
  }

  // MARK: Operators

  static func binary(_ symbol: String, _ left: JinjaValue, _ right: JinjaValue) throws -> JinjaValue {
    if symbol == "~" {
      let (a, b) = (left.text, right.text)
      try checkSize(a.unicodeScalars.count + b.unicodeScalars.count, "a string")
      return .string(a + b)
    }
    if case .undefined(let what) = left { throw JinjaFailure("'\(what)' is undefined (operand of \(symbol))") }
    if case .undefined(let what) = right { throw JinjaFailure("'\(what)' is undefined (operand of \(symbol))") }
    switch (symbol, left, right) {
    case ("+", .string(let a), .string(let b)):
      try checkSize(a.unicodeScalars.count + b.unicodeScalars.count, "a string")
      return .string(a + b)
    case ("+", .array(let a), .array(let b)):
      try checkSize(a.count + b.count, "a list")
      return .array(a + b)
    case ("+", .tuple(let a), .tuple(let b)):
      try checkSize(a.count + b.count, "a tuple")
      return .tuple(a + b)
    case ("*", .string(let text), _), ("*", _, .string(let text)):
      let other: JinjaValue = if case .string = left { right } else { left }
      guard let count = integer(other) else { break }
      guard count > 0, !text.isEmpty else { return .string("") }
      let (size, overflow) = text.unicodeScalars.count.multipliedReportingOverflow(by: count)
      try checkSize(overflow ? .max : size, "a string")
      return .string(String(repeating: text, count: count))
    case ("*", .array(let items), _):
      guard let count = integer(right) else { break }
      guard count > 0, !items.isEmpty else { return .array([]) }
      let (size, overflow) = items.count.multipliedReportingOverflow(by: count)
      try checkSize(overflow ? .max : size, "a list")
      return .array(Array([[JinjaValue]](repeating: items, count: count).joined()))
    default: break
    }
    if let a = integer(left), let b = integer(right) {
      switch symbol {
      case "+": let (value, overflow) = a.addingReportingOverflow(b); if !overflow { return .int(value) }
      case "-": let (value, overflow) = a.subtractingReportingOverflow(b); if !overflow { return .int(value) }
      case "*": let (value, overflow) = a.multipliedReportingOverflow(by: b); if !overflow { return .int(value) }
      case "/":
        guard b != 0 else { throw JinjaFailure("division by zero") }
        return .double(Double(a) / Double(b))
      case "//", "%":
        guard b != 0 else { throw JinjaFailure("integer division or modulo by zero") }
        guard !(a == Int.min && b == -1) else { break }
        var quotient = a / b
        var remainder = a % b
        if remainder != 0 && (remainder < 0) != (b < 0) {
          quotient -= 1
          remainder += b
        }
        return .int(symbol == "//" ? quotient : remainder)
      case "**":
        if b >= 0 {
          var result = 1
          for _ in 0..<min(b, 64) {
            let (value, overflow) = result.multipliedReportingOverflow(by: a)
            if overflow { throw JinjaFailure("integer power too large") }
            result = value
          }
          if b > 64 && !(a == 0 || a == 1 || a == -1) { throw JinjaFailure("integer power too large") }
          if b > 64 && a == -1 { result = b % 2 == 0 ? 1 : -1 }
          return .int(result)
        }
        return .double(pow(Double(a), Double(b)))
      default: break
      }
      if ["+", "-", "*", "//", "%"].contains(symbol) { throw JinjaFailure("integer overflow in \(symbol)") }
    }
    if let a = number(left), let b = number(right) {
      switch symbol {
      case "+": return .double(a + b)
      case "-": return .double(a - b)
      case "*": return .double(a * b)
      case "/":
        guard b != 0 else { throw JinjaFailure("float division by zero") }
        return .double(a / b)
      case "//":
        guard b != 0 else { throw JinjaFailure("float floor division by zero") }
        return .double((a / b).rounded(.down))
      case "%":
        guard b != 0 else { throw JinjaFailure("float modulo by zero") }
        let remainder = a.truncatingRemainder(dividingBy: b)
        return .double(remainder != 0 && (remainder < 0) != (b < 0) ? remainder + b : remainder)
      case "**": return .double(pow(a, b))
      default: break
      }
    }
    throw JinjaFailure("unsupported operand types for \(symbol): '\(left.typeName)' and '\(right.typeName)'")
  }

  private static func number(_ value: JinjaValue) -> Double? {
    switch value {
    case .int(let number): Double(number)
    case .double(let number): number
    case .bool(let flag): flag ? 1 : 0
    default: nil
    }
  }

  static func compare(_ symbol: String, _ left: JinjaValue, _ right: JinjaValue) throws -> Bool {
    switch symbol {
    case "==": return equal(left, right)
    case "!=": return !equal(left, right)
    case "in": return try contains(right, left)
    case "not in": return try !contains(right, left)
    default:
      let order = try ordering(left, right)
      switch symbol {
      case "<": return order < 0
      case ">": return order > 0
      case "<=": return order <= 0
      default: return order >= 0
      }
    }
  }

  static func equal(_ left: JinjaValue, _ right: JinjaValue) -> Bool {
    switch (left, right) {
    case (.undefined, .undefined), (.none, .none): return true
    case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
    case (.array(let a), .array(let b)), (.tuple(let a), .tuple(let b)):
      return a.count == b.count && zip(a, b).allSatisfy { equal($0, $1) }
    case (.dictionary(let a), .dictionary(let b)):
      return a.keys.count == b.keys.count && a.pairs.allSatisfy { key, value in b[key].map { equal(value, $0) } ?? false }
    case (.namespace(let a), .namespace(let b)): return a === b
    default:
      if let a = number(left), let b = number(right) { return a == b }
      return false
    }
  }

  private static func ordering(_ left: JinjaValue, _ right: JinjaValue) throws -> Int {
    switch (left, right) {
    case (.string(let a), .string(let b)):
      for (x, y) in zip(a.unicodeScalars, b.unicodeScalars) where x != y { return x.value < y.value ? -1 : 1 }
      let (m, n) = (a.unicodeScalars.count, b.unicodeScalars.count)
      return m == n ? 0 : (m < n ? -1 : 1)
    case (.array(let a), .array(let b)), (.tuple(let a), .tuple(let b)):
      for (x, y) in zip(a, b) where !equal(x, y) { return try ordering(x, y) }
      return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    default:
      if let a = integer(left), let b = integer(right) { return a == b ? 0 : (a < b ? -1 : 1) }
      if let a = number(left), let b = number(right), !a.isNaN, !b.isNaN { return a == b ? 0 : (a < b ? -1 : 1) }
      throw JinjaFailure("'<' not supported between '\(left.typeName)' and '\(right.typeName)'")
    }
  }

  static func contains(_ container: JinjaValue, _ element: JinjaValue) throws -> Bool {
    switch container {
    case .undefined: return false
    case .string(let text):
      guard case .string(let needle) = element else { throw JinjaFailure("'in <string>' requires string as left operand, not \(element.typeName)") }
      return needle.isEmpty || CodePoints(text).firstIndex(of: needle) != nil
    case .array(let items), .tuple(let items): return items.contains { equal($0, element) }
    case .dictionary(let dictionary):
      guard case .string(let key) = element else { return false }
      return dictionary[key] != nil
    case .namespace(let namespace):
      guard case .string(let key) = element else { return false }
      return namespace.attributes[key] != nil
    default:
      throw JinjaFailure("argument of type '\(container.typeName)' is not iterable")
    }
  }

  // MARK: Tests

  static func test(_ name: String, _ value: JinjaValue, _ arguments: [JinjaValue]) throws -> Bool {
    func argument() throws -> JinjaValue {
      guard arguments.count == 1 else { throw JinjaFailure("test '\(name)' takes one argument") }
      return arguments[0]
    }
    switch name {
    case "defined": return !value.isUndefined
    case "undefined": return value.isUndefined
    case "none": if case .none = value { return true } else { return false }
    case "boolean": if case .bool = value { return true } else { return false }
    case "true": if case .bool(true) = value { return true } else { return false }
    case "false": if case .bool(false) = value { return true } else { return false }
    case "integer": if case .int = value { return true } else { return false }
    case "float": if case .double = value { return true } else { return false }
    case "number":
      switch value {
      case .int, .double, .bool: return true
      default: return false
      }
    case "string": if case .string = value { return true } else { return false }
    case "mapping": if case .dictionary = value { return true } else { return false }
    case "iterable", "sequence":
      switch value {
      case .undefined, .string, .array, .tuple, .dictionary: return true
      case .namespace: return name == "iterable"
      default: return false
      }
    case "callable":
      // Jinja's Undefined defines __call__ (to fail when called), so Python calls it callable.
      switch value {
      case .callable, .undefined: return true
      default: return false
      }
    case "sameas":
      let other = try argument()
      if case .namespace(let a) = value, case .namespace(let b) = other { return a === b }
      switch (value, other) {
      case (.none, .none), (.bool(true), .bool(true)), (.bool(false), .bool(false)): return true
      default: return false
      }
    case "eq", "equalto", "==": return equal(value, try argument())
    case "ne", "!=": return !equal(value, try argument())
    case "lt", "lessthan", "<": return try compare("<", value, try argument())
    case "le", "<=": return try compare("<=", value, try argument())
    case "gt", "greaterthan", ">": return try compare(">", value, try argument())
    case "ge", ">=": return try compare(">=", value, try argument())
    case "in": return try contains(try argument(), value)
    case "even", "odd":
      guard let number = integer(value) else { throw JinjaFailure("test '\(name)' needs an integer, not \(value.typeName)") }
      return (number % 2 == 0) == (name == "even")
    case "divisibleby":
      guard let number = integer(value), let divisor = integer(try argument()), divisor != 0 else {
        throw JinjaFailure("test 'divisibleby' needs integers and a non-zero divisor")
      }
      return divisor == -1 || number % divisor == 0
    case "lower", "upper":
      // Python's islower/isupper: at least one cased character, and all of them in that case.
      guard case .string(let text) = value, text.lowercased() != text.uppercased() else { return false }
      return name == "lower" ? text == text.lowercased() : text == text.uppercased()
    default:
      throw JinjaFailure("no test named '\(name)'")
    }
  }

  // MARK: Filters

  /// The filters below; an unknown name is a syntax error, as Jinja reports it when compiling.
  static let filterNames: Set<String> = [
    "safe", "string", "trim", "length", "count", "list", "tojson", "upper", "lower", "capitalize", "title", "default", "d",
    "first", "last", "join", "items", "dictsort", "replace", "reverse", "sort", "unique", "min", "max", "sum", "abs", "int",
    "float", "round", "indent", "wordcount", "map", "select", "reject", "selectattr", "rejectattr", "attr", "e", "escape",
  ]

  static func filter(_ name: String, _ value: JinjaValue, _ arguments: JinjaArguments, interpreter: JinjaInterpreter) throws -> JinjaValue {
    switch name {
    case "safe", "string":
      try arguments.check(name, accepts: [])
      return .string(value.text)
    case "trim":
      try arguments.check(name, accepts: ["chars"])
      return .string(strip(value.text, try characters(arguments.value(0, "chars")), leading: true, trailing: true))
    case "length", "count":
      try arguments.check(name, accepts: [])
      return .int(try length(value))
    case "list":
      try arguments.check(name, accepts: [])
      return .array(try interpreter.iterate(value))
    case "tojson":
      try arguments.check(name, accepts: ["ensure_ascii", "indent", "separators", "sort_keys"])
      return .string(try JinjaJSON.dump(value, options: try JinjaJSON.Options(arguments)))
    case "upper", "lower", "capitalize", "title":
      try arguments.check(name, accepts: [])
      return .string(transformCase(value.text, name))
    case "default", "d":
      try arguments.check(name, accepts: ["default_value", "boolean"])
      let fallback = arguments.value(0, "default_value") ?? .string("")
      let boolean = arguments.value(1, "boolean")?.isTruthy ?? false
      return value.isUndefined || (boolean && !value.isTruthy) ? fallback : value
    case "first", "last":
      try arguments.check(name, accepts: [])
      let items = try interpreter.iterate(value)
      return (name == "first" ? items.first : items.last) ?? .undefined("\(name) of an empty sequence")
    case "join":
      try arguments.check(name, accepts: ["d", "attribute"])
      var items = try interpreter.iterate(value)
      if let attribute = arguments.value(1, "attribute") { items = try items.map { try path($0, attribute) } }
      return .string(items.map(\.text).joined(separator: arguments.value(0, "d")?.text ?? ""))
    case "items":
      try arguments.check(name, accepts: [])
      switch value {
      case .undefined: return .array([])
      case .dictionary(let dictionary): return .array(dictionary.pairs.map { .tuple([.string($0.0), $0.1]) })
      default: throw JinjaFailure("items filter needs a mapping, not \(value.typeName)")
      }
    case "dictsort":
      try arguments.check(name, accepts: ["case_sensitive", "by", "reverse"])
      guard case .dictionary(let dictionary) = value else { throw JinjaFailure("dictsort needs a mapping, not \(value.typeName)") }
      let caseSensitive = arguments.value(0, "case_sensitive")?.isTruthy ?? false
      let byValue = arguments.value(1, "by")?.text == "value"
      let pairs = try sorted(dictionary.pairs.map { JinjaValue.tuple([.string($0.0), $0.1]) }, caseSensitive: caseSensitive) {
        try item($0, .int(byValue ? 1 : 0))
      }
      return .array(arguments.value(2, "reverse")?.isTruthy == true ? pairs.reversed() : pairs)
    case "replace":
      try arguments.check(name, accepts: ["old", "new", "count"])
      guard let old = arguments.value(0, "old"), let new = arguments.value(1, "new") else { throw JinjaFailure("replace needs old and new") }
      return .string(replace(value.text, old.text, new.text, count: arguments.value(2, "count").flatMap(integer) ?? -1))
    case "reverse":
      try arguments.check(name, accepts: [])
      if case .string(let text) = value { return .string(String(String.UnicodeScalarView(text.unicodeScalars.reversed()))) }
      return .array(try interpreter.iterate(value).reversed())
    case "sort":
      try arguments.check(name, accepts: ["reverse", "case_sensitive", "attribute"])
      let attribute = arguments.value(2, "attribute")
      let items = try sorted(try interpreter.iterate(value), caseSensitive: arguments.value(1, "case_sensitive")?.isTruthy ?? false) {
        element in try attribute.map { try path(element, $0) } ?? element
      }
      return .array(arguments.value(0, "reverse")?.isTruthy == true ? items.reversed() : items)
    case "unique":
      try arguments.check(name, accepts: ["case_sensitive", "attribute"])
      let caseSensitive = arguments.value(0, "case_sensitive")?.isTruthy ?? false
      var seen: [JinjaValue] = []
      var result: [JinjaValue] = []
      for element in try interpreter.iterate(value) {
        var key = try arguments.value(1, "attribute").map { try path(element, $0) } ?? element
        if !caseSensitive, case .string(let text) = key { key = .string(text.lowercased()) }
        if !seen.contains(where: { equal($0, key) }) {
          seen.append(key)
          result.append(element)
        }
      }
      return .array(result)
    case "min", "max":
      try arguments.check(name, accepts: ["case_sensitive", "attribute"])
      let attribute = arguments.value(1, "attribute")
      let caseSensitive = arguments.value(0, "case_sensitive")?.isTruthy ?? false
      // The first extreme item, as Python's min and max return it.
      var best: (key: JinjaValue, item: JinjaValue)?
      for element in try interpreter.iterate(value) {
        var key = try attribute.map { try path(element, $0) } ?? element
        if !caseSensitive, case .string(let text) = key { key = .string(text.lowercased()) }
        if let current = best {
          let order = try ordering(key, current.key)
          if name == "min" ? order < 0 : order > 0 { best = (key, element) }
        } else {
          best = (key, element)
        }
      }
      return best?.item ?? .undefined("\(name) of an empty sequence")
    case "sum":
      try arguments.check(name, accepts: ["attribute", "start"])
      var total = arguments.value(1, "start") ?? .int(0)
      for element in try interpreter.iterate(value) {
        total = try binary("+", total, try arguments.value(0, "attribute").map { try path(element, $0) } ?? element)
      }
      return total
    case "abs":
      try arguments.check(name, accepts: [])
      switch value {
      case .int(let number) where number != .min: return .int(abs(number))
      case .double(let number): return .double(abs(number))
      case .bool(let flag): return .int(flag ? 1 : 0)
      default: throw JinjaFailure("bad operand type for abs(): '\(value.typeName)'")
      }
    case "int":
      try arguments.check(name, accepts: ["default", "base"])
      let fallback = arguments.value(0, "default") ?? .int(0)
      switch value {
      case .int: return value
      case .bool(let flag): return .int(flag ? 1 : 0)
      case .double(let number): return number.isFinite && abs(number) < 9.2e18 ? .int(Int(number)) : fallback
      case .string(let text):
        let trimmed = strip(text, nil, leading: true, trailing: true).replacingOccurrences(of: "_", with: "")
        let base = arguments.value(1, "base").flatMap(integer) ?? 10
        guard (2...36).contains(base) else { throw JinjaFailure("int() base must be 2 to 36") }
        if let number = Int(trimmed, radix: base) { return .int(number) }
        if base == 10, let number = Double(trimmed), number.isFinite, abs(number) < 9.2e18 { return .int(Int(number)) }
        return fallback
      default: return fallback
      }
    case "float":
      try arguments.check(name, accepts: ["default"])
      if let number = number(value) { return .double(number) }
      if case .string(let text) = value, let number = Double(strip(text, nil, leading: true, trailing: true)) { return .double(number) }
      return arguments.value(0, "default") ?? .double(0)
    case "round":
      try arguments.check(name, accepts: ["precision", "method"])
      guard let number = number(value) else { throw JinjaFailure("round needs a number, not \(value.typeName)") }
      let precision = arguments.value(0, "precision").flatMap(integer) ?? 0
      let scale = pow(10.0, Double(min(max(precision, -300), 300)))
      let rule: FloatingPointRoundingRule =
        switch arguments.value(1, "method")?.text ?? "common" {
        case "ceil": .up
        case "floor": .down
        default: .toNearestOrEven  // Python's round()
        }
      return .double((number * scale).rounded(rule) / scale)
    case "indent":
      try arguments.check(name, accepts: ["width", "first", "blank"])
      let width = arguments.value(0, "width") ?? .int(4)
      let indentation: String
      if case .string(let text) = width {
        indentation = text
      } else {
        indentation = String(repeating: " ", count: min(max(integer(width) ?? 4, 0), 1_000))
      }
      let blank = arguments.value(2, "blank")?.isTruthy ?? false
      let lines = (value.text + "\n").components(separatedBy: "\n").dropLast()
      var result = lines.first ?? ""
      for line in lines.dropFirst() { result += "\n" + (line.isEmpty && !blank ? "" : indentation + line) }
      return .string((arguments.value(1, "first")?.isTruthy ?? false) ? indentation + result : result)
    case "wordcount":
      try arguments.check(name, accepts: [])
      return .int(value.text.split { !($0.isLetter || $0.isNumber || $0 == "_") }.count)
    case "map":
      let items = try interpreter.iterate(value)
      if let attribute = arguments.keywords.first(where: { $0.0 == "attribute" })?.1 {
        let fallback = arguments.keywords.first(where: { $0.0 == "default" })?.1
        return .array(try items.map { element in
          let found = try path(element, attribute)
          return found.isUndefined ? (fallback ?? found) : found
        })
      }
      guard let filterName = arguments.positional.first?.text else { throw JinjaFailure("map needs a filter name or attribute=") }
      let rest = JinjaArguments(Array(arguments.positional.dropFirst()), keywords: arguments.keywords)
      return .array(try items.map { try filter(filterName, $0, rest, interpreter: interpreter) })
    case "select", "reject":
      let items = try interpreter.iterate(value)
      let testName = arguments.positional.first?.text
      let testArguments = Array(arguments.positional.dropFirst())
      return .array(try items.filter { element in
        let passes = try testName.map { try test($0, element, testArguments) } ?? element.isTruthy
        return passes == (name == "select")
      })
    case "selectattr", "rejectattr":
      let items = try interpreter.iterate(value)
      guard let attribute = arguments.positional.first else { throw JinjaFailure("\(name) needs an attribute name") }
      let testName = arguments.positional.count > 1 ? arguments.positional[1].text : nil
      let testArguments = Array(arguments.positional.dropFirst(2))
      return .array(try items.filter { element in
        let found = try path(element, attribute)
        let passes = try testName.map { try test($0, found, testArguments) } ?? found.isTruthy
        return passes == (name == "selectattr")
      })
    case "attr":
      // Python's getattr only: a dictionary's keys are not its attributes.
      guard let attributeName = arguments.positional.first?.text else { throw JinjaFailure("attr needs a name") }
      if case .dictionary(let dictionary) = value { return dictionaryMethod(dictionary, attributeName) ?? .undefined(attributeName) }
      return try attribute(value, attributeName)
    case "e", "escape":
      var escaped = ""
      for character in value.text.unicodeScalars {
        switch character {
        case "&": escaped += "&amp;"
        case "<": escaped += "&lt;"
        case ">": escaped += "&gt;"
        case "\"": escaped += "&#34;"
        case "'": escaped += "&#39;"
        default: escaped.unicodeScalars.append(character)
        }
      }
      return .string(escaped)
    default:
      throw JinjaFailure("no filter named '\(name)'")
    }
  }

  /// `a.b.c` or an integer index, as `map(attribute=…)` and `selectattr` read them.
  private static func path(_ value: JinjaValue, _ attribute: JinjaValue) throws -> JinjaValue {
    if let position = integer(attribute) { return try item(value, .int(position)) }
    var current = value
    for part in attribute.text.split(separator: ".", omittingEmptySubsequences: false) {
      if current.isUndefined { return current }
      current = try item(current, Int(part).map { .int($0) } ?? .string(String(part)))
    }
    return current
  }

  private static func sorted(_ items: [JinjaValue], caseSensitive: Bool, key: (JinjaValue) throws -> JinjaValue) throws -> [JinjaValue] {
    let keyed = try items.map { element -> (JinjaValue, JinjaValue) in
      var value = try key(element)
      if !caseSensitive, case .string(let text) = value { value = .string(text.lowercased()) }
      return (value, element)
    }
    // Stable, like Python's sort; a comparison that fails fails the filter.
    var failure: Error?
    let result = keyed.enumerated().sorted { a, b in
      do {
        let order = try ordering(a.element.0, b.element.0)
        return order != 0 ? order < 0 : a.offset < b.offset
      } catch {
        failure = error
        return a.offset < b.offset
      }
    }
    if let failure { throw failure }
    return result.map(\.element.1)
  }

  static func length(_ value: JinjaValue) throws -> Int {
    switch value {
    case .undefined: 0
    case .string(let text): text.unicodeScalars.count
    case .array(let items), .tuple(let items): items.count
    case .dictionary(let dictionary): dictionary.keys.count
    case .namespace(let namespace): namespace.attributes.keys.count
    default: throw JinjaFailure("object of type '\(value.typeName)' has no len()")
    }
  }

  // MARK: Methods

  private static func method(_ name: String, _ body: @escaping (JinjaArguments) throws -> JinjaValue) -> JinjaValue {
    .callable(JinjaCallable(name: name, call: body))
  }

  private static func dictionaryMethod(_ dictionary: JinjaDictionary, _ name: String) -> JinjaValue? {
    switch name {
    case "items":
      method(name) { arguments in
        try arguments.check(name, accepts: [])
        return .array(dictionary.pairs.map { .tuple([.string($0.0), $0.1]) })
      }
    case "keys":
      method(name) { arguments in
        try arguments.check(name, accepts: [])
        return .array(dictionary.keys.map { .string($0) })
      }
    case "values":
      method(name) { arguments in
        try arguments.check(name, accepts: [])
        return .array(dictionary.pairs.map(\.1))
      }
    case "get":
      method(name) { arguments in
        guard arguments.keywords.isEmpty, (1...2).contains(arguments.positional.count) else {
          throw JinjaFailure("get() takes a key and an optional default")
        }
        guard case .string(let key) = arguments.positional[0] else { return arguments.positional.count > 1 ? arguments.positional[1] : .none }
        return dictionary[key] ?? (arguments.positional.count > 1 ? arguments.positional[1] : .none)
      }
    default: nil
    }
  }

  private static func arrayMethod(_ items: [JinjaValue], _ name: String) -> JinjaValue? {
    switch name {
    case "index":
      method(name) { arguments in
        guard let needle = arguments.positional.first else { throw JinjaFailure("index() takes one argument") }
        guard let found = items.firstIndex(where: { equal($0, needle) }) else { throw JinjaFailure("\(needle.repr) is not in list") }
        return .int(found)
      }
    case "count":
      method(name) { arguments in
        guard let needle = arguments.positional.first else { throw JinjaFailure("count() takes one argument") }
        return .int(items.filter { equal($0, needle) }.count)
      }
    default: nil
    }
  }

  private static func stringMethod(_ text: String, _ name: String) -> JinjaValue? {
    func string(_ arguments: JinjaArguments, _ index: Int, _ label: String) throws -> String? {
      guard let value = arguments.value(index, label) else { return nil }
      if case .none = value { return nil }
      guard case .string(let given) = value else { throw JinjaFailure("\(name)() argument must be str, not \(value.typeName)") }
      return given
    }
    switch name {
    case "startswith", "endswith":
      return method(name) { arguments in
        try arguments.check(name, accepts: ["prefix"])
        guard let given = arguments.value(0, "prefix") else { throw JinjaFailure("\(name)() takes one argument") }
        let candidates = given.elements ?? [given]
        let points = CodePoints(text)
        return .bool(try candidates.contains { candidate in
          guard case .string(let affix) = candidate else { throw JinjaFailure("\(name) first arg must be str or a tuple of str") }
          return name == "startswith" ? points.hasPrefix(affix) : points.hasSuffix(affix)
        })
      }
    case "strip", "lstrip", "rstrip":
      return method(name) { arguments in
        try arguments.check(name, accepts: ["chars"])
        let set = try string(arguments, 0, "chars").map { Set($0.unicodeScalars) }
        return .string(strip(text, set, leading: name != "rstrip", trailing: name != "lstrip"))
      }
    case "split", "rsplit":
      return method(name) { arguments in
        try arguments.check(name, accepts: ["sep", "maxsplit"])
        let separator = try string(arguments, 0, "sep")
        let maximum = arguments.value(1, "maxsplit").flatMap(integer) ?? -1
        return .array(try split(text, separator: separator, maximum: maximum, fromRight: name == "rsplit").map { .string($0) })
      }
    case "replace":
      return method(name) { arguments in
        try arguments.check(name, accepts: ["old", "new", "count"])
        guard let old = try string(arguments, 0, "old"), let new = try string(arguments, 1, "new") else {
          throw JinjaFailure("replace() takes old and new strings")
        }
        return .string(replace(text, old, new, count: arguments.value(2, "count").flatMap(integer) ?? -1))
      }
    case "upper", "lower", "capitalize", "title":
      return method(name) { arguments in
        try arguments.check(name, accepts: [])
        return .string(transformCase(text, name == "title" ? "pythonTitle" : name))
      }
    case "find", "rfind", "index", "rindex", "count":
      return method(name) { arguments in
        try arguments.check(name, accepts: ["sub"])
        guard let needle = try string(arguments, 0, "sub") else { throw JinjaFailure("\(name)() takes one string") }
        let points = CodePoints(text)
        if name == "count" {
          guard !needle.isEmpty else { return .int(points.scalars.count + 1) }
          var count = 0
          var position = 0
          let needlePoints = Array(needle.unicodeScalars)
          while position + needlePoints.count <= points.scalars.count {
            if points.matches(needlePoints, at: position) {
              count += 1
              position += needlePoints.count
            } else {
              position += 1
            }
          }
          return .int(count)
        }
        let found = name.hasPrefix("r") ? points.lastIndex(of: needle) : points.firstIndex(of: needle)
        if found == nil && name.hasSuffix("index") { throw JinjaFailure("substring not found") }
        return .int(found ?? -1)
      }
    case "join":
      return method(name) { arguments in
        guard let sequence = arguments.positional.first else { throw JinjaFailure("join() takes one argument") }
        let items: [JinjaValue]
        switch sequence {
        case .array(let values), .tuple(let values): items = values
        case .string(let value): items = value.unicodeScalars.map { .string(String($0)) }
        default: throw JinjaFailure("can only join an iterable")
        }
        return .string(try items.map { item -> String in
          guard case .string(let part) = item else { throw JinjaFailure("join() expected str, found \(item.typeName)") }
          return part
        }.joined(separator: text))
      }
    case "splitlines":
      // Python's line boundaries: \n, \r, \r\n, \v, \f, \x1c–\x1e, \x85, U+2028, U+2029.
      return method(name) { _ in
        let breaks: Set<UInt32> = [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029]
        let scalars = Array(text.unicodeScalars)
        var lines: [JinjaValue] = []
        var start = 0
        var index = 0
        while index < scalars.count {
          if breaks.contains(scalars[index].value) {
            lines.append(.string(CodePoints(scalars[start..<index]).string))
            if scalars[index] == "\r", index + 1 < scalars.count, scalars[index + 1] == "\n" { index += 1 }
            start = index + 1
          }
          index += 1
        }
        if start < scalars.count { lines.append(.string(CodePoints(scalars[start...]).string)) }
        return .array(lines)
      }
    case "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower":
      return method(name) { _ in
        let scalars = text.unicodeScalars
        guard !scalars.isEmpty else { return .bool(false) }
        switch name {
        case "isdigit": return .bool(scalars.allSatisfy { $0.properties.numericType == .decimal || $0.properties.numericType == .digit })
        case "isalpha": return .bool(scalars.allSatisfy(\.properties.isAlphabetic))
        case "isalnum": return .bool(scalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(scalars.allSatisfy(isWhitespace))
        case "isupper": return .bool(text == text.uppercased() && text != text.lowercased())
        default: return .bool(text == text.lowercased() && text != text.uppercased())
        }
      }
    default:
      return nil
    }
  }

  // MARK: String helpers

  static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
  }

  private static func characters(_ value: JinjaValue?) throws -> Set<Unicode.Scalar>? {
    guard let value else { return nil }
    switch value {
    case .none, .undefined: return nil
    case .string(let text): return Set(text.unicodeScalars)
    default: throw JinjaFailure("strip arg must be None or str")
    }
  }

  /// Python's `strip`/`lstrip`/`rstrip`: whitespace when `characters` is nil.
  static func strip(_ text: String, _ characters: Set<Unicode.Scalar>?, leading: Bool, trailing: Bool) -> String {
    let scalars = Array(text.unicodeScalars)
    let drop: (Unicode.Scalar) -> Bool = { characters?.contains($0) ?? isWhitespace($0) }
    var start = 0
    var end = scalars.count
    if leading { while start < end && drop(scalars[start]) { start += 1 } }
    if trailing { while end > start && drop(scalars[end - 1]) { end -= 1 } }
    return CodePoints(scalars[start..<end]).string
  }

  /// Python's `split`/`rsplit`: runs of whitespace (edges dropped) when `separator` is nil.
  static func split(_ text: String, separator: String?, maximum: Int, fromRight: Bool) throws -> [String] {
    let scalars = Array(text.unicodeScalars)
    guard let separator else {
      var words: [Range<Int>] = []
      var index = 0
      while index < scalars.count {
        while index < scalars.count && isWhitespace(scalars[index]) { index += 1 }
        guard index < scalars.count else { break }
        let start = index
        while index < scalars.count && !isWhitespace(scalars[index]) { index += 1 }
        words.append(start..<index)
      }
      // Past `maximum` splits the rest is one piece, keeping its whitespace on the far side.
      guard maximum >= 0, words.count > maximum else { return words.map { CodePoints(scalars[$0]).string } }
      if fromRight {
        let kept = words.suffix(maximum)
        let head = CodePoints(scalars[0..<words[words.count - maximum - 1].upperBound]).string
        return [head] + kept.map { CodePoints(scalars[$0]).string }
      }
      let kept = words.prefix(maximum)
      return kept.map { CodePoints(scalars[$0]).string } + [CodePoints(scalars[words[maximum].lowerBound...]).string]
    }
    let needle = Array(separator.unicodeScalars)
    guard !needle.isEmpty else { throw JinjaFailure("empty separator") }
    let points = CodePoints(text)
    var cuts: [Int] = []
    var index = 0
    while index + needle.count <= scalars.count {
      if points.matches(needle, at: index) {
        cuts.append(index)
        index += needle.count
      } else {
        index += 1
      }
    }
    if maximum >= 0 && cuts.count > maximum { cuts = fromRight ? Array(cuts.suffix(maximum)) : Array(cuts.prefix(maximum)) }
    var parts: [String] = []
    var start = 0
    for cut in cuts {
      parts.append(CodePoints(scalars[start..<cut]).string)
      start = cut + needle.count
    }
    parts.append(CodePoints(scalars[start...]).string)
    return parts
  }

  static func replace(_ text: String, _ old: String, _ new: String, count: Int) -> String {
    let scalars = Array(text.unicodeScalars)
    let needle = Array(old.unicodeScalars)
    var result = String.UnicodeScalarView()
    var replaced = 0
    if needle.isEmpty {
      for scalar in scalars {
        if count < 0 || replaced < count { result.append(contentsOf: new.unicodeScalars); replaced += 1 }
        result.append(scalar)
      }
      if count < 0 || replaced < count { result.append(contentsOf: new.unicodeScalars) }
      return String(result)
    }
    let points = CodePoints(text)
    var index = 0
    while index < scalars.count {
      if (count < 0 || replaced < count) && points.matches(needle, at: index) {
        result.append(contentsOf: new.unicodeScalars)
        index += needle.count
        replaced += 1
      } else {
        result.append(scalars[index])
        index += 1
      }
    }
    return String(result)
  }

  private static func transformCase(_ text: String, _ name: String) -> String {
    switch name {
    case "upper": return text.uppercased()
    case "lower": return text.lowercased()
    case "capitalize":
      guard let first = text.first else { return text }
      return String(first).uppercased() + text.dropFirst().lowercased()
    case "pythonTitle":
      // str.title(): a word is a run of letters; every other character starts a new one.
      var result = ""
      var atStart = true
      for character in text {
        result += atStart ? String(character).uppercased() : String(character).lowercased()
        atStart = !character.isLetter
      }
      return result
    default:
      // Jinja's title: words begin after whitespace, '-', '(', '{', '[' or '<'.
      var result = ""
      var atStart = true
      for character in text {
        result += atStart ? String(character).uppercased() : String(character).lowercased()
        atStart = character.isWhitespace || "-({[<".contains(character)
      }
      return result
    }
  }
}
