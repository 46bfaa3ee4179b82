import BitBudgetEngine
import BitBudgetKernels
import BitBudgetMemory
import BitBudgetTestSupport
import Foundation
import Testing

@Suite struct MemoryModelTests {
  static let gib = Double(1 << 30)

  /// Table 1 of the paper (GiB, two decimals) from the presets' configs alone.
  @Test(arguments: [
    ("qwen3-0.6b", 4, 0.50), ("qwen3-0.6b", 8, 0.71), ("qwen3-0.6b", 16, 1.40),
    ("qwen3-1.7b", 8, 1.93), ("qwen3-1.7b", 16, 3.78),
    ("qwen3-4b", 4, 2.49), ("qwen3-4b", 8, 4.19), ("qwen3-4b", 16, 7.49),
    ("qwen3-8b", 4, 5.68), ("qwen3-8b", 8, 8.94), ("qwen3-8b", 16, 15.26),
    ("qwen3-32b", 4, 18.01), ("qwen3-32b", 8, 32.66), ("qwen3-32b", 16, 61.02),
  ])
  func paperWeights(model: String, bits: Int, gib: Double) throws {
    let estimate = try MemoryModel.load(model).estimate(weightsBits: bits, tokens: 0, convention: .paper)
    #expect(abs(Double(estimate.weightsBytes) / Self.gib - gib) <= 0.01, "\(Double(estimate.weightsBytes) / Self.gib)")
  }

  @Test(arguments: [
    ("qwen3-0.6b", 30_000, 1, 3.20), ("qwen3-4b", 30_000, 1, 4.12), ("qwen3-8b", 30_000, 1, 4.12),
    ("qwen3-32b", 30_000, 1, 7.32), ("qwen3-0.6b", 30_000, 16, 51.27), ("qwen3-8b", 30_000, 16, 65.91),
    ("qwen3-32b", 30_000, 16, 117.19), ("qwen3-0.6b", 2_000, 1, 0.21), ("qwen3-0.6b", 18_000, 1, 1.92),
  ])
  func paperKV(model: String, tokens: Int, samples: Int, gib: Double) throws {
    let estimate = try MemoryModel.load(model).estimate(tokens: tokens, samples: samples, convention: .paper)
    #expect(abs(Double(estimate.kvBytes) / Self.gib - gib) <= 0.01, "\(Double(estimate.kvBytes) / Self.gib)")
  }

  /// paper.md §3.4's worked example: the R-KV cap and HQQ estimates for Qwen3-8B at 30k tokens.
  @Test func paperPolicies() throws {
    let model = try MemoryModel.load("qwen3-8b")
    func kv(_ spec: String) throws -> Double {
      Double(try model.estimate(tokens: 30_000, kv: try KVCacheSpec.parse(spec), convention: .paper).kvBytes) / Self.gib
    }
    #expect(abs(try kv("rkv:2048") - 0.30) <= 0.01)
    #expect(abs(try kv("rkv:4096") - 0.58) <= 0.01)
    #expect(abs(try kv("hqq:8") - 2.20) <= 0.01)
    #expect(abs(try kv("hqq:4") - 1.17) <= 0.01)
    #expect(abs(try kv("hqq:2") - 0.66) <= 0.01)
  }

