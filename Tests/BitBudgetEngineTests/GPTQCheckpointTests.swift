import BitBudgetKernels
import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// The GPTQ checkpoint format against the documented dequantization formula, evaluated by
/// scripts/make-gptq-fixtures.py (torch): reading a checkpoint written independently of BitBudget
/// (v1, act-order permutation in g_idx), and writing one (the committed bytes, and what they mean).
@Suite struct GPTQCheckpointTests {
  static let directory = (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/gptq")

  static func expected(_ folder: String) throws -> [String: [Float]] {
    let data = try Data(contentsOf: URL(fileURLWithPath: (folder as NSString).appendingPathComponent("dequantized.json")))
    return try JSONDecoder().decode([String: [Float]].self, from: data)
  }

  /// Every quantized linear's `W[o, i]` (input order), checked against the reference values.
  static func checkWeights(_ model: DecoderModel, against reference: [String: [Float]], _ label: String) {
    #expect(reference.count == model.config.layerCount * 7, "\(label): \(reference.count) reference layers")
    for (l, layer) in model.weights.layers.enumerated() {
      for (name, weight) in zip(model.config.linearNames(layer: l), layer.linears) {
        guard case .quantized(let m) = weight, let values = reference[name] else {
          Issue.record("\(label): \(name) is not quantized or has no reference")
          continue
        }
        var mismatches = 0
        for o in 0..<m.rows {
          for j in 0..<m.columns where m.dequantized(row: o, column: j) != values[o * m.columns + m.inputIndex(ofStoredColumn: j)] {
            mismatches += 1
          }
        }
        #expect(mismatches == 0, "\(label): \(name) has \(mismatches) weights that differ from the formula")
      }
    }
  }

  @Test func readsACheckpointWrittenByTheReference() throws {
    let folder = (Self.directory as NSString).appendingPathComponent("python-actorder-4bit")
    let model = try DecoderModel.load(path: folder)
    #expect(model.weights.format == .gptq(WeightQuantization(bits: 4, groupSize: 64)))
    #expect(model.weights.reordersInputs)
    Self.checkWeights(model, against: try Self.expected(folder), "python v1 act-order")
    // It runs, the act-order input gathers included, and the weight bytes are the runtime
    // layout's (what the memory model counts).
    let session = try InferenceSession(model: model, threads: 2)
    let cache = session.makeCache()
    let logits = try session.prefill([1, 5, 9, 2, 7], cache: cache)
    #expect(logits.map { $0.row(0).allSatisfy(\.isFinite) } == true)
    let layout = try WeightLayout.load(path: folder)
    #expect(layout.byteCount == model.weights.byteCount)
  }

  @Test func writesTheCommittedBytesAndTheyMeanTheReferenceValues() throws {
    let committed = (Self.directory as NSString).appendingPathComponent("bitbudget-rtn8-asym")
    let source = try DecoderModel.load(path: Fixtures.modelPath("qwen3-gqa-tied-f32"))
    let quantized = try ModelQuantizer.roundToNearest(source, WeightQuantization(bits: 8, groupSize: 64, symmetric: false))
    let out = try Fixtures.temporaryDirectory("gptq-write")
    defer { try? FileManager.default.removeItem(at: out) }
    _ = try GPTQExport.write(quantized, to: out.path)
    let written = try SafetensorsFile(path: out.appendingPathComponent("model.safetensors").path)
    let reference = try SafetensorsFile(path: (committed as NSString).appendingPathComponent("model.safetensors"))
    #expect(Set(written.tensors.keys) == Set(reference.tensors.keys))
    for (name, info) in reference.tensors {
      guard let mine = written.tensors[name] else { continue }
      #expect(mine.dtype == info.dtype && mine.shape == info.shape, "\(name)")
      let equal = mine.byteCount == info.byteCount
        && memcmp(written.pointer(to: mine), reference.pointer(to: info), info.byteCount) == 0
      #expect(equal, "\(name): bytes differ from the committed checkpoint")
    }
    // Read back: the same weights as quantized in memory, and as the formula says.
    let loaded = try DecoderModel.load(path: out.path)
    Self.checkWeights(loaded, against: try Self.expected(committed), "bitbudget rtn8 asym")
    for (l, layer) in loaded.weights.layers.enumerated() {
      for (weight, storage) in zip(layer.linears, quantized.layers[l]) {
        guard case .quantized(let m) = weight else { continue }
        let original = storage.matrix
        #expect(memcmp(m.codes, original.codes, m.rows * m.rowBytes) == 0)
        #expect(memcmp(m.groupParameters, original.groupParameters, m.rows * m.groups * 4) == 0)
      }
    }
    // Loading the written checkpoint computes exactly what quantizing at load computes.
    let atLoad = try DecoderModel.load(path: Fixtures.modelPath("qwen3-gqa-tied-f32"), quantize: WeightQuantization(bits: 8, groupSize: 64, symmetric: false))
    let tokens = [3, 17, 42, 99, 5, 8]
    func logits(_ model: DecoderModel) throws -> [Float] {
      let session = try InferenceSession(model: model, threads: 2)
      return Array(try session.prefill(tokens, cache: session.makeCache())!.row(0))
    }
    #expect(try logits(loaded).map(\.bitPattern) == logits(atLoad).map(\.bitPattern))
  }

  /// A checkpoint with a NaN scale, a g_idx with unequal groups, or (being `sym: true`) a zero
  /// other than the symmetric one, is an error, not a crash.
  @Test func rejectsCorruptTensors() throws {
    let source = (Self.directory as NSString).appendingPathComponent("python-actorder-4bit")
    for corruption in ["scale", "g_idx", "qzeros"] {
      let folder = try Fixtures.temporaryDirectory("gptq-corrupt")
      defer { try? FileManager.default.removeItem(at: folder) }
      for name in ["config.json", "model.safetensors"] {
        try FileManager.default.copyItem(atPath: (source as NSString).appendingPathComponent(name), toPath: folder.appendingPathComponent(name).path)
      }
      let path = folder.appendingPathComponent("model.safetensors").path
      let file = try SafetensorsFile(path: path)
      let name = "model.layers.1.mlp.down_proj." + (corruption == "scale" ? "scales" : corruption)
      let info = try #require(file.tensors[name])
      var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
      if corruption == "scale" {
        bytes[info.fileOffset + 6] = 0x00
        bytes[info.fileOffset + 7] = 0x7E  // f16 NaN
      } else if corruption == "g_idx" {
        bytes[info.fileOffset] = (bytes[info.fileOffset] + 1) % 3  // column 0 changes group (of 3): unequal groups
      } else {
        bytes[info.fileOffset] ^= 0x01  // output 0's zero of group 0 is no longer 8
      }
      try bytes.write(to: URL(fileURLWithPath: path))
      let error = #expect(throws: EngineError.self, "\(corruption)") { try DecoderModel.load(path: folder.path) }
      if corruption == "qzeros" { #expect(error?.description.contains("sym: true") == true, "\(String(describing: error))") }
    }
  }

  @Test func writesActOrderAndVersion2WhenNeeded() throws {
    // Asymmetric 4-bit groups whose minimum is ≥ 0 get zero point 0, which v1 cannot store.
    let rows = 8, columns = 128
    let values = (0..<(rows * columns)).map { Float(($0 * 37) % 101) / 100 }  // all non-negative
    let storage = values.withUnsafeBytes {
      WeightQuantizer.roundToNearest(DenseMatrix(base: $0.baseAddress!, rows: rows, columns: columns, elementType: .f32), WeightQuantization(bits: 4, groupSize: 64, symmetric: false))
    }
    #expect(GPTQTensors.format(for: [storage.matrix]) == .v2)
    let symmetric = values.withUnsafeBytes {
      WeightQuantizer.roundToNearest(DenseMatrix(base: $0.baseAddress!, rows: rows, columns: columns, elementType: .f32), WeightQuantization(bits: 4, groupSize: 64))
    }
    #expect(GPTQTensors.format(for: [symmetric.matrix]) == .v1)
  }

  @Test func rejectsBadQuantizationConfigs() throws {
    func parse(_ json: String) throws -> ModelConfig {
      let base = #"{"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 100, "quantization_config": "#
      return try ModelConfig.parse(Data((base + json + "}").utf8), path: "config.json")
    }
    #expect(try parse(#"{"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": true}"#).gptq?.descendingActivationOrder == true)
    #expect(try parse(#"{"bits": 8, "group_size": -1}"#).gptq?.quantization == WeightQuantization(bits: 8, groupSize: nil))
    for bad in [#"{"quant_method": "awq", "bits": 4}"#, #"{"bits": 3}"#, #"{"bits": 4, "group_size": 0}"#,
                #"{"bits": 4, "checkpoint_format": "marlin"}"#, #"{"bits": 4, "lm_head": true}"#, #"[]"#] {
      #expect(throws: EngineError.self, "\(bad)") { try parse(bad) }
    }
  }
}
