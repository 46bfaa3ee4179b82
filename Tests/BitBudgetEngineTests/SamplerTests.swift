import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// The sampler's draws against exact probabilities computed here from the definitions (top-p as
/// "the smallest set of most likely tokens whose mass reaches p", min-p against the top
/// probability), with a chi-square test that a wrong filter or a biased draw fails.
@Suite struct SamplerTests {
  static let logits: [Float] = [2.0, 1.5, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, 3.0, 0.25, -3.0]

  /// Exact probabilities after temperature → top-k → top-p → min-p.
  static func expected(_ logits: [Float], _ p: SamplingParameters) -> [Int: Double] {
    if p.temperature == 0 { return [logits.indices.max { logits[$0] < logits[$1] }!: 1] }
    let scaled = logits.map { Double($0) / Double(p.temperature) }
    // Among equal logits transformers' filters drop lower ids first (checked against its warpers
    // in `tiesFollowTransformers`).
    var order = Array(scaled.indices).sorted { scaled[$0] != scaled[$1] ? scaled[$0] > scaled[$1] : $0 > $1 }
    if p.topK > 0 && p.topK < order.count {
      let kth = scaled[order[p.topK - 1]]
      order = order.filter { scaled[$0] >= kth }
    }
    func probabilities(_ tokens: [Int]) -> [Double] {
      let top = tokens.map { scaled[$0] }.max()!
      let weights = tokens.map { exp(scaled[$0] - top) }
      let total = weights.reduce(0, +)
      return weights.map { $0 / total }
    }
    if p.topP < 1 {
      let probs = probabilities(order)
      var mass = 0.0
      var keep = 0
      while keep < order.count {
        mass += probs[keep]
        keep += 1
        if mass >= Double(p.topP) { break }
      }
      order = Array(order.prefix(keep))
    }
    if p.minP > 0 {
      let probs = probabilities(order)
      order = zip(order, probs).filter { $0.1 >= Double(p.minP) * probs[0] }.map(\.0)
    }
    return Dictionary(uniqueKeysWithValues: zip(order, probabilities(order)))
  }

  /// Chi-square critical value at p = 0.001 (Wilson–Hilferty).
  static func critical(_ degrees: Int) -> Double {
    let k = Double(degrees)
    let z = 3.09
    return k * pow(1 - 2 / (9 * k) + z * (2 / (9 * k)).squareRoot(), 3)
  }

  static func check(_ parameters: SamplingParameters, logits: [Float] = logits, draws: Int = 60_000) throws {
    let expected = Self.expected(logits, parameters)
    var sampler = Sampler(parameters: parameters)
    var random = SampleRandom(seed: 1234, stream: 5)
    var counts = [Int: Int]()
    try logits.withUnsafeBufferPointer { buffer in
      for _ in 0..<draws { counts[try sampler.sample(buffer, random: &random), default: 0] += 1 }
    }
    for token in counts.keys {
      #expect(expected[token] != nil, "\(parameters): drew token \(token), which the filters remove")
    }
    if expected.count == 1 {
      #expect(counts[expected.keys.first!] == draws)
      return
    }
    var chi = 0.0
    for (token, probability) in expected {
      let mean = probability * Double(draws)
      let observed = Double(counts[token, default: 0])
      chi += (observed - mean) * (observed - mean) / mean
    }
    #expect(chi < critical(expected.count - 1), "\(parameters): chi-square \(chi) over \(expected.count) tokens")
  }

  @Test func temperatureOnly() throws {
    try Self.check(SamplingParameters(temperature: 1))
    try Self.check(SamplingParameters(temperature: 0.6))
    try Self.check(SamplingParameters(temperature: 2.5))
  }

  @Test func topKKeepsTies() throws {
    // The 3rd and 4th largest logits tie (1.5): top-k 3 keeps both.
    let parameters = SamplingParameters(temperature: 1, topK: 3)
    #expect(Self.expected(Self.logits, parameters).count == 4)
    try Self.check(parameters)
    try Self.check(SamplingParameters(temperature: 0.7, topK: 5))
  }

  @Test func topPAndMinP() throws {
    try Self.check(SamplingParameters(temperature: 1, topP: 0.8))
    try Self.check(SamplingParameters(temperature: 0.6, topP: 0.95))
    try Self.check(SamplingParameters(temperature: 1, minP: 0.1))
    try Self.check(SamplingParameters(temperature: 1.3, minP: 0.05))
    try Self.check(.qwen3Thinking)
    try Self.check(SamplingParameters(temperature: 0.9, topK: 6, topP: 0.7, minP: 0.2))
  }

