/// An expression of a template, as Jinja's parser builds it.
indirect enum JinjaExpression {
  case literal(JinjaValue)
  case name(String)
  case list([JinjaExpression])
  case tuple([JinjaExpression])
  case dictionary([(JinjaExpression, JinjaExpression)])
  case attribute(JinjaExpression, String)
  case item(JinjaExpression, JinjaExpression)
  case slice(JinjaExpression, start: JinjaExpression?, stop: JinjaExpression?, step: JinjaExpression?)
  case call(JinjaExpression, [JinjaExpression], keywords: [(String, JinjaExpression)])
  case filter(JinjaExpression, name: String, [JinjaExpression], keywords: [(String, JinjaExpression)])
  case test(JinjaExpression, name: String, [JinjaExpression], negated: Bool)
  case not(JinjaExpression)
  case negate(JinjaExpression)
  case and(JinjaExpression, JinjaExpression)
  case or(JinjaExpression, JinjaExpression)
  /// Arithmetic, `~` and comparisons (`==`, `in`, `not in`, …; chained as Python chains them).
  case binary(String, JinjaExpression, JinjaExpression)
  case compare(JinjaExpression, [(String, JinjaExpression)])
  case conditional(JinjaExpression, then: JinjaExpression, otherwise: JinjaExpression?)
}

extension JinjaExpression {
  /// Whether the tree is less than `limit` deep (recursion never goes deeper than `limit`).
  func isShallower(than limit: Int) -> Bool {
    guard limit > 0 else { return false }
    func all(_ items: [JinjaExpression]) -> Bool { items.allSatisfy { $0.isShallower(than: limit - 1) } }
    switch self {
    case .literal, .name: return true
    case .list(let items), .tuple(let items): return all(items)
    case .dictionary(let pairs): return all(pairs.flatMap { [$0.0, $0.1] })
    case .attribute(let base, _), .not(let base), .negate(let base): return all([base])
    case .item(let base, let key): return all([base, key])
    case .slice(let base, let start, let stop, let step): return all([base] + [start, stop, step].compactMap { $0 })
    case .call(let base, let arguments, let keywords), .filter(let base, _, let arguments, let keywords):
      return all([base] + arguments + keywords.map(\.1))
    case .test(let base, _, let arguments, _): return all([base] + arguments)
    case .and(let left, let right), .or(let left, let right), .binary(_, let left, let right): return all([left, right])
    case .compare(let first, let operations): return all([first] + operations.map(\.1))
    case .conditional(let condition, let then, let otherwise): return all([condition, then] + (otherwise.map { [$0] } ?? []))
    }
  }
}

/// What `set` and `for` assign to.
enum JinjaTarget {
  case name(String)
  case names([String])
  case attribute(String, String)
}

/// A statement of a template; `offset` locates it in the source for errors.
struct JinjaNode {
  indirect enum Kind {
    case text(String)
    case output(JinjaExpression)
    case conditional([(JinjaExpression, [JinjaNode])], otherwise: [JinjaNode])
    case loop(JinjaTarget, JinjaExpression, filter: JinjaExpression?, body: [JinjaNode], otherwise: [JinjaNode])
    case assign(JinjaTarget, JinjaExpression)
    case assignBlock(JinjaTarget, [JinjaNode])
    case macro(String, parameters: [(String, JinjaExpression?)], body: [JinjaNode])
    case filterBlock(name: String, [JinjaExpression], body: [JinjaNode])
    case breakLoop, continueLoop
  }

  var kind: Kind
  var offset: Int
}

