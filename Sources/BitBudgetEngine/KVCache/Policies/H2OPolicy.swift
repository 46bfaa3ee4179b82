/// H2O (heavy-hitter oracle): keeps the `recent` newest tokens and the `budget − recent` older
/// ones that have received the most attention so far — per KV head, the attention weights every
/// query gave the key since it entered the cache, summed over the queries and the group's query
/// heads (`H2OKVCache_LayerWise` of the H2O repository, which sums over the queries of each
/// head). The totals of kept keys carry over a compression; new keys start from their own
/// queries' weights. Kept rows stay in cache order.
///
/// The reference evicts one token at every step once the cache holds `budget`; here the cache
/// grows to `budget + buffer` and is cut back every `buffer` steps, as the other policies
/// (`buffer=1` is the reference's schedule). The reference supports multi-head attention only;
/// with grouped queries a key's total sums its group's heads.
public struct H2OPolicy: EvictionPolicy, Equatable {
  public static let name = "h2o"
  public static let form = "h2o:B[,recent=B/2,buffer=128]"
  public static let conformanceSpecs = ["h2o:40,buffer=16", "h2o:64,recent=8"]

  public var budget: Int
  /// The newest tokens always kept.
  public var recent: Int
  /// Decode steps between compressions.
  public var buffer = 128

  public init(budget: Int, recent: Int? = nil) {
    self.budget = budget
    self.recent = recent ?? budget / 2
  }

  public init(budget: Int, options: inout KVSpecOptions) throws {
    self.init(budget: budget)
    recent = try options.int("recent", default: recent, in: 0...budget)
    buffer = try options.int("buffer", default: buffer, in: 1...1 << 20)
  }

  public var description: String { "h2o:\(budget),recent=\(recent),buffer=\(buffer)" }
  public var interval: Int { buffer }
  public var accumulatesAttention: Bool { true }

  public func keptRows(_ request: EvictionRequest) -> [[Int]] {
    guard let totals = request.attentionTotals else { preconditionFailure("H2O ranks keys by their attention totals") }
    let candidates = request.length - recent
    return (0..<request.kvHeads).map { head in
      let score = totals + head * request.length
      let ranked = (0..<candidates).sorted { score[$0] != score[$1] ? score[$0] > score[$1] : $0 < $1 }
      return ranked.prefix(budget - recent).sorted() + Array(candidates..<request.length)
    }
  }
}