  /// Kept sets that transformers' TopPLogitsWarper / TopKLogitsWarper / MinPLogitsWarper give on
  /// tied logits (computed with transformers 5.24).
  @Test func tiesFollowTransformers() throws {
    let cases: [([Float], SamplingParameters, Set<Int>)] = [
      ([log(0.25), log(0.5), log(0.25)], SamplingParameters(temperature: 1, topP: 0.6), [1, 2]),
      ([Float](repeating: 0, count: 10), SamplingParameters(temperature: 1, topP: 0.35), [6, 7, 8, 9]),
      ([1, 3, 3, 0], SamplingParameters(temperature: 1, topK: 1), [1, 2]),
      ([log(0.4), log(0.2), log(0.2), log(0.1)], SamplingParameters(temperature: 1, minP: 0.45), [0, 1, 2]),
    ]
    for (logits, parameters, expected) in cases {
      var sampler = Sampler(parameters: parameters)
      let kept = try logits.withUnsafeBufferPointer { try sampler.distribution($0) }
      #expect(Set(kept.map(\.token)) == expected, "\(parameters) on \(logits)")
      #expect(Set(Self.expected(logits, parameters).keys) == expected)
    }
  }

  @Test func tinyTemperatureIsArgmax() throws {
    var sampler = Sampler(parameters: SamplingParameters(temperature: 1e-30))
    var random = SampleRandom(seed: 2)
    for _ in 0..<100 {
      #expect(try Self.logits.withUnsafeBufferPointer { try sampler.sample($0, random: &random) } == 9)
    }
  }

  @Test func edgeCases() throws {
    // top-k 1 and temperature 0 are greedy; top-p 1 filters nothing; equal logits are uniform.
    try Self.check(SamplingParameters(temperature: 1, topK: 1), draws: 2_000)
    try Self.check(SamplingParameters(temperature: 0), draws: 2_000)
    #expect(Self.expected(Self.logits, SamplingParameters(temperature: 1, topP: 1)).count == Self.logits.count)
    try Self.check(SamplingParameters(temperature: 1, topP: 1))
    try Self.check(SamplingParameters(temperature: 0.8), logits: [Float](repeating: 0.3, count: 10))
    // A tiny top-p keeps the single most likely token.
    try Self.check(SamplingParameters(temperature: 1, topP: 0.01), draws: 2_000)
    var sampler = Sampler(parameters: SamplingParameters(temperature: 1, topK: 4))
    var random = SampleRandom(seed: 1)
    #expect(throws: EngineError.self) {
      try [Float(1), .nan, 0].withUnsafeBufferPointer { try sampler.sample($0, random: &random) }
    }
  }

  /// A +inf logit takes all the probability (shared among tied ones), and logits that are all
  /// −inf are uniform. Regression: every probability was NaN, and the draw fell through to the
  /// least likely kept token.
  @Test func infiniteLogitsFollowTheSoftmaxLimit() throws {
    let cases: [([Float], SamplingParameters, Set<Int>)] = [
      ([.infinity, 0, 0], SamplingParameters(temperature: 1), [0]),
      ([0, .infinity], SamplingParameters(temperature: 0.05, topP: 0.02), [1]),
      ([1, .infinity, -.infinity, .infinity, 3], SamplingParameters(temperature: 0.7, topK: 3, minP: 0.1), [1, 3]),
      ([-.infinity, -.infinity, -.infinity], SamplingParameters(temperature: 1), [0, 1, 2]),
    ]
    for (logits, parameters, expected) in cases {
      var sampler = Sampler(parameters: parameters)
      let kept = try logits.withUnsafeBufferPointer { try sampler.distribution($0) }
      let drawable = Set(kept.filter { $0.probability > 0 }.map(\.token))
      #expect(drawable == expected, "\(logits)")
      #expect(kept.allSatisfy { !$0.probability.isNaN && ($0.probability == 0 || abs($0.probability - 1 / Double(expected.count)) < 1e-12) })
      var random = SampleRandom(seed: 11)
      var drawn = Set<Int>()
      for _ in 0..<200 { drawn.insert(try logits.withUnsafeBufferPointer { try sampler.sample($0, random: &random) }) }
      #expect(drawn == expected, "\(logits)")
    }
  }

  @Test func randomStreamsAreReproducibleAndDistinct() {
    var a = SampleRandom(seed: 9, stream: 0), b = SampleRandom(seed: 9, stream: 0), c = SampleRandom(seed: 9, stream: 1)
    let first = (0..<8).map { _ in a.next() }
    #expect(first == (0..<8).map { _ in b.next() })
    #expect(first != (0..<8).map { _ in c.next() })
    var unit = SampleRandom(seed: 3)
    for _ in 0..<1000 {
      let u = unit.unit()
      #expect(u >= 0 && u < 1)
    }
  }
}