/// Jinja's grammar over the lexer's tokens: statements `if/elif/else`, `for … in … [if …]` with
/// `else`, `set` (names, tuples, `ns.attr`, blocks), `macro`, `filter`, `break`/`continue`,
/// `generation` (transformers' marker, rendered as its body); expressions with Jinja's precedence
/// (conditional < or < and < not < comparisons < `+ -` < `~` < `* / // %` < `**` < unary, then
/// postfix, filters and tests).
struct JinjaParser {
  private let tokens: [JinjaToken]
  private var index = 0
  /// Nesting of blocks and of expressions (parentheses, lists, `not not …`); bounded so that a
  /// hostile template is an error, not a stack overflow of this recursive parser.
  private var depth = 0
  static let maximumDepth = 100
  /// Operator, postfix and filter links in the current tag: chains parse in loops but build
  /// trees that are freed recursively, so their length is bounded before they are built.
  private var links = 0
  static let maximumLinks = 10_000
  /// `for` loops around the current statement (`break` and `continue` need one).
  private var loopDepth = 0

  init(tokens: [JinjaToken]) { self.tokens = tokens }

  static func parse(_ tokens: [JinjaToken]) throws(JinjaSyntaxError) -> [JinjaNode] {
    var parser = JinjaParser(tokens: tokens)
    let (nodes, end) = try parser.body(until: [])
    if let end { throw JinjaSyntaxError(offset: end.offset, message: "unexpected {% \(end.name) %}") }
    return nodes
  }

  private var current: JinjaToken? { index < tokens.count ? tokens[index] : nil }
  private var endOffset: Int { tokens.last.map { $0.offset } ?? 0 }

  private func fail(_ message: String) -> JinjaSyntaxError {
    JinjaSyntaxError(offset: current?.offset ?? endOffset, message: message)
  }

  private func describe(_ token: JinjaToken?) -> String {
    guard let token else { return "end of template" }
    switch token.kind {
    case .text: return "text"
    case .variableBegin: return "{{"
    case .variableEnd: return "}}"
    case .blockBegin: return "{%"
    case .blockEnd: return "%}"
    case .name(let name): return "'\(name)'"
    case .string: return "a string"
    case .integer(let value): return "\(value)"
    case .float(let value): return "\(value)"
    case .symbol(let symbol): return "'\(symbol)'"
    }
  }

  private mutating func advance() -> JinjaToken? {
    defer { index += 1 }
    return current
  }

  private func isSymbol(_ symbol: String) -> Bool { current?.kind == .symbol(symbol) }
  private func isName(_ name: String) -> Bool { current?.kind == .name(name) }

  private mutating func skip(symbol: String) -> Bool {
    guard isSymbol(symbol) else { return false }
    index += 1
    return true
  }

  private mutating func skip(name: String) -> Bool {
    guard isName(name) else { return false }
    index += 1
    return true
  }

  private mutating func expect(symbol: String) throws(JinjaSyntaxError) {
    guard skip(symbol: symbol) else { throw fail("expected '\(symbol)', found \(describe(current))") }
  }

  private mutating func expectBlockEnd() throws(JinjaSyntaxError) {
    guard current?.kind == .blockEnd else { throw fail("expected %}, found \(describe(current))") }
    index += 1
  }

  private mutating func identifier() throws(JinjaSyntaxError) -> String {
    guard case .name(let name)? = current?.kind else { throw fail("expected a name, found \(describe(current))") }
    index += 1
    return name
  }

  /// Statements until a `{% name %}` in `until` (returned, with the tag's offset; the parser is
  /// left after the name) or the end of the tokens.
  private mutating func body(until: Set<String>) throws(JinjaSyntaxError) -> ([JinjaNode], (name: String, offset: Int)?) {
    try enter()
    defer { depth -= 1 }
    var nodes: [JinjaNode] = []
    while let token = current {
      switch token.kind {
      case .text(let text):
        index += 1
        nodes.append(JinjaNode(kind: .text(text), offset: token.offset))
      case .variableBegin:
        index += 1
        links = 0
        let expression = try tuple(conditional: true)
        guard current?.kind == .variableEnd else { throw fail("expected }}, found \(describe(current))") }
        index += 1
        nodes.append(JinjaNode(kind: .output(expression), offset: token.offset))
      case .blockBegin:
        index += 1
        links = 0
        let name = try identifier()
        if until.contains(name) { return (nodes, (name, token.offset)) }
        if let node = try statement(name, offset: token.offset) { nodes.append(node) }
      default:
        throw fail("unexpected \(describe(token))")
      }
    }
    if !until.isEmpty {
      throw JinjaSyntaxError(offset: endOffset, message: "missing {% \(until.sorted().joined(separator: " or ")) %}")
    }
    return (nodes, nil)
  }

