import Foundation
import Yams

/// A sweep grid read from YAML (design.md "Sweep grids"): every list is an axis, every scalar is
/// fixed; the grid is the product of the axes, in file order with the last axis varying fastest.
///
/// Keys: `model`/`models`, `task`, `answer_type`, `samples`, `parallel`, `weights`, `kv`,
/// `thinking_budget`, `budget_mode` (`paper`, `cap` or `none`; see `BudgetMode`), `answer_tokens`,
/// `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `questions`, `gpqa_seed`, `backend`
/// (`local`, or a mapping `{endpoint: URL or [URLs], model: SERVED_NAME, concurrency, timeout,
/// retries}` for an OpenAI-compatible server; a list of them is an axis). An unknown key, a value
/// of the wrong type or an empty list is an error naming the key.
public struct SweepGrid: Sendable {
  /// One point of the grid: everything a scenario needs that is not read from the model.
  public struct Point: Sendable, Equatable {
    public var model: String
    public var task: String
    public var answerType: AnswerType?
    public var samples = 1
    public var parallel: Int?
    /// 16, 8 or 4 bits (`--weights`); nil runs the model's weights as stored (16-bit, GPTQ, or
    /// a GGUF's quantized linears).
    public var weights: Int?
    public var kv = "full"
    public var thinkingBudget: Int?
    public var budgetMode = BudgetMode.standard
    public var answerTokens = 256
    public var maxTokens: Int?
    public var temperature = 0.6
    public var topP = 0.95
    public var topK = 20
    public var seed: UInt64 = 0
    public var questions: Int?
    public var gpqaSeed: UInt64 = 0
    /// nil: the local engine.
    public var backend: RemoteBackend?
  }

  public let points: [Point]
  /// The axes' names in file order (for tables).
  public let axes: [String]

  static let keys: Set<String> = [
    "model", "models", "task", "answer_type", "samples", "parallel", "weights", "kv", "thinking_budget",
    "budget_mode", "answer_tokens", "max_tokens", "temperature", "top_p", "top_k", "seed", "questions", "gpqa_seed", "backend",
  ]

  /// Scenarios a grid may have unless the caller raises the limit: the paper's whole design
  /// (1,728: `examples/paper-grid.yaml`) several times over, far fewer than a typo such as a
  /// 1000-entry list can make.
  public static let defaultMaxScenarios = 10_000

