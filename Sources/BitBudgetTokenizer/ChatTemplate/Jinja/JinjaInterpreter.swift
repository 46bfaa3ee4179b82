import Foundation

/// Variables visible at one point of a render: a loop iteration and a macro call open a scope
/// (Jinja's rule: `set` inside a loop does not leak out of it; `if` opens none).
final class JinjaScope {
  var variables: [String: JinjaValue] = [:]
  let parent: JinjaScope?

  init(parent: JinjaScope?) { self.parent = parent }

  func lookup(_ name: String) -> JinjaValue? {
    var scope: JinjaScope? = self
    while let current = scope {
      if let value = current.variables[name] { return value }
      scope = current.parent
    }
    return nil
  }
}

/// Renders parsed statements. Errors carry the offset of the statement being rendered.
final class JinjaInterpreter {
  enum Flow { case normal, breakLoop, continueLoop }

  let globals: JinjaScope
  /// Bounds a hostile template's work (nested loops over `range`, recursive macros): renders
  /// stop with an error after this many statements or at this macro depth.
  let statementBudget = 500_000
  static let macroDepthLimit = 64
  private var statements = 0
  private var macroDepth = 0
  /// Nested `evaluate` calls (expressions are at most 400 deep, but macros nest them).
  private var evaluationDepth = 0
  static let evaluationDepthLimit = 2_000
  /// How deep a list, tuple or dictionary may nest (its release and printing recurse).
  static let valueDepthLimit = 100
  /// Scopes holding macros and the namespaces made, emptied by `finish()`: a macro refers to its
  /// scope and a namespace may hold itself, so both would otherwise outlive the render.
  private var macroScopes: [JinjaScope] = []
  var namespaces: [JinjaNamespace] = []

  init(globals: JinjaScope) { self.globals = globals }

  /// Breaks the reference cycles a render may have made; call once rendering is over.
  func finish() {
    for scope in macroScopes { scope.variables.removeAll() }
    for namespace in namespaces { namespace.attributes = JinjaDictionary() }
    macroScopes.removeAll()
    namespaces.removeAll()
  }

  struct Located: Error {
    var failure: JinjaFailure
    var offset: Int
  }

  func render(_ nodes: [JinjaNode], scope: JinjaScope, into output: inout String) throws(Located) -> Flow {
    for node in nodes {
      do {
        try countStatement()
        let flow = try execute(node, scope: scope, into: &output)
        if flow != .normal { return flow }
      } catch let error as Located {
        throw error
      } catch let failure as JinjaFailure {
        throw Located(failure: failure, offset: node.offset)
      } catch {
        throw Located(failure: JinjaFailure("\(error)"), offset: node.offset)
      }
    }
    return .normal
  }

  private func execute(_ node: JinjaNode, scope: JinjaScope, into output: inout String) throws -> Flow {
    switch node.kind {
    case .text(let text):
      output += text
    case .output(let expression):
      output += try evaluate(expression, scope).text
    case .conditional(let branches, let otherwise):
      for (condition, body) in branches where try evaluate(condition, scope).isTruthy {
        return try render(body, scope: scope, into: &output)
      }
      return try render(otherwise, scope: scope, into: &output)
    case .loop(let target, let iterable, let filter, let body, let otherwise):
      var items = try iterate(try evaluate(iterable, scope))
      if let filter {
        items = try items.filter { item in
          let probe = JinjaScope(parent: scope)
          try assign(target, item, in: probe)
          return try evaluate(filter, probe).isTruthy
        }
      }
      if items.isEmpty { return try render(otherwise, scope: scope, into: &output) }
      for (position, item) in items.enumerated() {
        try countStatement()
        let iteration = JinjaScope(parent: scope)
        try assign(target, item, in: iteration)
        iteration.variables["loop"] = loopObject(position: position, items: items)
        if try render(body, scope: iteration, into: &output) == .breakLoop { break }
      }
    case .assign(let target, let expression):
      let value = try evaluate(expression, scope)
      if case .attribute(let name, let attribute) = target {
        guard case .namespace(let namespace)? = scope.lookup(name) else {
          throw JinjaFailure("cannot assign attribute '\(attribute)' on '\(name)', which is not a namespace()")
        }
        namespace.attributes[attribute] = value
      } else {
        try assign(target, value, in: scope)
      }
    case .assignBlock(let target, let body):
      var captured = ""
      _ = try render(body, scope: scope, into: &captured)
      try assign(target, .string(captured), in: scope)
    case .macro(let name, let parameters, let body):
      scope.variables[name] = .callable(macro(name, parameters: parameters, body: body, definedIn: scope))
      macroScopes.append(scope)
    case .filterBlock(let name, let arguments, let body):
      var captured = ""
      _ = try render(body, scope: scope, into: &captured)
      let values = try arguments.map { try evaluate($0, scope) }
      output += try JinjaBuiltins.filter(name, .string(captured), JinjaArguments(values), interpreter: self).text
    case .breakLoop:
      return .breakLoop
    case .continueLoop:
      return .continueLoop
    }
    return .normal
  }

