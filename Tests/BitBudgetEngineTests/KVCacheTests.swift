import BitBudgetKernels
import BitBudgetTestSupport
import Testing

@testable import BitBudgetEngine

@Suite struct KVCacheTests {
  static let name = "qwen3-gqa-tied-f32"

  /// Cached decode (one new token per forward pass over the cache) gives, at every step, the
  /// logits of a full re-prefill of the whole sequence. Prefill and decode use different kernels
  /// (tiled vs streaming) whose f32 sums differ in order by ~1e-7 relative; with an f32 cache that
  /// stays ~1e-6 in the logits (bound 1e-5). A bf16 cache can round such a key the other way
  /// (2⁻⁸ relative), which moved logits by up to 3e-5 relative here (bound 1e-3).
  @Test(arguments: [ElementType.f32, .bf16])
  func cachedDecodeEqualsRePrefill(kv: ElementType) throws {
    let reference = try Fixtures.reference(Self.name)
    let model = try DecoderModel.load(path: Fixtures.modelPath(Self.name))
    let session = try InferenceSession(model: model, threads: 2)
    let cache = session.makeCache(elementType: kv)
    var sequence = Array(reference.inputIds.prefix(30))
    var logits = Array(try session.prefill(sequence, cache: cache)!.row(0))
    for step in 0..<40 {
      let token = try Generator.argmax(logits.withUnsafeBufferPointer { $0 })
      let fresh = try InferenceSession(model: model, threads: 2)
      let full = Array(try fresh.prefill(sequence, cache: fresh.makeCache(elementType: kv))!.row(0))
      let scale = full.map(abs).max() ?? 1
      let difference = zip(logits, full).map { abs($0 - $1) }.max() ?? .nan
      #expect(difference <= (kv == .f32 ? 1e-5 : 1e-3) * scale, "step \(step): |Δ| \(difference)")
      sequence.append(token)
      logits = Array(try session.forward([SequenceInput(cache: cache, tokens: [token])], logits: .lastOfEachSequence).row(0))
    }
    #expect(cache.nextPosition == sequence.count)
  }

  /// Two sequences in one forward pass (each with its own cache) give what each gives alone.
  @Test func batchedSequencesEqualSeparateRuns() throws {
    let reference = try Fixtures.reference(Self.name)
    let model = try DecoderModel.load(path: Fixtures.modelPath(Self.name))
    let session = try InferenceSession(model: model, threads: 2)
    let a = Array(reference.inputIds.prefix(12)), b = Array(reference.inputIds.suffix(20))
    let cacheA = session.makeCache(elementType: .f32), cacheB = session.makeCache(elementType: .f32)
    _ = try session.prefill(a, cache: cacheA)
    _ = try session.prefill(b, cache: cacheB)
    let both = try session.forward(
      [SequenceInput(cache: cacheA, tokens: [5, 6]), SequenceInput(cache: cacheB, tokens: [7])], logits: .lastOfEachSequence)
    let batched = (0..<2).map { Array(both.row($0)) }
    for (prompt, next, row) in [(a, [5, 6], 0), (b, [7], 1)] {
      let fresh = try InferenceSession(model: model, threads: 2)
      let alone = Array(try fresh.prefill(prompt + next, cache: fresh.makeCache(elementType: .f32))!.row(0))
      #expect(zip(batched[row], alone).map { abs($0 - $1) }.max()! <= 1e-5 * (alone.map(abs).max() ?? 1))
    }
  }