  /// The engine convention's weights equal the loaded model's bytes: safetensors fixtures
  /// (f32/bf16/f16, tied and untied, biases) and the real SmolLM2 GGUF with its Q4_1 linears
  /// kept quantized, and widened to bf16 and f32.
  @Test func engineWeightsEqualTheLoadedModel() throws {
    for name in Fixtures.modelNames {
      let path = Fixtures.modelPath(name)
      let estimate = try MemoryModel.load(path).estimate(tokens: 0)
      #expect(estimate.weightsBytes == (try DecoderModel.load(path: path)).weights.byteCount, "\(name)")
    }
    let gguf = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    for widening in [nil, ElementType.bf16, .f32] {
      let estimate = try MemoryModel.load(gguf, ggufWidening: widening).estimate(weightsBits: widening == nil ? 4 : 16, tokens: 0)
      #expect(estimate.weightsBytes == (try DecoderModel.load(path: gguf, ggufWidening: widening)).weights.byteCount, "\(String(describing: widening))")
    }
    // 8 and 4 bits: quantized at load (`--weights`), on fixtures whose widths the kernels take
    // and on the real GGUF; and a GPTQ act-order checkpoint as stored, scratch included.
    for (path, bits) in [(Fixtures.modelPath("qwen3-gqa-tied-f32"), 8), (Fixtures.modelPath("qwen3-mha-untied-bf16"), 4), (gguf, 4), (gguf, 8)] {
      // A GGUF is widened to bf16 before it is quantized at load, as `--weights` does.
      let estimate = try MemoryModel.load(path, ggufWidening: .bf16).estimate(weightsBits: bits, tokens: 0)
      let loaded = try DecoderModel.load(path: path, ggufWidening: .bf16, quantize: WeightQuantization(bits: bits, groupSize: 128))
      #expect(estimate.weightsBytes == loaded.weights.byteCount, "\(path) \(bits)-bit")
    }
    let gptq = (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/gptq/python-actorder-4bit")
    let estimate = try MemoryModel.load(gptq).estimate(weightsBits: 4, tokens: 8, threads: 2)
    let model = try DecoderModel.load(path: gptq)
    #expect(estimate.weightsBytes == model.weights.byteCount)
    let session = try InferenceSession(model: model, threads: 2)
    _ = try session.prefill(Array(1...8), cache: session.makeCache())
    #expect(estimate.scratchBytes == session.scratchBytes)
    #expect(throws: EngineError.self) { try MemoryModel.load(gptq).estimate(weightsBits: 8, tokens: 0) }
    // bf16 linears: the scratch holds rows rounded for the bf16 tile (where the build has it).
    let bf16 = Fixtures.modelPath("qwen3-mha-untied-bf16")
    let bf16Model = try DecoderModel.load(path: bf16)
    let bf16Session = try InferenceSession(model: bf16Model, threads: 2)
    _ = try bf16Session.prefill(Array(1...8), cache: bf16Session.makeCache())
    #expect(try MemoryModel.load(bf16).estimate(tokens: 8, threads: 2).scratchBytes == bf16Session.scratchBytes)
    let withRows = InferenceSession.scratchBytes(config: bf16Model.config, threads: 2, longestContext: 8, bf16Linears: true)
    #expect((withRows > InferenceSession.scratchBytes(config: bf16Model.config, threads: 2, longestContext: 8)) == LinearActivations.bf16Available)
  }

  /// Room for bf16-rounded rows is counted only when some kernel call is all bf16: a llama F16
  /// GGUF's reordered q/k are widened to bf16 while v stays f16, and that q/k/v call runs exact.
  @Test func bf16RowsNeedAnAllBF16Call() throws {
    let config = try DecoderModel.load(path: Fixtures.modelPath("qwen3-mha-untied-bf16")).config
    let bf16 = WeightLayout(config: config, elementType: .bf16)
    #expect(bf16.hasBF16Linears)
    #expect(!WeightLayout(config: config, elementType: .f16).hasBF16Linears)
    let f16Suffixes = ["v_proj.weight", "o_proj.weight", "up_proj.weight", "down_proj.weight"]
    let mixed = WeightLayout(config: config, tensors: bf16.tensors.map { t in
      f16Suffixes.contains { t.name.hasSuffix($0) }
        ? WeightLayout.Tensor(name: t.name, shape: t.shape, byteCount: t.byteCount, elementType: .f16) : t
    })
    #expect(!mixed.hasBF16Linears)
    let gateOnly = WeightLayout(config: config, tensors: mixed.tensors.map { t in
      t.name.hasSuffix("up_proj.weight") ? WeightLayout.Tensor(name: t.name, shape: t.shape, byteCount: t.byteCount, elementType: .bf16) : t
    })
    #expect(gateOnly.hasBF16Linears)
  }

  /// The engine convention's KV bytes equal the caches' `residentBytes` after generation, for
  /// every policy, with one and with several samples (forks sharing the prompt).
  @Test(arguments: [
    "full", "streaming:24", "rkv:24,window=4,buffer=16", "hqq:8,group=16", "hqq:4,group=16,residual=24",
    "rkv:24,window=4,buffer=16+hqq:2,group=16", "streaming:32,sinks=2+hqq:8,group=8",
    "snapkv:24,window=4,buffer=16", "snapkv:40,window=8,kernel=3,buffer=16+hqq:4,group=16",
    "h2o:24,recent=8,buffer=16", "h2o:40,buffer=16+hqq:4,group=16",
    // transformers' axis 0: forks share blocks until their first re-quantization (after 24
    // decoded tokens here; never within these runs with a residual of 100).
    "hqq:4,group=16,residual=24,axis=0", "hqq:2,group=16,residual=100,axis=0",
  ])
  func engineKVEqualsTheCaches(_ text: String) throws {
    let name = "qwen3-gqa-tied-f32"
    let path = Fixtures.modelPath(name)
    let model = try DecoderModel.load(path: path)
    let memory = try MemoryModel.load(path)
    let spec = try KVCacheSpec.parse(text)
    for (prompt, newTokens, samples, kvType) in [(13, 90, 1, ElementType.bf16), (70, 61, 3, .f32), (300, 40, 2, .bf16)] {
      let session = try InferenceSession(model: model, threads: 2, maxRows: 256)
      let cache = try session.makeCache(spec: spec, elementType: kvType)
      let ids = (0..<prompt).map { ($0 * 37 + 11) % model.config.vocabSize }
      let result = try Generator(session: session).generate(
        prompt: ids, options: GenerationOptions(maxTokens: newTokens, sampling: .init(temperature: 1), samples: samples, seed: 9),
        cache: cache)
      let estimate = try memory.estimate(
        tokens: newTokens - 1, promptTokens: prompt, samples: samples, kv: spec, kvElementType: kvType, threads: 2)
      #expect(estimate.kvBytes == result.kvBytes, "\(text), prompt \(prompt), G=\(samples)")
      #expect(estimate.scratchBytes == session.scratchBytes, "scratch: \(text), prompt \(prompt), G=\(samples)")
      #expect(estimate.kvPeakBytes >= result.kvBytes)
    }
  }

  /// One new token per sample (it is never fed back): the forks write nothing, so G samples hold
  /// the prompt's storage once (full cache) plus their own dense blocks (compressed caches).
  /// Regressions: the full cache's estimate counted the prompt's blocks G times, and a compressed
  /// cache's peak left out the forks' copies (below the bytes held at the end).
  @Test(arguments: ["full", "hqq:4,group=16", "streaming:24", "hqq:4,group=16,axis=0"])
  func samplesThatDecodeNothingShareThePrompt(_ text: String) throws {
    let path = Fixtures.modelPath("qwen3-gqa-tied-f32")
    let model = try DecoderModel.load(path: path)
    let spec = try KVCacheSpec.parse(text)
    for prompt in [1, 64, 70] {
      let session = try InferenceSession(model: model, threads: 2)
      let result = try Generator(session: session).generate(
        prompt: Array(repeating: 5, count: prompt), options: GenerationOptions(maxTokens: 1, samples: 3),
        cache: try session.makeCache(spec: spec))
      let estimate = try MemoryModel.load(path).estimate(tokens: 0, promptTokens: prompt, samples: 3, kv: spec)
      #expect(estimate.kvBytes == result.kvBytes, "\(text), prompt \(prompt)")
      #expect(estimate.kvPeakBytes >= result.kvBytes, "peak: \(text), prompt \(prompt)")
    }
  }

  @Test func inverseQuestions() throws {
    let model = try MemoryModel.load("qwen3-8b")
    let budget = Int(20 * Self.gib)
    let tokens = try #require(try model.maxTokens(fitting: budget, limit: 40_960, convention: .paper))
    #expect(try model.estimate(tokens: tokens, convention: .paper).totalBytes <= budget)
    #expect(try model.estimate(tokens: tokens + 1, convention: .paper).totalBytes > budget)
    // 15.26 GiB of weights + 4.12 GiB per 30k-token sample: one sample fits 20 GiB, two do not.
    #expect(try model.maxSamples(fitting: budget, tokens: 30_000, convention: .paper) == 1)
    #expect(try model.maxTokens(fitting: Int(10 * Self.gib), limit: 40_960, convention: .paper) == nil)
  }
}