  private mutating func statement(_ name: String, offset: Int) throws(JinjaSyntaxError) -> JinjaNode? {
    switch name {
    case "if":
      var branches: [(JinjaExpression, [JinjaNode])] = []
      var condition = try expression()
      var otherwise: [JinjaNode] = []
      while true {
        try expectBlockEnd()
        let (nodes, end) = try body(until: ["elif", "else", "endif"])
        branches.append((condition, nodes))
        if end?.name == "elif" {
          condition = try expression()
          continue
        }
        if end?.name == "else" {
          try expectBlockEnd()
          otherwise = try body(until: ["endif"]).0
        }
        try expectBlockEnd()
        break
      }
      return JinjaNode(kind: .conditional(branches, otherwise: otherwise), offset: offset)
    case "for":
      let target = try assignTarget(allowAttribute: false)
      guard skip(name: "in") else { throw fail("expected 'in', found \(describe(current))") }
      let iterable = try tuple(conditional: false)
      let filter = skip(name: "if") ? try expression() : nil
      if isName("recursive") { throw fail("recursive loops are not supported") }
      if !iterable.isShallower(than: JinjaParser.maximumDepth * 4) { throw fail("expression nested too deep") }
      try expectBlockEnd()
      loopDepth += 1
      let (nodes, end) = try body(until: ["else", "endfor"])
      loopDepth -= 1
      var otherwise: [JinjaNode] = []
      if end?.name == "else" {
        try expectBlockEnd()
        otherwise = try body(until: ["endfor"]).0
      }
      try expectBlockEnd()
      return JinjaNode(kind: .loop(target, iterable, filter: filter, body: nodes, otherwise: otherwise), offset: offset)
    case "set":
      let target = try assignTarget(allowAttribute: true)
      if skip(symbol: "=") {
        let value = try tuple(conditional: true)
        try expectBlockEnd()
        return JinjaNode(kind: .assign(target, value), offset: offset)
      }
      try expectBlockEnd()
      let nodes = try body(until: ["endset"]).0
      try expectBlockEnd()
      return JinjaNode(kind: .assignBlock(target, nodes), offset: offset)
    case "macro":
      let macroName = try identifier()
      try expect(symbol: "(")
      var parameters: [(String, JinjaExpression?)] = []
      while !skip(symbol: ")") {
        if !parameters.isEmpty { try expect(symbol: ",") }
        if skip(symbol: ")") { break }
        let parameter = try identifier()
        parameters.append((parameter, skip(symbol: "=") ? try expression() : nil))
      }
      try expectBlockEnd()
      // A macro body is its own scope: a `break` there cannot reach a loop around the definition.
      let enclosingLoops = loopDepth
      loopDepth = 0
      let nodes = try body(until: ["endmacro"]).0
      loopDepth = enclosingLoops
      if case .name? = current?.kind { index += 1 }
      try expectBlockEnd()
      return JinjaNode(kind: .macro(macroName, parameters: parameters, body: nodes), offset: offset)
    case "filter":
      let filterOffset = current?.offset ?? offset
      let filterName = try identifier()
      guard JinjaBuiltins.filterNames.contains(filterName) else {
        throw JinjaSyntaxError(offset: filterOffset, message: "no filter named '\(filterName)'")
      }
      let (arguments, keywords) = isSymbol("(") ? try callArguments() : ([], [])
      if !keywords.isEmpty { throw fail("keyword arguments in a filter block are not supported") }
      try expectBlockEnd()
      let nodes = try body(until: ["endfilter"]).0
      try expectBlockEnd()
      return JinjaNode(kind: .filterBlock(name: filterName, arguments, body: nodes), offset: offset)
    case "break", "continue":
      guard loopDepth > 0 else { throw JinjaSyntaxError(offset: offset, message: "'\(name)' outside a for loop") }
      try expectBlockEnd()
      return JinjaNode(kind: name == "break" ? .breakLoop : .continueLoop, offset: offset)
    case "generation":
      // transformers' assistant-mask marker: renders its body.
      try expectBlockEnd()
      let nodes = try body(until: ["endgeneration"]).0
      try expectBlockEnd()
      return JinjaNode(kind: .conditional([(.literal(.bool(true)), nodes)], otherwise: []), offset: offset)
    default:
      throw JinjaSyntaxError(offset: offset, message: "unknown tag '\(name)'")
    }
  }

