import BitBudgetKernels
import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// `hqq:B,axis=0` against transformers' `QuantizedCache(backend="hqq")` at its default axes (the
/// fixture: `scripts/make-hqq-cache-fixture.py`, greedy decoding of an f32 test model with
/// nbits 4, group 16, residual 12, so the history is re-quantized every 12 tokens over 40 steps;
/// `hqq` 0.2.8, whose `Quantizer.quantize` optimizes zero points unless told not to).
@Suite struct RequantizingKVCacheTests {
  struct Fixture: Decodable {
    let prompt: [Int]
    let tokens: [Int]
    let logits: [[Float]]
  }

  @Test func logitsEqualTransformersQuantizedCache() throws {
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/kv/hqq-cache-axis0.json")
    let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    let model = try DecoderModel.load(path: Fixtures.modelPath("qwen3-gqa-tied-f32"))
    let session = try InferenceSession(model: model, threads: 2)
    session.linearActivations = .exact
    let spec = try KVCacheSpec.parse("hqq:4,group=16,residual=12,axis=0")
    #expect(spec.description == "hqq:4,group=16,residual=12,axis=0")
    let cache = try session.makeCache(spec: spec, elementType: .f32)
    #expect(cache is RequantizingKVCache)
    let full = session.makeCache(elementType: .f32)
    var worst: Float = 0, fromFull: Float = 0
    for step in 0..<fixture.logits.count {
      let input = step == 0 ? fixture.prompt : [fixture.tokens[step - 1]]
      // Copied: the next forward pass writes the session's logits buffer.
      let row = Array(try #require(try session.prefill(input, cache: cache)).row(0))
      let exact = Array(try #require(try session.prefill(input, cache: full)).row(0))
      for (i, reference) in fixture.logits[step].enumerated() {
        worst = max(worst, abs(row[i] - reference))
        fromFull = max(fromFull, abs(exact[i] - reference))
      }
    }
    // f32 throughout (HQQ's steps, its proximal zero search included, round as torch's; sums
    // differ in order): the quantized cache moves logits by up to 1.4, the engine stays within
    // 1e-4 of transformers (measured 9e-6).
    #expect(worst < 1e-4, "max |Δ| \(worst)")
    #expect(fromFull > 0.5, "the fixture's quantization must matter (full cache off by \(fromFull))")
  }

  @Test func axisZeroIsRefusedWithEviction() throws {
    #expect(throws: EngineError.self) { try KVCacheSpec.parse("rkv:64+hqq:4,axis=0") }
    #expect(throws: EngineError.self) { try KVCacheSpec.parse("hqq:4,axis=2") }
    #expect(try KVCacheSpec.parse("hqq:4,axis=1").description == "hqq:4,group=64,residual=128")
  }
}
