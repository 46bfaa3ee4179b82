import BitBudgetEngine
import BitBudgetTestSupport
import Foundation
import Testing

/// R-KV and StreamingLLM selections against R-KV's own code (Tests/Fixtures/kv, copied from
/// ../shared/fixtures/kv): kept positions per KV head and the gathered keys and values.
@Suite struct EvictionPolicyTests {
  struct Case: Decodable {
    let policy: String
    let budget: Int
    let window: Int?
    let kernel: Int?
    let lambda: Float?
    let threshold: Float?
    let sinks: Int?
    let query_heads: Int?
    let kv_heads: Int
    let length: Int
    let head_dim: Int
    let keys: [Float]
    let values: [Float]
    let window_queries: [Float]?
    let kept_positions: [[Int]]?
    let out_keys: [Float]
    let out_values: [Float]
  }

  static func load(_ name: String) throws -> Case {
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/kv/\(name).json")
    return try JSONDecoder().decode(Case.self, from: Data(contentsOf: url))
  }

  static func policy(_ reference: Case) -> EvictionPolicy {
    if reference.policy == "streaming" { return .streaming(budget: reference.budget, sinks: reference.sinks ?? 4) }
    var parameters = RKVParameters(budget: reference.budget)
    parameters.window = reference.window ?? 8
    parameters.kernel = reference.kernel ?? 7
    parameters.lambda = reference.lambda ?? 0.1
    parameters.threshold = reference.threshold ?? 0.5
    return .rkv(parameters)
  }

  @Test(arguments: [
    "rkv-at-budget-L64-b64", "rkv-below-budget-L40-b64", "rkv-gqa2-L200-b64", "rkv-gqa4-L300-b128-lam007",
    "rkv-mha-L160-b48", "streaming-L100-b32-s4", "streaming-L20-b32-s4",
  ])
  func reproducesTheReference(_ name: String) throws {
    let reference = try Self.load(name)
    let (heads, length, d) = (reference.kv_heads, reference.length, reference.head_dim)
    let kept = Self.policy(reference).keptRows(
      keys: reference.keys, length: length, kvHeads: heads, headDim: d, queries: reference.window_queries,
      queryHeads: reference.query_heads ?? heads)
    let rows = kept ?? Array(repeating: Array(0..<length), count: heads)
    if let expected = reference.kept_positions {
      #expect(rows == expected, "kept positions")
    }
    // Gathered outputs, row by row, equal the reference's (exact copies of input rows).
    let perHead = rows[0].count
    #expect(reference.out_keys.count == heads * perHead * d)
    var keys: [Float] = [], values: [Float] = []
    for h in 0..<heads {
      for row in rows[h] {
        keys += reference.keys[((h * length + row) * d)..<((h * length + row + 1) * d)]
        values += reference.values[((h * length + row) * d)..<((h * length + row + 1) * d)]
      }
    }
    #expect(keys == reference.out_keys && values == reference.out_values)
  }
}