  private mutating func assignTarget(allowAttribute: Bool) throws(JinjaSyntaxError) -> JinjaTarget {
    let first = try identifier()
    if allowAttribute && skip(symbol: ".") { return .attribute(first, try identifier()) }
    guard isSymbol(",") else { return .name(first) }
    var names = [first]
    while skip(symbol: ",") {
      guard case .name? = current?.kind else { break }
      names.append(try identifier())
    }
    return .names(names)
  }

  /// An expression, or a tuple of them without parentheses (`set a, b = 1, 2`, `for x in a, b`).
  private mutating func tuple(conditional: Bool) throws(JinjaSyntaxError) -> JinjaExpression {
    let first = conditional ? try expression() : try or()
    guard isSymbol(",") else { return first }
    var items = [first]
    while skip(symbol: ",") {
      if current?.kind == .blockEnd || current?.kind == .variableEnd || isName("if") { break }
      items.append(conditional ? try expression() : try or())
    }
    return .tuple(items)
  }

  private mutating func link() throws(JinjaSyntaxError) {
    links += 1
    if links > JinjaParser.maximumLinks { throw fail("more than \(JinjaParser.maximumLinks) operators in one tag") }
  }

  private mutating func enter() throws(JinjaSyntaxError) {
    depth += 1
    if depth > JinjaParser.maximumDepth { throw fail("nested more than \(JinjaParser.maximumDepth) deep") }
  }

  mutating func expression() throws(JinjaSyntaxError) -> JinjaExpression {
    let start = current?.offset ?? endOffset
    try enter()
    defer { depth -= 1 }
    var value = try or()
    while skip(name: "if") {
      let condition = try or()
      let otherwise = skip(name: "else") ? try expression() : nil
      value = .conditional(condition, then: value, otherwise: otherwise)
    }
    // Operator chains (`a ~ b ~ c …`, `x.a.b.c …`, `v | f | g …`) parse in loops but build
    // deep trees, which evaluation walks recursively: bounded here as nesting is.
    if !value.isShallower(than: JinjaParser.maximumDepth * 4) {
      throw JinjaSyntaxError(offset: start, message: "expression nested more than \(JinjaParser.maximumDepth * 4) deep")
    }
    return value
  }

  private mutating func or() throws(JinjaSyntaxError) -> JinjaExpression {
    var value = try and()
    while skip(name: "or") {
      try link()
      value = .or(value, try and())
    }
    return value
  }

  private mutating func and() throws(JinjaSyntaxError) -> JinjaExpression {
    var value = try not()
    while skip(name: "and") {
      try link()
      value = .and(value, try not())
    }
    return value
  }

  private mutating func not() throws(JinjaSyntaxError) -> JinjaExpression {
    if skip(name: "not") {
      try enter()
      defer { depth -= 1 }
      return .not(try not())
    }
    return try compare()
  }

