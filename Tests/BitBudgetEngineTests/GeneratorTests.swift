import BitBudgetTestSupport
import Testing

@testable import BitBudgetEngine

@Suite struct GeneratorTests {
  @Test func stopsAtAStopTokenAndKeepsIt() throws {
    let name = "qwen3-gqa-tied-f32"
    let reference = try Fixtures.reference(name)
    let model = try DecoderModel.load(path: Fixtures.modelPath(name))
    let session = try InferenceSession(model: model, threads: 2)
    let stop = reference.greedy[3]
    let result = try Generator(session: session).generateGreedy(
      prompt: reference.inputIds, maxTokens: 16, stopTokens: [stop], cache: session.makeCache(elementType: .f32))
    #expect(result.samples[0].finish == .eos)
    #expect(result.samples[0].tokens == Array(reference.greedy.prefix(4)))
    #expect(result.decodeSteps == 3)
  }

  @Test func argmaxTakesTheFirstMaximumAndRejectsNaN() throws {
    #expect(try [1, 3, 3, 2].withUnsafeBufferPointer { try Generator.argmax($0) } == 1)
    #expect(try [-Float.infinity, -.infinity].withUnsafeBufferPointer { try Generator.argmax($0) } == 0)
    #expect(throws: EngineError.self) { try [Float(1), .nan].withUnsafeBufferPointer { try Generator.argmax($0) } }
  }

  @Test func rejectsAnEmptyPrompt() throws {
    let model = try DecoderModel.load(path: Fixtures.modelPath("qwen3-gqa-tied-f32"))
    let session = try InferenceSession(model: model, threads: 1)
    #expect(throws: EngineError.self) {
      try Generator(session: session).generateGreedy(prompt: [], maxTokens: 3, stopTokens: [], cache: session.makeCache())
    }
  }

  /// Sampling parameters that would poison the weights (an infinite temperature turns −inf logits
  /// into NaN weights) and absurd log-probability requests are refused before any work.
  @Test func rejectsNonFiniteSamplingAndTooManyAlternatives() throws {
    let model = try DecoderModel.load(path: Fixtures.modelPath("qwen3-gqa-tied-f32"))
    let session = try InferenceSession(model: model, threads: 1)
    var cases = [Float.infinity, .nan].map { GenerationOptions(maxTokens: 2, sampling: SamplingParameters(temperature: $0)) }
    cases.append(GenerationOptions(maxTokens: 2, sampling: SamplingParameters(temperature: 1, topP: .nan)))
    var alternatives = GenerationOptions(maxTokens: 2)
    alternatives.logprobs = Int.max
    cases.append(alternatives)
    for options in cases {
      #expect(throws: EngineError.self) {
        try Generator(session: session).generate(prompt: [1, 2], options: options, cache: session.makeCache())
      }
    }
  }
}