  /// Counts a statement or a loop iteration against `statementBudget`.
  private func countStatement() throws {
    statements += 1
    if statements > statementBudget { throw JinjaFailure("the template ran more than \(statementBudget) statements or loop iterations") }
  }

  private func assign(_ target: JinjaTarget, _ value: JinjaValue, in scope: JinjaScope) throws {
    switch target {
    case .name(let name):
      scope.variables[name] = value
    case .names(let names):
      let items = try iterate(value)
      guard items.count == names.count else {
        throw JinjaFailure("cannot unpack \(items.count) values into \(names.count) names")
      }
      for (name, item) in zip(names, items) { scope.variables[name] = item }
    case .attribute(let name, _):
      throw JinjaFailure("cannot assign to an attribute of '\(name)' here")
    }
  }

  private func loopObject(position: Int, items: [JinjaValue]) -> JinjaValue {
    let count = items.count
    var loop = JinjaDictionary()
    loop["index"] = .int(position + 1)
    loop["index0"] = .int(position)
    loop["revindex"] = .int(count - position)
    loop["revindex0"] = .int(count - position - 1)
    loop["first"] = .bool(position == 0)
    loop["last"] = .bool(position == count - 1)
    loop["length"] = .int(count)
    loop["depth"] = .int(1)
    loop["depth0"] = .int(0)
    loop["previtem"] = position > 0 ? items[position - 1] : .undefined("loop.previtem")
    loop["nextitem"] = position + 1 < count ? items[position + 1] : .undefined("loop.nextitem")
    loop["cycle"] = .callable(JinjaCallable(name: "loop.cycle") { arguments in
      guard !arguments.positional.isEmpty else { throw JinjaFailure("loop.cycle() needs at least one argument") }
      return arguments.positional[position % arguments.positional.count]
    })
    return .dictionary(loop)
  }

  private func macro(
    _ name: String, parameters: [(String, JinjaExpression?)], body: [JinjaNode], definedIn scope: JinjaScope
  ) -> JinjaCallable {
    // Unowned: the interpreter outlives every value its render makes.
    return JinjaCallable(name: name) { [unowned self] arguments in
      macroDepth += 1
      defer { macroDepth -= 1 }
      guard macroDepth <= JinjaInterpreter.macroDepthLimit else {
        throw JinjaFailure("macro '\(name)' nested more than \(JinjaInterpreter.macroDepthLimit) calls deep")
      }
      let frame = JinjaScope(parent: scope)
      if arguments.positional.count > parameters.count {
        throw JinjaFailure("macro '\(name)' takes \(parameters.count) arguments (\(arguments.positional.count) given)")
      }
      for (keyword, _) in arguments.keywords where !parameters.contains(where: { $0.0 == keyword }) {
        throw JinjaFailure("macro '\(name)' has no parameter '\(keyword)'")
      }
      for (position, (parameter, defaultValue)) in parameters.enumerated() {
        if let given = arguments.value(position, parameter) {
          frame.variables[parameter] = given
        } else if let defaultValue {
          frame.variables[parameter] = try evaluate(defaultValue, frame)
        } else {
          frame.variables[parameter] = .undefined(parameter)
        }
      }
      var output = ""
      do {
        _ = try render(body, scope: frame, into: &output)
      } catch {
        throw error.failure
      }
      return .string(output)
    }
  }

  // MARK: Expressions

