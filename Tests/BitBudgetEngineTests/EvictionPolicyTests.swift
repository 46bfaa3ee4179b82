@testable import BitBudgetEngine
import BitBudgetTestSupport
import Foundation
import Testing

/// R-KV and StreamingLLM selections against R-KV's own code, SnapKV's against kvpress's
/// (Tests/Fixtures/kv; `scripts/make-kvpress-fixtures.py`): kept positions per KV head and the
/// gathered keys and values.
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

  static let snapKVFixtures = [
    "snapkv-gqa2-L200-b64-w8-k7", "snapkv-gqa4-L300-b128-w32-k7", "snapkv-mha-L160-b48-w16-k5", "snapkv-gqa2-L97-b40-w8-k1",
  ]

  static func load(_ name: String) throws -> Case {
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/kv/\(name).json")
    return try JSONDecoder().decode(Case.self, from: Data(contentsOf: url))
  }

  static func policy(_ reference: Case) -> any EvictionPolicy {
    if reference.policy == "streaming" { return StreamingLLMPolicy(budget: reference.budget, sinks: reference.sinks ?? 4) }
    if reference.policy == "snapkv" {
      var snap = SnapKVPolicy(budget: reference.budget)
      snap.window = reference.window ?? snap.window
      snap.kernel = reference.kernel ?? snap.kernel
      return snap
    }
    var parameters = RKVPolicy(budget: reference.budget)
    parameters.window = reference.window ?? 8
    parameters.kernel = reference.kernel ?? 7
    parameters.lambda = reference.lambda ?? 0.1
    parameters.threshold = reference.threshold ?? 0.5
    return parameters
  }

  /// `policy.keptRows` over arrays; nil below the budget, where the cache does not call it.
  static func keptRows(
    _ policy: any EvictionPolicy, keys: [Float], length: Int, kvHeads: Int, headDim: Int, queries: [Float]?, queryHeads: Int
  ) -> [[Int]]? {
    guard length >= policy.budget else { return nil }
    return keys.withUnsafeBufferPointer { k in
      let run = { (q: UnsafePointer<Float>?) in
        policy.keptRows(
          EvictionRequest(keys: k.baseAddress!, length: length, kvHeads: kvHeads, headDim: headDim, queries: q, queryHeads: queryHeads))
      }
      guard let queries else { return run(nil) }
      return queries.withUnsafeBufferPointer { run($0.baseAddress) }
    }
  }

  @Test(arguments: [
    "rkv-at-budget-L64-b64", "rkv-below-budget-L40-b64", "rkv-gqa2-L200-b64", "rkv-gqa4-L300-b128-lam007",
    "rkv-mha-L160-b48", "streaming-L100-b32-s4", "streaming-L20-b32-s4",
  ] + Self.snapKVFixtures)
  func reproducesTheReference(_ name: String) throws {
    let reference = try Self.load(name)
    let (heads, length, d) = (reference.kv_heads, reference.length, reference.head_dim)
    let kept = Self.keptRows(
      Self.policy(reference), keys: reference.keys, length: length, kvHeads: heads, headDim: d,
      queries: reference.window_queries, queryHeads: reference.query_heads ?? heads)
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

/// R-KV's "most recent similar key" search (`RKVScorer.lastSimilar`, 8 rows per tile, early exit
/// per tile) against the definition scanned row by row, on unit keys where some rows have planted
/// near-copies (cosine ≈ 0.9) old and recent and the rest resemble nothing (|cosine| ≲ 0.3, far
/// from the 0.5 threshold, so rounding cannot flip a decision).
@Suite struct RKVSimilarityScanTests {
  @Test(arguments: [1, 7, 8, 9, 40, 130, 301])
  func matchesTheRowByRowDefinition(length: Int) {
    let d = 64
    var random = TestRandom(seed: UInt64(length))
    var keys = [Float](repeating: 0, count: length * d)
    for t in 0..<length {
      // Every third row copies an earlier row (a random one) with a little noise.
      let copies = t > 0 && t % 3 == 0 ? Int(random.next() % UInt64(t)) : nil
      for x in 0..<d {
        keys[t * d + x] = copies.map { keys[$0 * d + x] + 0.15 * random.signedUnit() } ?? random.signedUnit()
      }
    }
    for t in 0..<length {
      let norm = (0..<d).reduce(Float(0)) { $0 + keys[t * d + $1] * keys[t * d + $1] }.squareRoot()
      for x in 0..<d { keys[t * d + x] /= norm }
    }
    let padded = (length + 31) / 32 * 32
    var columns = [Float](repeating: 0, count: d * padded)
    for t in 0..<length { for x in 0..<d { columns[x * padded + t] = keys[t * d + x] } }
    let fast = keys.withUnsafeBufferPointer { k in
      columns.withUnsafeBufferPointer { c in
        RKVScorer.lastSimilar(normalized: k.baseAddress!, columns: c.baseAddress!, padded: padded, length: length, d: d, threshold: 0.5)
      }
    }
    func cosine(_ i: Int, _ j: Int) -> Double {
      var sum = 0.0
      for x in 0..<d { sum += Double(keys[i * d + x]) * Double(keys[j * d + x]) }
      return sum
    }
    let expected: [Int] = (0..<length).map { i in
      (0..<length).reversed().first { j in j != i && cosine(i, j) > 0.5 } ?? -1
    }
    #expect(fast == expected)
    #expect(length < 4 || expected.contains { $0 >= 0 }, "some rows should have a similar key")
  }

  /// Marks from an earlier scan let isolated rows skip settled keys; the result is the
  /// definition's all the same. The earlier scan sees 150 keys; the later one keeps 120 of them
  /// in another order (isolated ones first, so that whole tiles are isolated; 16 changed: new
  /// values), then 60 new keys, some near-copies of isolated ones.
  @Test func marksFromAnEarlierScanGiveTheSameResult() {
    let d = 64
    var random = TestRandom(seed: 5)
    func unit(_ v: [Float]) -> [Float] {
      let norm = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
      return v.map { $0 / norm }
    }
    func randomKey() -> [Float] { unit((0..<d).map { _ in random.signedUnit() }) }
    func scan(_ keys: [[Float]], marks: [KeyMarks]?) -> [Int] {
      let length = keys.count
      let padded = (length + 31) / 32 * 32
      let normalized = keys.flatMap { $0 }
      var columns = [Float](repeating: 0, count: d * padded)
      for t in 0..<length { for x in 0..<d { columns[x * padded + t] = keys[t][x] } }
      return normalized.withUnsafeBufferPointer { k in
        columns.withUnsafeBufferPointer { c in
          if let marks {
            return marks.withUnsafeBufferPointer { m in
              RKVScorer.lastSimilar(
                normalized: k.baseAddress!, columns: c.baseAddress!, padded: padded, length: length, d: d, threshold: 0.5,
                marks: m.baseAddress)
            }
          }
          return RKVScorer.lastSimilar(normalized: k.baseAddress!, columns: c.baseAddress!, padded: padded, length: length, d: d, threshold: 0.5)
        }
      }
    }
    var earlier = (0..<150).map { _ in randomKey() }
    for t in stride(from: 10, to: 150, by: 7) {
      earlier[t] = unit(zip(earlier[t - 10], (0..<d).map { _ in random.signedUnit() }).map { $0 + 0.15 * $1 })
    }
    let isolatedBefore = scan(earlier, marks: nil).map { $0 < 0 }
    var kept = Array((0..<150).shuffled(using: &random).prefix(120))
    kept = kept.filter { isolatedBefore[$0] } + kept.filter { !isolatedBefore[$0] }
    var later = kept.map { earlier[$0] }
    var marks = kept.map { isolatedBefore[$0] ? KeyMarks([.settled, .isolated]) : .settled }
    for slot in 40..<56 {
      later[slot] = randomKey()
      marks[slot] = []
    }
    kept = kept.filter { isolatedBefore[$0] }
    #expect(kept.count > 80)
    // A changed key that now resembles an isolated one.
    later[41] = unit(zip(earlier[kept[1]], (0..<d).map { _ in random.signedUnit() }).map { $0 + 0.15 * $1 })
    for n in 0..<60 {
      later.append(n % 4 == 0 ? unit(zip(earlier[kept[n]], (0..<d).map { _ in random.signedUnit() }).map { $0 + 0.15 * $1 }) : randomKey())
      marks.append(KeyMarks())
    }
    let expected: [Int] = later.indices.map { i in
      later.indices.reversed().first { j in
        j != i && zip(later[i], later[j]).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } > 0.5
      } ?? -1
    }
    #expect(marks.count == later.count)
    #expect(scan(later, marks: marks) == expected)
    #expect(scan(later, marks: nil) == expected)
    // Isolated rows find new near-copies in the last block and in earlier ones, and changed keys.
    #expect(expected[1] == 41)
    #expect(later.indices.contains { marks[$0].contains(.isolated) && expected[$0] >= 160 })
    #expect(later.indices.contains { marks[$0].contains(.isolated) && (120..<160).contains(expected[$0]) })
  }
}
