// No @testable imports: this file sees what a package depending on BitBudget sees.
import BitBudgetEngine
import BitBudgetLab
import BitBudgetMemory
import BitBudgetTestSupport
import BitBudgetTokenizer
import Foundation
import Testing

/// The documentation's examples (`GettingStarted.md`, `KVCachePolicies.md`, `BitBudgetMemory.md`)
/// run through public API only, on the SmolLM2-135M GGUF the test assets fetch: a chat prompt,
/// four samples on an evicting 4-bit cache, a policy registered from outside the engine, and the
/// memory model's estimate equal to what the run held.
@Suite struct PublicAPITests {
  static let gguf = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

  @Test func gettingStartedRuns() throws {
    let model = try DecoderModel.load(path: Self.gguf)
    let tokenizer = try #require(try model.tokenizer())
    let template = try ChatTemplate.forModel(model, tokenizer: tokenizer, explicit: nil)
    let prompt = tokenizer.encode(
      try template.render([ChatMessage(role: .user, content: "What is 17 × 23?")], options: .init()))
    let session = try InferenceSession(model: model, threads: 2)
    var stops = Set(try model.stopTokenIds())
    stops.formUnion(tokenizer.endOfTurnIds(template))
    let options = GenerationOptions(maxTokens: 40, sampling: try model.generationDefaults(), samples: 4, seed: 1, stopTokens: stops)
    let spec = try KVCacheSpec.parse("rkv:32,buffer=8+hqq:4,group=32")
    let result = try Generator(session: session).generate(prompt: prompt, options: options, cache: session.makeCache(spec: spec))
    #expect(result.samples.count == 4)
    for sample in result.samples {
      #expect(!sample.tokens.isEmpty && sample.kvTokens <= 32 + 8)
      _ = try tokenizer.decode(sample.tokens, skipSpecialTokens: true)
    }
    let estimate = try MemoryModel.load(Self.gguf).estimate(
      weightsBits: model.weights.format.bits, tokens: 39, promptTokens: prompt.count, samples: 4, kv: spec, threads: 2)
    #expect(estimate.kvBytes == result.kvBytes)
  }

  @Test func aPolicyFromOutsideTheEngine() throws {
    KVPolicies.register(KeepNewestPolicy.self)
    let spec = try KVCacheSpec.parse("keep-newest:24+hqq:8,group=32")
    let model = try DecoderModel.load(path: Self.gguf)
    let session = try InferenceSession(model: model, threads: 2)
    let cache = try session.makeCache(spec: spec)
    let result = try Generator(session: session).generate(
      prompt: Array(1...40), options: GenerationOptions(maxTokens: 20), cache: cache)
    #expect(result.samples[0].kvTokens <= 24 + 16)
    #expect(KVCacheSpec.acceptedForms.contains("keep-newest:B"))
  }
}

/// The newest `budget` tokens, every 16 steps.
struct KeepNewestPolicy: EvictionPolicy {
  static let name = "keep-newest"
  static let form = "keep-newest:B"
  static let conformanceSpecs = ["keep-newest:40"]
  var budget: Int
  init(budget: Int, options: inout KVSpecOptions) throws { self.budget = budget }
  var description: String { "keep-newest:\(budget)" }
  var interval: Int { 16 }
  func keptRows(_ request: EvictionRequest) -> [[Int]] {
    Array(repeating: Array((request.length - budget)..<request.length), count: request.kvHeads)
  }
}
