import BitBudgetEngine
import BitBudgetKernels
import BitBudgetTestSupport
import BitBudgetTokenizer
import Foundation
import Testing

/// `HuggingFaceExport`: SmolLM2's GGUF written as a Hugging Face folder must compute what the GGUF
/// computes and tokenize as it does. (That transformers loads such a folder and reproduces its
/// GGUF reference was checked by hand; see the README.)
@Suite struct HuggingFaceExportTests {
  @Test func convertedSmolLM2MatchesTheGGUF() throws {
    let folder = try Fixtures.temporaryDirectory("export").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let summary = try HuggingFaceExport.convert(gguf: SmolLM2Tests.path, to: folder)
    #expect(summary.tensors == 272 && summary.architecture == "llama")

    // Config: what the GGUF says, in config.json's words.
    let fromFolder = try ModelConfig.load(directory: folder)
    var fromGGUF = try ModelConfig.fromGGUF(try GGUFFile(path: SmolLM2Tests.path))
    fromGGUF.declaredDType = "bfloat16"
    #expect(fromFolder == fromGGUF)

    // Weights: matrices are the same bf16 values the GGUF load widens to; F32 norms stay F32.
    let checkpoint = try Checkpoint(directory: folder)
    #expect(checkpoint.tensor("model.norm.weight")?.dtype == .f32)
    #expect(checkpoint.tensor("model.layers.0.self_attn.q_proj.weight")?.dtype == .bf16)
    let reference = try SmolLM2Tests.reference()
    func logits(_ path: String) throws -> [[Float]] {
      // The GGUF widened to bf16 everywhere, as the export is.
      let model = try DecoderModel.load(path: path, ggufWidening: path.hasSuffix(".gguf") ? .bf16 : nil)
      let session = try InferenceSession(model: model, threads: 2, maxRows: 64, maxLogitRows: 64)
      var rows: [[Float]] = []
      _ = try session.prefill(reference.ids[0], cache: session.makeCache(elementType: .f32), logits: .all) { view in
        for r in 0..<view.rows { rows.append(Array(view.row(r))) }
      }
      return rows
    }
    // Same element types through the same kernels: equal to the bit.
    #expect(try logits(folder) == logits(SmolLM2Tests.path))

    // Tokenizer: tokenizer.json + tokenizer_config.json read back into the same tokenizer.
    let original = try Tokenizer.fromGGUF(try GGUFFile(path: SmolLM2Tests.path))
    let converted = try Tokenizer.load(from: folder)
    #expect(converted.preTokenizer == .smollm)
    #expect(converted.configuration.chatTemplate == original.configuration.chatTemplate)
    #expect(converted.configuration.eosToken == "<|im_end|>")
    for text in try Fixtures.tokenizerCorpus().map(\.text) {
      #expect(converted.encode(text) == original.encode(text), "\(text.prefix(40).debugDescription)")
    }
    let model = try DecoderModel.load(path: folder)
    #expect(try model.stopTokenIds() == [2])
  }

  @Test func refusesToReplaceAnEarlierConversion() throws {
    let folder = try Fixtures.temporaryDirectory("export").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    _ = FileManager.default.createFile(atPath: (folder as NSString).appendingPathComponent("config.json"), contents: Data("{}".utf8))
    #expect(throws: EngineError.self) { try HuggingFaceExport.convert(gguf: SmolLM2Tests.path, to: folder) }
    // Nothing was written, and the file there is untouched.
    #expect(!FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("model.safetensors")))
    #expect(FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent("config.json")) == Data("{}".utf8))
  }

  @Test func safetensorsWriterOutputIsReadBack() throws {
    let folder = try Fixtures.temporaryDirectory("safetensors").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = (folder as NSString).appendingPathComponent("t.safetensors")
    let a: [Float] = [1.5, -2.25, 3, 0.125, 7, -1]
    let b: [UInt16] = [0x3F80, 0xC000, 0x4049]
    let writer = try SafetensorsWriter(
      path: path, entries: [.init(name: "a", dtype: .f32, shape: [2, 3]), .init(name: "b.weight", dtype: .bf16, shape: [3])])
    #expect(throws: EngineError.self) { try writer.finish() }  // declared tensors missing
    try a.withUnsafeBytes { try writer.append($0) }
    #expect(throws: EngineError.self) { try [UInt16](repeating: 0, count: 2).withUnsafeBytes { try writer.append($0) } }
    try b.withUnsafeBytes { try writer.append($0) }
    try writer.finish()
    let file = try SafetensorsFile(path: path)
    #expect(file.tensors["a"]?.shape == [2, 3] && file.tensors["b.weight"]?.dtype == .bf16)
    let info = try #require(file.tensors["a"])
    let values = (0..<6).map { file.file.base.loadUnaligned(fromByteOffset: info.fileOffset + 4 * $0, as: Float.self) }
    #expect(values == a)
    #expect(info.fileOffset % 8 == 0)
  }
}