  /// Several sequences prefilled together in one pass of more than 32 rows (the tiled kernel), each
  /// with its own cache and causal mask, give what each gives alone; a cache given twice is an
  /// error.
  @Test func multiSequencePrefillEqualsSeparateRuns() throws {
    let reference = try Fixtures.reference(Self.name)
    let model = try DecoderModel.load(path: Fixtures.modelPath(Self.name))
    let session = try InferenceSession(model: model, threads: 2, maxRows: 64, maxLogitRows: 4)
    let prompts = [Array(reference.inputIds.prefix(13)), Array(reference.inputIds.suffix(25)), [7, 8, 9]]
    let caches = prompts.map { _ in session.makeCache(elementType: .f32) }
    let view = try session.forward(zip(caches, prompts).map { SequenceInput(cache: $0, tokens: $1) }, logits: .lastOfEachSequence)
    let together = (0..<prompts.count).map { Array(view.row($0)) }
    for (index, prompt) in prompts.enumerated() {
      let fresh = try InferenceSession(model: model, threads: 2)
      let alone = Array(try fresh.prefill(prompt, cache: fresh.makeCache(elementType: .f32))!.row(0))
      #expect(zip(together[index], alone).map { abs($0 - $1) }.max()! <= 1e-5 * (alone.map(abs).max() ?? 1))
      #expect(caches[index].nextPosition == prompt.count)
    }
    let cache = session.makeCache()
    #expect(throws: EngineError.self) {
      try session.forward([SequenceInput(cache: cache, tokens: [1]), SequenceInput(cache: cache, tokens: [2])], logits: .none)
    }
  }

  /// A fork shares blocks until it appends: both branches continue independently and equal
  /// fresh runs; the original is not disturbed by the fork's appends into a shared block.
  @Test func forksAreIndependent() throws {
    let reference = try Fixtures.reference(Self.name)
    let model = try DecoderModel.load(path: Fixtures.modelPath(Self.name))
    let session = try InferenceSession(model: model, threads: 2)
    let prompt = Array(reference.inputIds.prefix(70))  // one full block of 64 and a partial one
    let original = session.makeCache(elementType: .f32)
    _ = try session.prefill(prompt, cache: original)
    let fork = original.fork()
    let forkLogits = Array(try session.forward([SequenceInput(cache: fork, tokens: [9])], logits: .lastOfEachSequence).row(0))
    let originalLogits = Array(try session.forward([SequenceInput(cache: original, tokens: [10])], logits: .lastOfEachSequence).row(0))
    for (next, got) in [(9, forkLogits), (10, originalLogits)] {
      let fresh = try InferenceSession(model: model, threads: 2)
      let expected = Array(try fresh.prefill(prompt + [next], cache: fresh.makeCache(elementType: .f32))!.row(0))
      #expect(zip(got, expected).map { abs($0 - $1) }.max()! <= 1e-5 * (expected.map(abs).max() ?? 1))
    }
  }

  /// Resident bytes are whole blocks of `blockTokens` tokens per layer.
  @Test func residentBytesCountBlocks() throws {
    let geometry = KVCacheGeometry(layers: 3, kvHeads: 2, headDim: 16)
    let cache = FullKVCache(geometry: geometry, elementType: .bf16)
    let row = [Float](repeating: 0.5, count: geometry.rowWidth * 100)
    let block = 2 * 2 * 16 * FullKVCache.blockTokens * 2
    #expect(cache.residentBytes == 0)
    for (count, blocks) in [(1, 1), (63, 1), (1, 2), (35, 2)] {
      row.withUnsafeBufferPointer { r in
        for layer in 0..<3 { cache.append(layer: layer, keys: r.baseAddress!, values: r.baseAddress!, count: count) }
      }
      cache.commit(tokens: count)
      #expect(cache.residentBytes == 3 * blocks * block)
    }
    #expect(cache.residentTokens == 100)
    #expect(cache.nextPosition == 100)
  }

  @Test func rejectsTokensOutsideVocabularyAndContext() throws {
    let model = try DecoderModel.load(path: Fixtures.modelPath(Self.name))
    let session = try InferenceSession(model: model, threads: 1)
    #expect(throws: EngineError.self) { try session.prefill([1, 512], cache: session.makeCache()) }
    #expect(throws: EngineError.self) { try session.prefill([-1], cache: session.makeCache()) }
    let tooLong = [Int](repeating: 3, count: model.config.maxPositions + 1)
    #expect(throws: EngineError.self) { try session.prefill(tooLong, cache: session.makeCache()) }
    #expect(throws: EngineError.self) {
      try Generator(session: session).generateGreedy(prompt: [1, 2], maxTokens: model.config.maxPositions, stopTokens: [], cache: session.makeCache())
    }
  }
}
