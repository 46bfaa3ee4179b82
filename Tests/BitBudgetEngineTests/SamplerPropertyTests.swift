import BitBudgetTestSupport
import Foundation
import PropertyBased
import Testing

@testable import BitBudgetEngine

/// Properties of the sampler over random logits and parameters: a draw is reproducible from its
/// seed, never lands outside the kept set, and its kept set and probabilities are the
/// definitions' (`SamplerTests.expected`, written from transformers' warpers); greedy is the
/// first argmax; tiny temperatures concentrate on the maxima; the generator's vocabulary limit
/// holds; special values (±inf, NaN, all-equal logits) neither crash nor yield garbage.
///
/// Probabilities are compared within 1e-9: both sides compute softmaxes in Double over at most 40
/// logits, so they differ by a few ulps, far below the gap between any two random logits' shares.
@Suite struct SamplerPropertyTests {
  /// Logits drawn from a small set (so ties at the top-k boundary and among maxima are common)
  /// or from a continuous range.
  static let finiteLogits = zip(Gen.int(in: 0...3), Gen.float(in: -8...8))
    .map { kind, value in kind == 0 ? Float(Int(value) / 2) : value }
    .array(of: 1...40)

  /// Temperature, top-k, top-p and min-p, each filter on about half of the time. Top-p and min-p
  /// are continuous, so a cumulative mass landing exactly on the boundary (where the two
  /// formulations may round differently) has probability zero.
  static let parameters = zip(
    Gen.float(in: 0.05...3), Gen.int(in: -8...12), Gen.float(in: 0.02...1.6), Gen.float(in: -0.6...0.5)
  ).map { temperature, topK, topP, minP in
    SamplingParameters(temperature: temperature, topK: max(0, topK), topP: min(1, topP), minP: max(0, minP))
  }

  static let seeds = zip(Gen.uint64(in: 0...UInt64.max), Gen.uint64(in: 0...1000))

  @Test func sameSeedSameTokens() async throws {
    await propertyCheck(count: 150, input: Self.finiteLogits, Self.parameters, Self.seeds) { logits, parameters, seed in
      let draw = { (sampler: inout Sampler) throws -> [Int] in
        var random = SampleRandom(seed: seed.0, stream: seed.1)
        return try logits.withUnsafeBufferPointer { buffer in try (0..<6).map { _ in try sampler.sample(buffer, random: &random) } }
      }
      var first = Sampler(parameters: parameters)
      let tokens = try draw(&first)
      // The same sampler again (its reused buffers must not carry state) and a fresh one.
      #expect(try draw(&first) == tokens)
      var second = Sampler(parameters: parameters)
      #expect(try draw(&second) == tokens)
    }
  }

  @Test func drawsStayInTheKeptSetWithTheDefinitionsProbabilities() async throws {
    await propertyCheck(count: 200, input: Self.finiteLogits, Self.parameters, Self.seeds) { logits, parameters, seed in
      let expected = SamplerTests.expected(logits, parameters)
      var sampler = Sampler(parameters: parameters)
      let kept = try logits.withUnsafeBufferPointer { try sampler.distribution($0) }
      #expect(Set(kept.map(\.token)) == Set(expected.keys), "kept set")
      for (token, probability) in kept {
        #expect(abs(probability - (expected[token] ?? -1)) <= 1e-9, "token \(token)")
      }
      #expect(abs(kept.reduce(0) { $0 + $1.probability } - 1) <= 1e-9)
      var random = SampleRandom(seed: seed.0, stream: seed.1)
      try logits.withUnsafeBufferPointer { buffer in
        for _ in 0..<20 {
          let token = try sampler.sample(buffer, random: &random)
          #expect((expected[token] ?? 0) > 0, "drew \(token), outside the kept set")
        }
      }
    }
  }