  private mutating func compare() throws(JinjaSyntaxError) -> JinjaExpression {
    let first = try sum()
    var operations: [(String, JinjaExpression)] = []
    while true {
      try link()
      if case .symbol(let symbol)? = current?.kind, ["==", "!=", "<", ">", "<=", ">="].contains(symbol) {
        index += 1
        operations.append((symbol, try sum()))
      } else if skip(name: "in") {
        operations.append(("in", try sum()))
      } else if isName("not"), index + 1 < tokens.count, tokens[index + 1].kind == .name("in") {
        index += 2
        operations.append(("not in", try sum()))
      } else {
        break
      }
    }
    return operations.isEmpty ? first : .compare(first, operations)
  }

  private mutating func sum() throws(JinjaSyntaxError) -> JinjaExpression {
    var value = try concatenation()
    while case .symbol(let symbol)? = current?.kind, symbol == "+" || symbol == "-" {
      index += 1
      try link()
      value = .binary(symbol, value, try concatenation())
    }
    return value
  }

  private mutating func concatenation() throws(JinjaSyntaxError) -> JinjaExpression {
    var value = try product()
    while skip(symbol: "~") {
      try link()
      value = .binary("~", value, try product())
    }
    return value
  }

  private mutating func product() throws(JinjaSyntaxError) -> JinjaExpression {
    var value = try power()
    while case .symbol(let symbol)? = current?.kind, ["*", "/", "//", "%"].contains(symbol) {
      index += 1
      try link()
      value = .binary(symbol, value, try power())
    }
    return value
  }

  private mutating func power() throws(JinjaSyntaxError) -> JinjaExpression {
    var value = try unary(filters: true)
    while skip(symbol: "**") {
      try link()
      value = .binary("**", value, try unary(filters: true))
    }
    return value
  }

  private mutating func unary(filters: Bool) throws(JinjaSyntaxError) -> JinjaExpression {
    try enter()
    defer { depth -= 1 }
    var value: JinjaExpression
    if skip(symbol: "-") {
      value = .negate(try unary(filters: false))
    } else if skip(symbol: "+") {
      value = .binary("+", .literal(.int(0)), try unary(filters: false))
    } else {
      value = try postfix(try primary())
    }
    return filters ? try filtersAndTests(value) : value
  }

  private mutating func primary() throws(JinjaSyntaxError) -> JinjaExpression {
    guard let token = advance() else { throw fail("expected an expression, found end of template") }
    switch token.kind {
    case .name(let name):
      switch name {
      case "true", "True": return .literal(.bool(true))
      case "false", "False": return .literal(.bool(false))
      case "none", "None": return .literal(.none)
      default: return .name(name)
      }
    case .string(var text):
      // Adjacent literals concatenate, as in Python.
      while case .string(let more)? = current?.kind {
        text += more
        index += 1
      }
      return .literal(.string(text))
    case .integer(let value): return .literal(.int(value))
    case .float(let value): return .literal(.double(value))
    case .symbol("("):
      if skip(symbol: ")") { return .tuple([]) }
      let first = try expression()
      if skip(symbol: ")") { return first }
      var items = [first]
      while skip(symbol: ",") {
        if isSymbol(")") { break }
        items.append(try expression())
      }
      try expect(symbol: ")")
      return .tuple(items)
    case .symbol("["):
      var items: [JinjaExpression] = []
      while !skip(symbol: "]") {
        if !items.isEmpty { try expect(symbol: ",") }
        if skip(symbol: "]") { break }
        items.append(try expression())
      }
      return .list(items)
    case .symbol("{"):
      var pairs: [(JinjaExpression, JinjaExpression)] = []
      while !skip(symbol: "}") {
        if !pairs.isEmpty { try expect(symbol: ",") }
        if skip(symbol: "}") { break }
        let key = try expression()
        try expect(symbol: ":")
        pairs.append((key, try expression()))
      }
      return .dictionary(pairs)
    default:
      index -= 1
      throw fail("expected an expression, found \(describe(token))")
    }
  }

