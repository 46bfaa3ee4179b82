import BitBudgetKernels
import BitBudgetTestSupport
import BitBudgetTokenizer
import Foundation
import Testing

@testable import BitBudgetEngine

/// ggml block types widened exactly as the gguf package's reference dequantizers do.
@Suite struct GGUFDequantizationTests {
  struct Reference: Decodable {
    let rows: Int
    let columns: Int
    let values: [String: [Float]]
  }

  @Test func everyTypeMatchesTheGGUFPackage() throws {
    let folder = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/gguf")
    let file = try GGUFFile(path: folder.appendingPathComponent("quant-types.gguf").path)
    let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: folder.appendingPathComponent("quant-types-reference.json")))
    #expect(reference.values.count == 12)
    for (name, expected) in reference.values {
      let tensor = try #require(file.tensors[name], "\(name)")
      #expect(tensor.dimensions == [reference.columns, reference.rows])
      var values = [Float](repeating: .nan, count: expected.count)
      let rowBytes = reference.columns / tensor.type.blockSize * tensor.type.blockBytes
      if name == "Q3_K" {
        #expect(throws: EngineError.self) { try GGUFDequantizer.dequantize(tensor.type, file.pointer(to: tensor), count: reference.columns, into: &values) }
        continue
      }
      for row in 0..<reference.rows {
        try values.withUnsafeMutableBufferPointer { out in
          try GGUFDequantizer.dequantize(tensor.type, file.pointer(to: tensor) + row * rowBytes, count: reference.columns, into: out.baseAddress! + row * reference.columns)
        }
      }
      let scale = expected.map(abs).max() ?? 1
      let worst = zip(values, expected).map { abs($0 - $1) }.max() ?? .nan
      // Same f32 arithmetic as the reference, up to the order of a product of three factors.
      #expect(worst <= 1e-6 * scale, "\(name): max |Δ| \(worst) of \(scale)")
    }
  }
}

/// Linear layers of the types the quantized kernels hold, repacked instead of widened.
@Suite struct GGUFHeldTypesTests {
  /// Every weight of a repacked tensor of a held type dequantizes to the widening's value bit
  /// for bit (the widening matches the gguf package, above), and the kernels multiply it as the
  /// widened f32 matrix.
  @Test func heldTypesRepackExactly() throws {
    let folder = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/gguf")
    let file = try GGUFFile(path: folder.appendingPathComponent("quant-types.gguf").path)
    let pool = ThreadPool(threadCount: 2)
    var held: [String] = []
    for (name, tensor) in file.tensors.sorted(by: { $0.key < $1.key }) {
      let (columns, rows) = (tensor.dimensions[0], tensor.dimensions[1])
      guard let storage = GGUFWeights.repack(tensor, at: file.pointer(to: tensor), rows: rows, columns: columns, rowOrder: nil, pool: pool) else {
        #expect(GGUFWeights.heldForm(tensor.type) == nil, "\(name)")
        continue
      }
      held.append(name)
      let m = storage.matrix
      #expect(m.byteCount == tensor.byteCount, "\(name): \(m.byteCount) bytes for \(tensor.byteCount)")
      var widened = [Float](repeating: .nan, count: rows * columns)
      let rowBytes = columns / tensor.type.blockSize * tensor.type.blockBytes
      for r in 0..<rows {
        try widened.withUnsafeMutableBufferPointer { out in
          try GGUFDequantizer.dequantize(tensor.type, file.pointer(to: tensor) + r * rowBytes, count: columns, into: out.baseAddress! + r * columns)
        }
      }
      let mismatches = (0..<(rows * columns)).filter { m.dequantized(row: $0 / columns, column: $0 % columns).bitPattern != widened[$0].bitPattern }
      #expect(mismatches.isEmpty, "\(name): \(mismatches.count) weights differ, first at \(mismatches.first ?? -1)")
      // The quantized kernels against the scalar products: the widened matrix's (f32 paths:
      // streaming decode and batches, and the tiled prefill that dequantizes panels), or the
      // int8 definition's (decode, batches and the int8 tiled prefill).
      var random = TestRandom(seed: 3)
      let scratch = LinearScratch(threadCount: 2, maxColumns: columns, quantized: true)
      let paths = [LinearActivations.exact] + (LinearActivations.int8Available ? [.rounded] : [])
      for (activations, tokens) in paths.flatMap({ a in [(a, 1), (a, 5), (a, Linear.tiledMinimumTokens + 3)] }) {
        let input = (0..<(tokens * columns)).map { _ in random.signedUnit() }
        scratch.activations = activations
        var fast = [Float](repeating: .nan, count: tokens * rows), slow = fast
        widened.withUnsafeBytes { w in
          input.withUnsafeBufferPointer { x in
            fast.withUnsafeMutableBufferPointer { out in
              Linear.run([LinearJob(weight: .quantized(m), output: out.baseAddress!, outputStride: rows)], input: x.baseAddress!, inputStride: columns, tokens: tokens, pool: pool, scratch: scratch)
            }
            slow.withUnsafeMutableBufferPointer { out in
              if activations == .rounded {
                Linear.reference(LinearJob(weight: .quantized(m), output: out.baseAddress!, outputStride: rows), input: x.baseAddress!, inputStride: columns, tokens: tokens, activations: .rounded)
              } else {
                let dense = DenseMatrix(base: w.baseAddress!, rows: rows, columns: columns, elementType: .f32)
                Linear.reference(LinearJob(weight: dense, output: out.baseAddress!, outputStride: rows), input: x.baseAddress!, inputStride: columns, tokens: tokens)
              }
            }
          }
        }
        let scale = slow.map(abs).max() ?? 1
        let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? .nan
        #expect(worst <= 1e-5 * scale + 1e-5, "\(name) \(activations) \(tokens) tokens: max |Δ| \(worst) of \(scale)")
      }
    }
    #expect(held == ["Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"])
  }
}

