/// StreamingLLM as R-KV's codebase runs it: the first `sinks` tokens (attention sinks) and the
/// newest `budget − sinks`, the same for every head. Scoring costs nothing; it needs no queries.
public struct StreamingLLMPolicy: EvictionPolicy, Equatable {
  public static let name = "streaming"
  public static let form = "streaming:B[,sinks=4]"
  public static let conformanceSpecs = ["streaming:40", "streaming:48,sinks=2"]

  public var budget: Int
  public var sinks: Int

  public init(budget: Int, sinks: Int = 4) {
    self.budget = budget
    self.sinks = sinks
  }

  public init(budget: Int, options: inout KVSpecOptions) throws {
    self.init(budget: budget, sinks: try options.int("sinks", default: 4, in: 0...budget - 1))
  }

  public var description: String { "streaming:\(budget),sinks=\(sinks)" }

  public func keptRows(_ request: EvictionRequest) -> [[Int]] {
    let kept = Array(0..<sinks) + Array((request.length - (budget - sinks))..<request.length)
    return Array(repeating: kept, count: request.kvHeads)
  }
}
