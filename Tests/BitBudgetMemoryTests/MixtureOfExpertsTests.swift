import BitBudgetTestSupport
import Foundation
import Testing

import BitBudgetEngine
import BitBudgetKernels
import BitBudgetMemory

@Suite struct MixtureOfExpertsTests {
  /// The presets' parameters equal what transformers builds from the same configs
  /// (Qwen3MoeForCausalLM on the meta device: 30,532,122,624 and 235,093,634,560), every
  /// expert resident: the 16-bit weights are 2 bytes per parameter in both conventions.
  @Test func presetsCountEveryExpert() throws {
    for (name, parameters) in [("qwen3-30b-a3b", 30_532_122_624), ("qwen3-235b-a22b", 235_093_634_560)] {
      let model = try MemoryModel.load(name)
      #expect(model.config.experts?.count == 128)
      #expect(try model.estimate(tokens: 0, convention: .paper).weightsBytes == 2 * parameters, "\(name)")
      #expect(try model.estimate(tokens: 0, convention: .engine).weightsBytes == 2 * parameters, "\(name)")
      // 4-bit: every expert's projections are quantized linears; the router stays 16-bit.
      #expect(try model.estimate(weightsBits: 4, tokens: 0, convention: .engine).weightsBytes < parameters * 6 / 10)
    }
    // KV: 4 KV heads of 128 in 48 layers, bf16: 96 KiB a token.
    let kv = try MemoryModel.load("qwen3-30b-a3b").estimate(tokens: 1024, convention: .paper).kvBytes
    #expect(kv == 48 * 2 * 4 * 128 * 2 * 1024)
  }

  /// A transformers checkpoint (8 experts, 3 per token, the last layer dense through
  /// mlp_only_layers; its logits are checked in ModelParityTests): the memory model's weights
  /// equal its parameters as transformers counts them (reference.json) and the loaded model's
  /// bytes, 16-bit and quantized to 4 bits at load, scratch included.
  @Test func checkpointMemoryEqualsTheEngine() throws {
    let path = Fixtures.modelPath("qwen3moe-e8k3-untied-bf16")
    let parameters = try #require(
      (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/reference.json"))) as? [String: Any])?["parameters"] as? Int)
    let memory = try MemoryModel.load(path)
    #expect(memory.config.architecture == .qwen3MoE)
    #expect(memory.config.experts == MixtureOfExperts(count: 8, perToken: 3, intermediateSize: 64, normalizesTopK: true, denseLayers: [2]))
    #expect(try memory.estimate(tokens: 0, convention: .paper).weightsBytes == 2 * parameters)
    #expect(try memory.estimate(tokens: 0, convention: .engine).weightsBytes == 2 * parameters)
    #expect((try DecoderModel.load(path: path)).weights.byteCount == 2 * parameters)
    let quantization = WeightQuantization(bits: 4, groupSize: 128)
    let model = try DecoderModel.load(path: path, quantize: quantization)
    let estimate = try memory.estimate(weightsBits: 4, tokens: 8, threads: 2)
    #expect(estimate.weightsBytes == model.weights.byteCount)
    // Every expert's three projections are quantized; the routers stay 16-bit.
    let linears: [LinearWeight] = model.weights.layers.flatMap { $0.linears }
    let quantized = linears.filter { if case .quantized = $0 { true } else { false } }
    #expect(quantized.count == 2 * (4 + 3 * 8) + (4 + 3))
    let session = try InferenceSession(model: model, threads: 2)
    _ = try session.prefill(Array(1...8), cache: session.makeCache())
    #expect(estimate.scratchBytes == session.scratchBytes)
  }

  /// Quantized experts survive export: a round-to-nearest GPTQ checkpoint of the MoE fixture
  /// (every expert's projections as qweight/qzeros/scales/g_idx, the router 16-bit) loads back
  /// and gives the logits that quantizing at load gives. GPTQ calibration of experts is refused
  /// with a message that names the way that works.
  @Test func quantizedExpertsExportAndReload() throws {
    let path = Fixtures.modelPath("qwen3moe-e8k3-untied-bf16")
    let quantization = WeightQuantization(bits: 4, groupSize: 64)
    let source = try DecoderModel.load(path: path)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("moe-gptq-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    _ = try GPTQExport.write(try ModelQuantizer.roundToNearest(source, quantization), to: folder)
    let ids = Array(3..<40)
    func logits(_ model: DecoderModel) throws -> [Float] {
      let session = try InferenceSession(model: model, threads: 2)
      session.linearActivations = .exact
      return Array(try #require(try session.prefill(ids, cache: session.makeCache(elementType: .f32))).row(0))
    }
    let reloaded = try logits(try DecoderModel.load(path: folder))
    let atLoad = try logits(try DecoderModel.load(path: path, quantize: quantization))
    let largest = atLoad.map(abs).max() ?? 0
    #expect(largest > 0)
    #expect(zip(reloaded, atLoad).map { abs($0 - $1) }.max() ?? .infinity <= 1e-5 * largest)
    #expect(throws: EngineError.self) {
      try ModelQuantizer.gptq(source, calibration: [ids], options: GPTQ.Options(quantization: quantization), threads: 2)
    }
  }

  /// config.json must name the expert count (either spelling; the fixtures use one each).
  @Test func expertCountIsRequired() throws {
    let url = URL(fileURLWithPath: Fixtures.modelPath("qwen3moe-e8k3-untied-bf16") + "/config.json")
    var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    #expect(try ModelConfig.parse(try JSONSerialization.data(withJSONObject: object), path: "config.json").experts?.count == 8)
    object.removeValue(forKey: "num_local_experts")
    #expect(throws: EngineError.self) { try ModelConfig.parse(try JSONSerialization.data(withJSONObject: object), path: "config.json") }
  }
}