  public static func load(path: String, maxScenarios: Int = defaultMaxScenarios) throws -> SweepGrid {
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
      throw EvalError.unreadableFile(path: path, reason: "no such file, or not UTF-8")
    }
    return try parse(text, path: path, maxScenarios: maxScenarios)
  }

  /// Parses a grid; one with more than `maxScenarios` points is refused before any is built.
  ///
  /// A file may hold several YAML documents (separated by `---` lines): each is a grid of its own
  /// and the sweep runs them one after the other, so a design that is not one product (the
  /// paper's: serial scaling on two tasks, G on one, KV policies at 8 samples) fits one file.
  public static func parse(_ text: String, path: String, maxScenarios: Int = defaultMaxScenarios) throws -> SweepGrid {
    var documents: [[Substring]] = [[]]
    for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
      if line == "---" || line.hasPrefix("--- ") || line.hasPrefix("---\t") {
        // What follows the marker on its line (`--- {model: a, task: t}`) starts the document.
        let rest = line.dropFirst(3).drop { $0 == " " || $0 == "\t" }
        documents.append(rest.isEmpty ? [] : [rest])
      } else {
        documents[documents.count - 1].append(line)
      }
    }
    let parts = documents.map { $0.joined(separator: "\n") }.filter { document in
      document.split(whereSeparator: \.isNewline).contains { line in
        let content = line.trimmingCharacters(in: .whitespaces)
        return !content.isEmpty && !content.hasPrefix("#")
      }
    }
    guard !parts.isEmpty else { throw EvalError.invalidGrid(path: path, reason: "the grid is empty") }
    var points: [Point] = []
    var axes: [String] = []
    for (index, part) in parts.enumerated() {
      let label = parts.count == 1 ? path : "\(path) (document \(index + 1))"
      let grid = try parseDocument(part, path: label, maxScenarios: maxScenarios, before: points.count)
      points += grid.points
      axes += grid.axes.filter { !axes.contains($0) }
    }
    return SweepGrid(points: points, axes: axes)
  }

  /// One YAML document of a grid, after documents of `before` scenarios.
  static func parseDocument(_ text: String, path: String, maxScenarios: Int, before: Int) throws -> SweepGrid {
    func fail(_ reason: String) -> EvalError { .invalidGrid(path: path, reason: reason) }
    let root: Any?
    do {
      // Checked on the composed tree before Yams converts it (both found by fuzzing): Yams
      // (6.2.2) traps on a mapping key that is a list or a mapping (`? [a]: b`), and aliases
      // of aliases expand exponentially (a "billion laughs" grid of 300 bytes).
      if let node = try Yams.compose(yaml: text) {
        var budget = Self.maxNodes
        if let problem = Self.structureProblem(node, budget: &budget) { throw fail(problem) }
      }
      root = try Yams.load(yaml: text)
    } catch let error as EvalError {
      throw error
    } catch {
      throw fail("not valid YAML (\(String(describing: error).split(separator: "\n").first ?? ""))")
    }
    guard let mapping = root as? [String: Any] else { throw fail("the grid must be a YAML mapping of keys to values or lists") }
    // Yams gives no order for a mapping: read the key order from the text for the axes' order.
    let order = text.split { $0 == "\n" || $0 == "\r\n" }.compactMap { line -> String? in
      guard let first = line.first, first != " ", first != "#", first != "-", let colon = line.firstIndex(of: ":") else { return nil }
      return String(line[..<colon]).trimmingCharacters(in: .whitespaces)
    }
    let names = mapping.keys.sorted { (order.firstIndex(of: $0) ?? .max, $0) < (order.firstIndex(of: $1) ?? .max, $1) }
    for name in names where !keys.contains(name) {
      throw fail("unknown key \"\(name)\" (known: \(keys.sorted().joined(separator: ", ")))")
    }
    if mapping["model"] != nil && mapping["models"] != nil { throw fail("give \"model\" or \"models\", not both") }
    guard mapping["model"] != nil || mapping["models"] != nil else { throw fail("no \"model\"") }
    guard mapping["task"] != nil else { throw fail("no \"task\"") }

    var axes: [(String, [Any])] = []
    for name in names {
      guard let value = mapping[name] else { continue }
      if let list = value as? [Any] {
        guard !list.isEmpty else { throw fail("\"\(name)\" is an empty list") }
        axes.append((name == "models" ? "model" : name, list))
      } else {
        axes.append((name == "models" ? "model" : name, [value]))
      }
    }
    var count = 1
    for (_, values) in axes {
      let (product, overflow) = count.multipliedReportingOverflow(by: values.count)
      count = overflow ? .max : product
    }
    if count > maxScenarios - before {
      let sizes = axes.filter { $0.1.count > 1 }.map { "\($0.0) \($0.1.count)" }.joined(separator: " × ")
      let total = count == .max ? "more than \(Int.max)" : String(before + count)
      throw fail("the grid has \(total) scenarios (\(before > 0 ? "\(before) before this document, " : "")\(sizes)), more than the limit of \(maxScenarios); raise it with --max-scenarios if you mean it")
    }
    var points: [Point] = [Point(model: "", task: "")]
    for (name, values) in axes {
      var next: [Point] = []
      for point in points {
        for value in values {
          var p = point
          try assign(value, to: name, of: &p, fail: fail)
          next.append(p)
        }
      }
      points = next
    }
    for p in points {
      if let parallel = p.parallel, parallel > p.samples {
        throw fail("parallel \(parallel) exceeds samples \(p.samples) (G samples are drawn from the samples of a question)")
      }
      if p.budgetMode == .paper, let budget = p.thinkingBudget, let maxTokens = p.maxTokens, maxTokens < budget {
        throw fail("max_tokens \(maxTokens) is below thinking_budget \(budget): budget_mode paper thinks until the budget (raise max_tokens, or use budget_mode cap)")
      }
    }
    return SweepGrid(points: points, axes: axes.filter { $0.1.count > 1 }.map(\.0))
  }

  /// Values a grid may hold once aliases are expanded (a real grid has a few hundred).
  static let maxNodes = 100_000

  /// Why `node` cannot be a grid — a mapping key that is not a plain value, or more than
  /// `budget` values once aliases are expanded — else nil. Stops as soon as the budget is spent,
  /// so the walk itself stays cheap on an exponential tree.
  static func structureProblem(_ node: Node, budget: inout Int) -> String? {
    budget -= 1
    guard budget >= 0 else { return "the grid expands to more than \(maxNodes) values (aliases of aliases?)" }
    switch node {
    case .scalar: return nil
    case .alias: return "unexpanded YAML alias"
    case .sequence(let sequence):
      for item in sequence {
        if let problem = structureProblem(item, budget: &budget) { return problem }
      }
      return nil
    case .mapping(let mapping):
      for (key, value) in mapping {
        switch key {
        case .sequence: return "a mapping key must be a plain value, not a list"
        case .mapping: return "a mapping key must be a plain value, not a mapping"
        case .alias: return "a mapping key must be a plain value, not an alias"
        case .scalar: break
        }
        if let problem = structureProblem(value, budget: &budget) { return problem }
      }
      return nil
    }
  }

  static let backendKeys: Set<String> = ["endpoint", "endpoints", "model", "concurrency", "timeout", "retries"]

  /// `local` → nil; a mapping → a remote backend.
  static func backend(_ value: Any, fail: (String) -> EvalError) throws -> RemoteBackend? {
    if let name = value as? String, name == "local" { return nil }
    guard let mapping = value as? [String: Any] else {
      throw fail("\"backend\" must be local or a mapping {endpoint: URL, model: NAME}, found \(value)")
    }
    for key in mapping.keys where !backendKeys.contains(key) {
      throw fail("unknown backend key \"\(key)\" (known: \(backendKeys.sorted().joined(separator: ", ")))")
    }
    if mapping["endpoint"] != nil && mapping["endpoints"] != nil { throw fail("backend: give \"endpoint\" or \"endpoints\", not both") }
    let raw = mapping["endpoint"] ?? mapping["endpoints"]
    let endpoints: [String]
    if let url = raw as? String {
      endpoints = [url]
    } else if let urls = raw as? [Any], let strings = urls as? [String], !strings.isEmpty {
      endpoints = strings
    } else {
      throw fail("a remote backend needs \"endpoint\": a URL or a list of URLs")
    }
    guard let model = mapping["model"] as? String, !model.isEmpty else {
      throw fail("a remote backend needs \"model\": the name the server serves")
    }
    func integer(_ key: String, default value: Int) throws -> Int {
      guard let raw = mapping[key] else { return value }
      guard let number = raw as? Int else { throw fail("backend \"\(key)\" must be an integer, found \(raw)") }
      return number
    }
    let timeout: Double
    switch mapping["timeout"] {
    case nil: timeout = RemoteBackend.defaultTimeoutSeconds
    case let seconds as Int: timeout = Double(seconds)
    case let seconds as Double: timeout = seconds
    case let other?: throw fail("backend \"timeout\" must be a number of seconds, found \(other)")
    }
    do {
      return try RemoteBackend(
        endpoints: endpoints, model: model, concurrency: try integer("concurrency", default: RemoteBackend.defaultConcurrency),
        timeoutSeconds: timeout, retries: try integer("retries", default: RemoteBackend.defaultRetries))
    } catch let error as EvalError {
      throw fail("backend: \(error.description)")
    }
  }

  static func assign(_ value: Any, to name: String, of p: inout Point, fail: (String) -> EvalError) throws {
    func int(_ range: ClosedRange<Int>) throws -> Int {
      guard let n = value as? Int, range.contains(n) else { throw fail("\"\(name)\" must be an integer in \(range.lowerBound)...\(range.upperBound), found \(value)") }
      return n
    }
    func string() throws -> String {
      if let s = value as? String, !s.isEmpty { return s }
      throw fail("\"\(name)\" must be a non-empty string, found \(value)")
    }
    func number(_ range: ClosedRange<Double>) throws -> Double {
      let n = (value as? Double) ?? (value as? Int).map(Double.init)
      guard let n, range.contains(n) else { throw fail("\"\(name)\" must be a number in \(range.lowerBound)...\(range.upperBound), found \(value)") }
      return n
    }
    switch name {
    case "model": p.model = try string()
    case "task": p.task = try string()
    case "answer_type":
      guard let type = AnswerType(rawValue: try string()) else { throw fail("\"answer_type\" must be integer, letter, number or string") }
      p.answerType = type
    case "samples": p.samples = try int(1...4096)
    case "parallel": p.parallel = try int(1...4096)
    case "weights":
      guard let bits = value as? Int, [4, 8, 16].contains(bits) else { throw fail("\"weights\" must be 16, 8 or 4, found \(value)") }
      p.weights = bits
    case "kv": p.kv = try string()
    case "thinking_budget": p.thinkingBudget = try int(1...(1 << 24))
    case "budget_mode":
      guard let mode = BudgetMode(rawValue: try string()) else { throw fail("\"budget_mode\" must be paper, cap or none, found \(value)") }
      p.budgetMode = mode
    case "answer_tokens": p.answerTokens = try int(0...(1 << 24))
    case "max_tokens": p.maxTokens = try int(1...(1 << 24))
    case "temperature": p.temperature = try number(0...100)
    case "top_p": p.topP = try number(0.000001...1)
    case "top_k": p.topK = try int(0...1_000_000)
    case "seed": p.seed = UInt64(try int(0...Int.max))
    case "gpqa_seed": p.gpqaSeed = UInt64(try int(0...Int.max))
    case "questions": p.questions = try int(1...1_000_000)
    case "backend": p.backend = try backend(value, fail: fail)
    default: throw fail("unknown key \"\(name)\"")
    }
  }
}