  private mutating func postfix(_ base: JinjaExpression) throws(JinjaSyntaxError) -> JinjaExpression {
    var value = base
    while true {
      try link()
      if skip(symbol: ".") {
        if case .integer(let position)? = current?.kind {
          index += 1
          value = .item(value, .literal(.int(position)))
        } else {
          value = .attribute(value, try identifier())
        }
      } else if skip(symbol: "[") {
        value = try subscriptOrSlice(value)
      } else if isSymbol("(") {
        let (arguments, keywords) = try callArguments()
        value = .call(value, arguments, keywords: keywords)
      } else {
        return value
      }
    }
  }

  private mutating func subscriptOrSlice(_ base: JinjaExpression) throws(JinjaSyntaxError) -> JinjaExpression {
    var parts: [JinjaExpression?] = [nil]
    var isSlice = false
    while !skip(symbol: "]") {
      if skip(symbol: ":") {
        isSlice = true
        parts.append(nil)
        guard parts.count <= 3 else { throw fail("a slice has at most three parts") }
        continue
      }
      guard parts[parts.count - 1] == nil else { throw fail("expected ']' or ':', found \(describe(current))") }
      parts[parts.count - 1] = try expression()
    }
    if !isSlice {
      guard let key = parts[0] else { throw fail("empty subscript") }
      return .item(base, key)
    }
    return .slice(base, start: parts[0], stop: parts.count > 1 ? parts[1] : nil, step: parts.count > 2 ? parts[2] : nil)
  }

  private mutating func callArguments() throws(JinjaSyntaxError) -> ([JinjaExpression], [(String, JinjaExpression)]) {
    try expect(symbol: "(")
    var arguments: [JinjaExpression] = []
    var keywords: [(String, JinjaExpression)] = []
    var first = true
    while !skip(symbol: ")") {
      if !first { try expect(symbol: ",") }
      first = false
      if skip(symbol: ")") { break }
      if case .name(let name)? = current?.kind, index + 1 < tokens.count, tokens[index + 1].kind == .symbol("=") {
        index += 2
        keywords.append((name, try expression()))
      } else {
        if isSymbol("*") || isSymbol("**") { throw fail("*args and **kwargs are not supported") }
        guard keywords.isEmpty else { throw fail("a positional argument follows a keyword argument") }
        arguments.append(try expression())
      }
    }
    return (arguments, keywords)
  }

  private mutating func filtersAndTests(_ base: JinjaExpression) throws(JinjaSyntaxError) -> JinjaExpression {
    var value = base
    while true {
      try link()
      if skip(symbol: "|") {
        let offset = current?.offset ?? endOffset
        var name = try identifier()
        while skip(symbol: ".") { name += "." + (try identifier()) }
        guard JinjaBuiltins.filterNames.contains(name) else { throw JinjaSyntaxError(offset: offset, message: "no filter named '\(name)'") }
        let (arguments, keywords) = isSymbol("(") ? try callArguments() : ([], [])
        value = .filter(value, name: name, arguments, keywords: keywords)
      } else if skip(name: "is") {
        let negated = skip(name: "not")
        var name = try identifier()
        while skip(symbol: ".") { name += "." + (try identifier()) }
        var arguments: [JinjaExpression] = []
        if isSymbol("(") {
          let (positional, keywords) = try callArguments()
          if !keywords.isEmpty { throw fail("keyword arguments to a test are not supported") }
          arguments = positional
        } else if let token = current, startsTestArgument(token) {
          arguments = [try postfix(try primary())]
        }
        value = .test(value, name: name, arguments, negated: negated)
      } else if isSymbol("(") {
        let (arguments, keywords) = try callArguments()
        value = .call(value, arguments, keywords: keywords)
      } else {
        return value
      }
    }
  }

  /// A test's single argument may follow without parentheses (`x is divisibleby 3`).
  private func startsTestArgument(_ token: JinjaToken) -> Bool {
    switch token.kind {
    case .name(let name): return !["else", "or", "and", "if", "in", "not", "is"].contains(name)
    case .string, .integer, .float: return true
    case .symbol(let symbol): return symbol == "[" || symbol == "{"
    default: return false
    }
  }
}