/// The real SmolLM2-135M-Instruct GGUF (Llama architecture, Q4_1/Q8_0) against transformers
/// loading the same file.
@Suite struct SmolLM2Tests {
  struct Reference: Decodable {
    struct Logits: Decodable {
      let position: Int
      let strided: [Float]
      let top_ids: [Int]
      let top_values: [Float]
    }

    let prompts: [String]
    let ids: [[Int]]
    let greedy_prompts: [Int]
    let greedy: [[Int]]
    let logit_stride: Int
    let logits: [Logits]
    let vocab_size: Int
  }

  static let path = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

  static func reference() throws -> Reference {
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/gguf/smollm2-reference.json")
    return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
  }

  @Test func configAndTokenizerFromMetadata() throws {
    let file = try GGUFFile(path: Self.path)
    let config = try ModelConfig.fromGGUF(file)
    #expect(config.architecture == .llama)
    #expect((config.layerCount, config.hiddenSize, config.intermediateSize) == (30, 576, 1536))
    #expect((config.queryHeads, config.kvHeads, config.headDim, config.vocabSize) == (9, 3, 64, 49152))
    #expect(config.tiedEmbeddings && config.ropeTheta == 100_000)
    let tokenizer = try Tokenizer.fromGGUF(file)
    #expect(tokenizer.preTokenizer == .smollm)
    let reference = try Self.reference()
    for (prompt, ids) in zip(reference.prompts, reference.ids) {
      #expect(tokenizer.encode(prompt) == ids, "\(prompt.debugDescription)")
      #expect(try tokenizer.decode(ids) == prompt)
    }
  }