  /// A vocabulary of thousands (the sampler sorts only the buckets its walk reaches): the kept set
  /// and probabilities are still the definitions', and a draw is the token where the seed's
  /// uniform number falls in the most-likely-first order of `distribution`.
  @Test func largeVocabulariesKeepTheDefinitions() async throws {
    let spreads = zip(Gen.int(in: 500...6000), Gen.float(in: 0.5...30), Gen.int(in: 0...2))
    await propertyCheck(count: 40, input: spreads, Self.parameters, Self.seeds) { shape, parameters, seed in
      let (count, spread, kind) = shape
      var random = SampleRandom(seed: seed.0 ^ 0x5EED, stream: seed.1)
      // Flat, peaked (a few large logits), or with many exact ties.
      let logits = (0..<count).map { index -> Float in
        let u = Float(random.unit())
        switch kind {
        case 0: return spread * (u - 0.5)
        case 1: return index % 97 == 0 ? spread + u : spread * u * 0.2
        default: return Float(Int(u * 8)) * spread / 8
        }
      }
      var sampler = Sampler(parameters: parameters)
      let kept = try logits.withUnsafeBufferPointer { try sampler.distribution($0) }
      let expected = SamplerTests.expected(logits, parameters)
      #expect(Set(kept.map(\.token)) == Set(expected.keys), "kept set")
      for (token, probability) in kept where abs(probability - (expected[token] ?? -1)) > 1e-9 {
        Issue.record("token \(token): \(probability) vs \(expected[token] ?? -1)")
        break
      }
      var draws = SampleRandom(seed: seed.0, stream: seed.1)
      var copy = draws
      try logits.withUnsafeBufferPointer { buffer in
        for _ in 0..<5 {
          let u = copy.unit()
          let token = try sampler.sample(buffer, random: &draws)
          var cumulative = 0.0
          let walked = kept.first { cumulative += $0.probability; return u < cumulative }?.token ?? kept.last?.token
          #expect(token == walked, "u \(u)")
        }
      }
    }
  }

  /// Temperature 0 (or below) is greedy whatever the filters: the first index of the maximum.
  @Test func greedyIsTheFirstArgmax() async throws {
    await propertyCheck(count: 150, input: Self.finiteLogits, Self.parameters, Gen.float(in: -2...0)) { logits, filters, temperature in
      var parameters = filters
      parameters.temperature = temperature
      var sampler = Sampler(parameters: parameters)
      var random = SampleRandom(seed: 1)
      let top = logits.max() ?? 0
      let first = logits.firstIndex(of: top)
      let token = try logits.withUnsafeBufferPointer { try sampler.sample($0, random: &random) }
      #expect(token == first)
    }
  }

  /// As the temperature falls the maxima's share does not shrink, and at a tiny temperature every
  /// draw is one of the maxima (uniform among tied ones, as the limit of the softmax).
  @Test func coolingConcentratesOnTheMaxima() async throws {
    let temperatures = zip(Gen.float(in: 0.01...4), Gen.float(in: 0.01...4))
    await propertyCheck(count: 150, input: Self.finiteLogits, temperatures, Gen.uint64(in: 0...UInt64.max)) { logits, pair, seed in
      let top = logits.max() ?? 0
      let maxima = Set(logits.indices.filter { logits[$0] == top })
      func share(_ temperature: Float) throws -> Double {
        var sampler = Sampler(parameters: SamplingParameters(temperature: temperature))
        let kept = try logits.withUnsafeBufferPointer { try sampler.distribution($0) }
        return kept.filter { maxima.contains($0.token) }.reduce(0) { $0 + $1.probability }
      }
      let (cold, warm) = (min(pair.0, pair.1), max(pair.0, pair.1))
      let (coldShare, warmShare) = (try share(cold), try share(warm))
      #expect(coldShare >= warmShare - 1e-12, "T \(cold) vs \(warm)")
      var sampler = Sampler(parameters: SamplingParameters(temperature: 1e-30))
      var random = SampleRandom(seed: seed)
      let kept = try logits.withUnsafeBufferPointer { try sampler.distribution($0) }
      let tinyShares = Dictionary(kept.map { ($0.token, $0.probability) }, uniquingKeysWith: +)
      for token in maxima {
        #expect(abs((tinyShares[token] ?? 0) - 1 / Double(maxima.count)) <= 1e-12)
      }
      try logits.withUnsafeBufferPointer { buffer in
        for _ in 0..<10 {
          let token = try sampler.sample(buffer, random: &random)
          #expect(maxima.contains(token))
        }
      }
    }
  }