  func evaluate(_ expression: JinjaExpression, _ scope: JinjaScope) throws -> JinjaValue {
    evaluationDepth += 1
    defer { evaluationDepth -= 1 }
    if evaluationDepth > JinjaInterpreter.evaluationDepthLimit {
      throw JinjaFailure("expressions nested more than \(JinjaInterpreter.evaluationDepthLimit) deep (through macros)")
    }
    switch expression {
    case .literal(let value):
      return value
    case .name(let name):
      return scope.lookup(name) ?? .undefined(name)
    case .list(let items):
      return .array(try JinjaInterpreter.nestable(try items.map { try evaluate($0, scope) }))
    case .tuple(let items):
      return .tuple(try JinjaInterpreter.nestable(try items.map { try evaluate($0, scope) }))
    case .dictionary(let pairs):
      var dictionary = JinjaDictionary()
      for (keyExpression, valueExpression) in pairs {
        let key = try evaluate(keyExpression, scope)
        guard case .string(let text) = key else { throw JinjaFailure("dictionary keys must be strings, not \(key.typeName)") }
        dictionary[text] = try evaluate(valueExpression, scope)
      }
      _ = try JinjaInterpreter.nestable(dictionary.pairs.map(\.1))
      return .dictionary(dictionary)
    case .attribute(let base, let name):
      return try JinjaBuiltins.attribute(try evaluate(base, scope), name)
    case .item(let base, let key):
      return try JinjaBuiltins.item(try evaluate(base, scope), try evaluate(key, scope))
    case .slice(let base, let start, let stop, let step):
      func bound(_ expression: JinjaExpression?) throws -> Int? {
        guard let expression else { return nil }
        switch try evaluate(expression, scope) {
        case .int(let value): return value
        case .none: return nil
        case let other: throw JinjaFailure("slice indices must be integers, not \(other.typeName)")
        }
      }
      return try JinjaBuiltins.slice(try evaluate(base, scope), start: try bound(start), stop: try bound(stop), step: try bound(step))
    case .call(let callee, let arguments, let keywords):
      let function = try evaluate(callee, scope)
      let values = JinjaArguments(
        try arguments.map { try evaluate($0, scope) }, keywords: try keywords.map { ($0.0, try evaluate($0.1, scope)) })
      guard case .callable(let callable) = function else {
        if case .undefined(let name) = function { throw JinjaFailure("'\(name)' is undefined") }
        throw JinjaFailure("'\(function.typeName)' object is not callable")
      }
      return try callable.call(values)
    case .filter(let base, let name, let arguments, let keywords):
      let value = try evaluate(base, scope)
      let values = JinjaArguments(
        try arguments.map { try evaluate($0, scope) }, keywords: try keywords.map { ($0.0, try evaluate($0.1, scope)) })
      return try JinjaBuiltins.filter(name, value, values, interpreter: self)
    case .test(let base, let name, let arguments, let negated):
      let value = try evaluate(base, scope)
      let values = try arguments.map { try evaluate($0, scope) }
      return .bool(try JinjaBuiltins.test(name, value, values) != negated)
    case .not(let operand):
      return .bool(!(try evaluate(operand, scope).isTruthy))
    case .negate(let operand):
      switch try evaluate(operand, scope) {
      case .int(let value):
        guard value != .min else { throw JinjaFailure("integer overflow in unary -") }
        return .int(-value)
      case .double(let value): return .double(-value)
      case .bool(let value): return .int(value ? -1 : 0)
      case let other: throw JinjaFailure("bad operand type for unary -: '\(other.typeName)'")
      }
    case .and(let left, let right):
      let value = try evaluate(left, scope)
      return value.isTruthy ? try evaluate(right, scope) : value
    case .or(let left, let right):
      let value = try evaluate(left, scope)
      return value.isTruthy ? value : try evaluate(right, scope)
    case .binary(let symbol, let left, let right):
      return try JinjaBuiltins.binary(symbol, try evaluate(left, scope), try evaluate(right, scope))
    case .compare(let first, let operations):
      var left = try evaluate(first, scope)
      for (symbol, rightExpression) in operations {
        let right = try evaluate(rightExpression, scope)
        guard try JinjaBuiltins.compare(symbol, left, right) else { return .bool(false) }
        left = right
      }
      return .bool(true)
    case .conditional(let condition, let then, let otherwise):
      if try evaluate(condition, scope).isTruthy { return try evaluate(then, scope) }
      guard let otherwise else { return .undefined("the missing else branch") }
      return try evaluate(otherwise, scope)
    }
  }

  /// `items`, once checked to nest less than `valueDepthLimit` deep inside a new container (only
  /// containers are walked, so building a long flat list stays linear).
  static func nestable(_ items: [JinjaValue]) throws -> [JinjaValue] {
    for item in items where item.elements != nil || item.typeName == "dict" {
      guard item.isShallower(than: valueDepthLimit - 1) else {
        throw JinjaFailure("a value nested more than \(valueDepthLimit) deep")
      }
    }
    return items
  }

  /// What `for` iterates: a list's items, a string's characters, a dictionary's keys.
  func iterate(_ value: JinjaValue) throws -> [JinjaValue] {
    switch value {
    case .undefined: return []
    case .array(let items), .tuple(let items): return items
    case .string(let text): return text.unicodeScalars.map { .string(String($0)) }
    case .dictionary(let dictionary): return dictionary.keys.map { .string($0) }
    default: throw JinjaFailure("'\(value.typeName)' object is not iterable")
    }
  }
}