  /// The whole tokenizer corpus against `tokenizers` running SmolLM2's own pipeline
  /// (Digits, then ByteLevel) over the GGUF's vocabulary (scripts/make-gguf-references.py).
  @Test func tokenizerMatchesTokenizersOnTheCorpus() throws {
    struct Expected: Decodable { let ids: [[Int]] }
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/gguf/smollm2-corpus.json")
    let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url)).ids
    let corpus = try Fixtures.tokenizerCorpus()
    #expect(expected.count == corpus.count && corpus.count >= 500)
    let tokenizer = try Tokenizer.fromGGUF(try GGUFFile(path: Self.path))
    var failures = 0
    for (entry, ids) in zip(corpus, expected) where tokenizer.encode(entry.text) != ids {
      failures += 1
      if failures <= 5 { Issue.record("\(entry.text.prefix(60).debugDescription) differs") }
    }
    #expect(failures == 0, "\(failures) of \(corpus.count) strings differ")
  }

  /// Weights widened to f32 (as transformers dequantizes): logits within 2e-4 of the largest,
  /// greedy continuations equal.
  @Test func logitsAndGreedyMatchTransformers() throws {
    let reference = try Self.reference()
    let model = try DecoderModel.load(path: Self.path, ggufWidening: .f32)
    let session = try InferenceSession(model: model, threads: 2, maxRows: 64, maxLogitRows: 64)
    var rows: [[Float]] = []
    _ = try session.prefill(reference.ids[0], cache: session.makeCache(elementType: .f32), logits: .all) { view in
      for r in 0..<view.rows { rows.append(Array(view.row(r))) }
    }
    #expect(rows.count == reference.ids[0].count)
    for expected in reference.logits {
      let row = rows[expected.position]
      let strided = stride(from: 0, to: row.count, by: reference.logit_stride).map { row[$0] }
      let scale = expected.top_values[0]
      let worst = max(
        zip(strided, expected.strided).map { abs($0 - $1) }.max() ?? .nan,
        zip(expected.top_ids, expected.top_values).map { abs(row[$0] - $1) }.max() ?? .nan)
      #expect(worst <= 2e-4 * abs(scale) + 1e-4, "position \(expected.position): |Δ| \(worst)")
      #expect(try Generator.argmax(row.withUnsafeBufferPointer { $0 }) == expected.top_ids[0])
    }
    for (index, expected) in zip(reference.greedy_prompts, reference.greedy) {
      let result = try Generator(session: session).generate(
        prompt: reference.ids[index], options: GenerationOptions(maxTokens: expected.count), cache: session.makeCache(elementType: .f32))
      #expect(result.samples[0].tokens == expected, "prompt \(index)")
    }
  }

  /// Linear layers kept quantized (the rest widened to f32) with f32 activations: the same
  /// logits and greedy continuations as transformers, at 0.66 bytes per linear weight.
  @Test func keptQuantizedMatchesTransformers() throws {
    let reference = try Self.reference()
    let file = try GGUFFile(path: Self.path)
    let config = try ModelConfig.fromGGUF(file)
    let weights = try ModelWeights(source: GGUFWeights(file: file, config: config, widenedType: .f32), config: config)
    #expect(weights.hasQuantizedLinears && weights.format.description.hasPrefix("gguf Q4_1"))
    let model = DecoderModel(config: config, weights: weights, path: Self.path, gguf: file)
    let session = try InferenceSession(model: model, threads: 2, maxRows: 64, maxLogitRows: 64)
    session.linearActivations = .exact
    var rows: [[Float]] = []
    _ = try session.prefill(reference.ids[0], cache: session.makeCache(elementType: .f32), logits: .all) { view in
      for r in 0..<view.rows { rows.append(Array(view.row(r))) }
    }
    for expected in reference.logits {
      let row = rows[expected.position]
      let strided = stride(from: 0, to: row.count, by: reference.logit_stride).map { row[$0] }
      let worst = zip(strided, expected.strided).map { abs($0 - $1) }.max() ?? .nan
      #expect(worst <= 2e-4 * abs(expected.top_values[0]) + 1e-4, "position \(expected.position): |Δ| \(worst)")
    }
    for (index, expected) in zip(reference.greedy_prompts, reference.greedy) {
      let result = try Generator(session: session).generate(
        prompt: reference.ids[index], options: GenerationOptions(maxTokens: expected.count), cache: session.makeCache(elementType: .f32))
      #expect(result.samples[0].tokens == expected, "prompt \(index)")
    }
  }

  /// By default (held types quantized, the rest widened to bf16, int8 activations where the
  /// build has them, bf16 KV cache) the first tokens still agree.
  @Test func defaultLoadStaysClose() throws {
    let reference = try Self.reference()
    let model = try DecoderModel.load(path: Self.path)
    #expect(model.weights.byteCount < 130_000_000)
    let session = try InferenceSession(model: model, threads: 2)
    let result = try Generator(session: session).generateGreedy(prompt: reference.ids[0], maxTokens: 8, stopTokens: [], cache: session.makeCache())
    #expect(result.samples[0].tokens == Array(reference.greedy[0].prefix(8)))
  }
}
