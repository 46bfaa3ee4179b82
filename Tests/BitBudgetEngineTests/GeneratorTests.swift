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
}