  /// All-equal logits: every filter keeps the tokens a uniform distribution keeps, nothing
  /// crashes, and draws are in range.
  @Test func equalLogitsAreUniform() async throws {
    await propertyCheck(count: 100, input: Gen.int(in: 1...64), Gen.float(in: -1e30...1e30), Self.parameters) { count, value, parameters in
      let logits = [Float](repeating: value, count: count)
      var sampler = Sampler(parameters: parameters)
      let kept = try logits.withUnsafeBufferPointer { try sampler.distribution($0) }
      #expect(!kept.isEmpty && kept.allSatisfy { abs($0.probability - 1 / Double(kept.count)) <= 1e-12 })
      #expect(Set(kept.map(\.token)) == Set(SamplerTests.expected(logits, parameters).keys))
      var random = SampleRandom(seed: 5)
      let token = try logits.withUnsafeBufferPointer { try sampler.sample($0, random: &random) }
      #expect((0..<count).contains(token))
    }
  }

  /// NaN anywhere is an error for greedy and sampled decoding alike (never a silent token).
  @Test func nanLogitsAreAnError() async throws {
    await propertyCheck(count: 100, input: Self.finiteLogits, Gen.int(in: 0...39), Self.parameters) { base, position, parameters in
      var logits = base
      logits[position % logits.count] = .nan
      for p in [parameters, .greedy] {
        var sampler = Sampler(parameters: p)
        var random = SampleRandom(seed: 3)
        #expect(throws: EngineError.self, "\(p)") {
          try logits.withUnsafeBufferPointer { try sampler.sample($0, random: &random) }
        }
      }
    }
  }

  /// −inf logits are tokens the model rules out: they are never drawn while a finite logit
  /// exists, and nothing crashes.
  @Test func negativeInfinityIsNeverDrawn() async throws {
    let masks = Gen.bool(0.4).array(of: 40)
    await propertyCheck(count: 150, input: Self.finiteLogits, masks, Self.parameters, Self.seeds) { base, mask, parameters, seed in
      var logits = base
      for i in logits.indices where mask[i] { logits[i] = -.infinity }
      guard logits.contains(where: { $0.isFinite }) else { return }
      var sampler = Sampler(parameters: parameters)
      var random = SampleRandom(seed: seed.0, stream: seed.1)
      try logits.withUnsafeBufferPointer { buffer in
        for _ in 0..<10 {
          let token = try sampler.sample(buffer, random: &random)
          #expect(logits[token].isFinite, "drew token \(token) of logit −inf")
        }
      }
    }
  }

  /// A +inf logit is infinitely more likely than any finite one: sampling must pick a +inf token
  /// (as greedy does), or report the logits as invalid. (It found that the sampler drew the least
  /// likely kept token; see `SamplerTests.infiniteLogitsFollowTheSoftmaxLimit`.)
  @Test func positiveInfinityWinsOrIsRejected() async throws {
    await propertyCheck(count: 100, input: Self.finiteLogits, Gen.int(in: 0...39), Self.parameters, Self.seeds) { base, position, parameters, seed in
      var logits = base
      logits[position % logits.count] = .infinity
      var sampler = Sampler(parameters: parameters)
      var random = SampleRandom(seed: seed.0, stream: seed.1)
      do {
        let token = try logits.withUnsafeBufferPointer { try sampler.sample($0, random: &random) }
        #expect(logits[token] == .infinity, "drew token \(token) (logit \(logits[token])) beside a +inf logit")
      } catch is EngineError {
        // Rejecting the logits as invalid is an acceptable answer too.
      }
    }
  }

  /// The generator only ever emits ids below `vocabularyLimit`, for any sampling parameters and
  /// number of samples (a model's padding rows past the tokenizer's last id are never chosen).
  @Test func vocabularyLimitIsRespected() async throws {
    let model = try DecoderModel.load(path: Fixtures.modelPath("qwen3-gqa-tied-f32"))
    let session = try InferenceSession(model: model, threads: 2)
    let vocabulary = model.config.vocabSize
    let prompts = Gen.int(in: 0...(vocabulary - 1)).array(of: 1...6)
    await propertyCheck(count: 25, input: prompts, Gen.int(in: 1...vocabulary), Self.parameters, Gen.int(in: 1...3)) { prompt, limit, parameters, samples in
      let greedy = limit % 4 == 0
      let options = GenerationOptions(
        maxTokens: 4, sampling: greedy ? .greedy : parameters, samples: samples, seed: UInt64(limit), vocabularyLimit: limit)
      let result = try Generator(session: session).generate(prompt: prompt, options: options, cache: session.makeCache())
      for sample in result.samples {
        #expect(sample.tokens.count == 4)
        #expect(sample.tokens.allSatisfy { (0..<limit).contains($0) }, "limit \(limit): \(sample.tokens)")
      }
    }
  }
}
