import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// Log-probabilities of drawn tokens against transformers: the first token after a prompt gets
/// the log-softmax of the logits transformers computed at the prompt's last position.
@Suite struct TokenLogprobsTests {
  /// f32 weights and an f32 cache: the engine's logits are within 1e-4 × max|logit| of
  /// transformers' (its parity tolerance); a log-softmax moves by at most twice the largest logit error.
  @Test(arguments: [5, 17, 40])
  func firstTokenMatchesTransformers(promptLength: Int) throws {
    let name = "qwen3-gqa-tied-f32"
    let reference = try Fixtures.reference(name)
    let model = try DecoderModel.load(path: Fixtures.modelPath(name))
    let session = try InferenceSession(model: model, threads: 2)
    var options = GenerationOptions(maxTokens: 1, sampling: SamplingParameters(temperature: 0.7, topK: 5), seed: 11)
    options.logprobs = 5
    var seen: [(Int, TokenLogprobs?)] = []
    _ = try Generator(session: session).generate(
      prompt: Array(reference.inputIds.prefix(promptLength)), options: options, cache: session.makeCache(elementType: .f32)
    ) { appended in seen.append((appended.token, appended.logprobs)) }

    let logits = reference.logits[promptLength - 1].map(Double.init)
    let top = logits.max() ?? 0
    let normalizer = top + Foundation.log(logits.reduce(0) { $0 + Foundation.exp($1 - top) })
    let expected = logits.map { $0 - normalizer }
    let tolerance = 2e-4 * (logits.map(abs).max() ?? 0)
    let (token, logprobs) = try #require(seen.first)
    let drawn = try #require(logprobs)
    #expect(abs(Double(drawn.logprob) - expected[token]) <= tolerance)
    let best = expected.indices.sorted { expected[$0] > expected[$1] }.prefix(5)
    #expect(drawn.alternatives.map(\.token) == Array(best))
    for alternative in drawn.alternatives {
      #expect(abs(Double(alternative.logprob) - expected[alternative.token]) <= tolerance)
    }
  }

  /// The definition on rows with ties and infinities: ties list the lower id first, −inf is
  /// −inf, and +inf logits share the mass.
  @Test func specialValues() {
    let row: [Float] = [1, 3, 3, -.infinity, 0.5]
    let logprobs = row.withUnsafeBufferPointer { TokenLogprobs(logits: $0, chosen: 3, top: 3) }
    #expect(logprobs.alternatives.map(\.token) == [1, 2, 0])
    #expect(logprobs.logprob == -.infinity)
    let total = row.reduce(0.0) { $0 + Foundation.exp(Double($1)) }
    #expect(abs(Double(logprobs.alternatives[0].logprob) - (3 - Foundation.log(total))) < 1e-6)
    let infinite: [Float] = [0, .infinity, 2, .infinity]
    let shared = infinite.withUnsafeBufferPointer { TokenLogprobs(logits: $0, chosen: 1, top: 1) }
    #expect(abs(shared.logprob - -Float(Foundation.log(2.0))) < 1e-6)
    #expect(shared.alternatives == [.init(token: 1, logprob: shared.logprob)])
  }
}
