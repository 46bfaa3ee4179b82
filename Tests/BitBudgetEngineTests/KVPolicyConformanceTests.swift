import BitBudgetKernels
import BitBudgetMemory
import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// What every KV-cache policy and composition must do (driven directly with random keys, values
/// and queries, and through a model), plus the references reproduced through the cache itself.
@Suite struct KVPolicyConformanceTests {
  /// Every registered policy's own specs, each also composed with HQQ, and HQQ alone.
  static let specs = KVPolicies.evictionPolicies.flatMap { policy in
    policy.conformanceSpecs + [policy.conformanceSpecs[0] + "+hqq:4,group=16", policy.conformanceSpecs.last! + "+hqq:8,group=16"]
  } + ["hqq:8,group=16", "hqq:4,group=16,residual=24", "hqq:2,group=8", "hqq:2,group=16"]
  static let geometry = KVCacheGeometry(layers: 2, kvHeads: 2, headDim: 32)
  static let queryHeads = 4
  static var shape: AttentionShape { AttentionShape(queryHeads: queryHeads, kvHeads: geometry.kvHeads, headDim: geometry.headDim) }

  /// Appends `count` random tokens to every layer, attends with random queries, commits; returns
  /// the attention output of the last layer.
  @discardableResult
  static func feed(_ cache: any KVCache, count: Int, random: inout TestRandom, pool: ThreadPool, scratch: AttentionScratch) -> [Float] {
    let width = geometry.rowWidth
    let queryWidth = queryHeads * geometry.headDim
    var output = [Float](repeating: 0, count: count * queryWidth)
    for layer in 0..<geometry.layers {
      let keys = (0..<count * width).map { _ in random.signedUnit() * 2 }
      let values = (0..<count * width).map { _ in random.signedUnit() }
      let queries = (0..<count * queryWidth).map { _ in random.signedUnit() * 2 }
      cache.engine.append(layer: layer, keys: keys, values: values, count: count)
      cache.engine.attend(layer: layer, queries: queries, rows: count, shape: shape, output: &output, pool: pool, scratch: scratch)
    }
    cache.engine.commit(tokens: count)
    return output
  }

  /// `residentBytes` recounted from the stored arrays by the formula the docs state.
  static func recount(_ cache: CompressedKVCache) -> Int {
    let g = cache.geometry
    var total = 0
    for layer in cache.layers {
      total += 2 * g.rowWidth * layer.denseCapacity * cache.elementType.byteCount
      total += layer.queries.byteCount
      total += (cache.spec.eviction?.markBytesPerHead ?? 0) * g.kvHeads
      // Attention totals: one f32 per token slot and KV head.
      total += layer.plan.totalsCapacity * g.kvHeads * 4
      #expect(layer.totals.byteCount == layer.plan.totalsCapacity * g.kvHeads * 4)
      if let q = cache.spec.quantization {
        // Per token slot and head: key and value codes, and a scale and zero per group for each.
        let perRow = 2 * g.headDim * q.bits / 8 + 4 * (g.headDim / q.groupSize) * cache.metaType.byteCount
        total += layer.quantized.reduce(0) { $0 + $1.capacity * g.kvHeads * perRow }
      }
    }
    return total
  }

  @Test(arguments: specs)
  func longRunStaysBoundedAndCountsExactly(_ text: String) throws {
    let spec = try KVCacheSpec.parse(text)
    let cache = try #require(try spec.makeCache(geometry: Self.geometry, queryHeads: Self.queryHeads, elementType: .bf16) as? CompressedKVCache)
    var random = TestRandom(seed: 7)
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    Self.feed(cache, count: 100, random: &random, pool: pool, scratch: scratch)
    var largest = 0
    // 10,000 steps where eviction bounds the cache; quantization alone keeps every token (the
    // attention cost grows with them), so 2,000 steps check its accounting.
    let steps = spec.eviction == nil ? 2_000 : 10_000
    for step in 0..<steps {
      let output = Self.feed(cache, count: 1, random: &random, pool: pool, scratch: scratch)
      #expect(output.allSatisfy { $0.isFinite })
      largest = max(largest, cache.residentTokens)
      if step % 997 == 0 { #expect(cache.residentBytes == Self.recount(cache), "step \(step)") }
      if let eviction = spec.eviction {
        if cache.residentTokens > eviction.budget + eviction.interval {
          Issue.record("\(cache.residentTokens) tokens held, bound \(eviction.budget + eviction.interval)")
          break
        }
      }
    }
    #expect(cache.nextPosition == 100 + steps)
    if spec.eviction == nil { #expect(largest == 100 + steps) }
    #expect(cache.residentBytes == Self.recount(cache))
  }

  /// The kernel's attention over the cache (dense and quantized segments) equals the scalar
  /// definition over the same stored rows, after compressions and flushes.
  @Test(arguments: specs)
  func attentionEqualsTheReferenceOverTheStoredRows(_ text: String) throws {
    for elementType in [ElementType.bf16, .f32] { try checkAttention(text, elementType) }
  }

  func checkAttention(_ text: String, _ elementType: ElementType) throws {
    let spec = try KVCacheSpec.parse(text)
    let cache = try #require(try spec.makeCache(geometry: Self.geometry, queryHeads: Self.queryHeads, elementType: elementType) as? CompressedKVCache)
    var random = TestRandom(seed: 11)
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    Self.feed(cache, count: 70, random: &random, pool: pool, scratch: scratch)
    for _ in 0..<150 { Self.feed(cache, count: 1, random: &random, pool: pool, scratch: scratch) }
    let queryWidth = Self.queryHeads * Self.geometry.headDim
    let queries = (0..<queryWidth).map { _ in random.signedUnit() * 2 }
    let width = Self.geometry.rowWidth
    let keys = (0..<width).map { _ in random.signedUnit() }
    cache.append(layer: 0, keys: keys, values: keys, count: 1)
    var ours = [Float](repeating: 0, count: queryWidth)
    cache.attend(layer: 0, queries: queries, rows: 1, shape: Self.shape, output: &ours, pool: pool, scratch: scratch)
    let layer = cache.layers[0]
    let segments = layer.quantized.map(\.segment) + [cache.denseSegment(layer)]
    var expected = [Float](repeating: 0, count: queryWidth)
    segments.withUnsafeBufferPointer {
      Attention.reference(queries: queries, rows: 1, visibleBefore: layer.tokens - 1, segments: $0, shape: Self.shape, output: &expected)
    }
    let worst = zip(ours, expected).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst <= 1e-5, "\(elementType): |Δ| \(worst)")
  }

  /// Quantized attention with real head shapes: Qwen2.5-0.5B's 7 query heads per KV head at
  /// head_dim 64 (head chunks of 4 and 3) and Qwen3's 128, each with a ragged last 16-token pass.
  @Test(arguments: [(14, 64, "hqq:4"), (14, 64, "hqq:2"), (16, 128, "hqq:8"), (3, 128, "hqq:4")])
  func quantizedAttentionWithRealShapes(queryHeads: Int, headDim: Int, text: String) throws {
    let geometry = KVCacheGeometry(layers: 1, kvHeads: queryHeads == 3 ? 1 : 2, headDim: headDim)
    let shape = AttentionShape(queryHeads: queryHeads, kvHeads: geometry.kvHeads, headDim: headDim)
    let cache = try #require(try KVCacheSpec.parse(text).makeCache(geometry: geometry, queryHeads: queryHeads) as? CompressedKVCache)
    var random = TestRandom(seed: 5)
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    let width = geometry.rowWidth, queryWidth = queryHeads * headDim
    for count in [77, 1, 1] {
      let keys = (0..<count * width).map { _ in random.signedUnit() * 3 }
      let values = (0..<count * width).map { _ in random.signedUnit() }
      let queries = (0..<count * queryWidth).map { _ in random.signedUnit() }
      var output = [Float](repeating: 0, count: count * queryWidth)
      cache.append(layer: 0, keys: keys, values: values, count: count)
      cache.attend(layer: 0, queries: queries, rows: count, shape: shape, output: &output, pool: pool, scratch: scratch)
      let layer = cache.layers[0]
      let segments = layer.quantized.map(\.segment) + [cache.denseSegment(layer)]
      var expected = [Float](repeating: 0, count: count * queryWidth)
      segments.withUnsafeBufferPointer {
        Attention.reference(queries: queries, rows: count, visibleBefore: layer.tokens - count, segments: $0, shape: shape, output: &expected)
      }
      let worst = zip(output, expected).map { abs($0 - $1) }.max() ?? .infinity
      #expect(worst <= 1e-5, "\(count) rows over \(layer.tokens): |Δ| \(worst)")
      cache.commit(tokens: count)
    }
    #expect(cache.layers[0].quantized.count == 1)
  }

  /// Eviction with quantization: kept rows that were already quantized move as they are (codes,
  /// scales and zeros), so they dequantize to exactly what they did before the compression.
  @Test(arguments: [ElementType.bf16, .f32])
  func keptQuantizedRowsMoveUnchanged(_ elementType: ElementType) throws {
    let spec = try KVCacheSpec.parse("streaming:40,sinks=4+hqq:4,group=16")
    let cache = try #require(try spec.makeCache(geometry: Self.geometry, queryHeads: Self.queryHeads, elementType: elementType) as? CompressedKVCache)
    var random = TestRandom(seed: 21)
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    Self.feed(cache, count: 100, random: &random, pool: pool, scratch: scratch)  // compressed to 40, all quantized
    while (cache.nextPosition + 1) % 128 != 0 { Self.feed(cache, count: 1, random: &random, pool: pool, scratch: scratch) }
    Self.feed(cache, count: 1, random: &random, pool: pool, scratch: scratch)  // the step before a compression
    let (d, heads) = (Self.geometry.headDim, Self.geometry.kvHeads)
    let quantizedBefore = cache.layers[0].quantizedTokens
    let total = cache.layers[0].tokens
    let keys = cache.rowsInCacheOrder(0), values = cache.rowsInCacheOrder(0, values: true)
    Self.feed(cache, count: 1, random: &random, pool: pool, scratch: scratch)  // appends, then compresses
    #expect(cache.layers[0].tokens == 40 && cache.layers[0].denseTokens == 0)
    let kept = Array(0..<4) + Array((total + 1 - 36)..<(total + 1))
    let keysAfter = cache.rowsInCacheOrder(0), valuesAfter = cache.rowsInCacheOrder(0, values: true)
    var compared = 0
    for h in 0..<heads {
      for (slot, row) in kept.enumerated() where row < quantizedBefore {
        let before = (h * total + row) * d, after = (h * 40 + slot) * d
        #expect(Array(keysAfter[after..<(after + d)]) == Array(keys[before..<(before + d)]), "key \(row) → \(slot)")
        #expect(Array(valuesAfter[after..<(after + d)]) == Array(values[before..<(before + d)]), "value \(row) → \(slot)")
        compared += 1
      }
    }
    #expect(compared >= 2 * heads)
  }

  /// R-KV's marks (what a compression learned about the keys it kept) only skip similarity sums
  /// whose outcome is known: a cache that uses them selects the same rows, and finds the same keys
  /// isolated, as one whose marks are wiped before every compression. Threshold 0.45 over random
  /// 32-dimensional keys (cosine spread ≈ 0.18) leaves most keys isolated and some similar; with
  /// HQQ the rows quantized after a compression change, so they must lose their marks (also with
  /// residual flushes between compressions). A prefill chunk comes between decode compressions,
  /// and the caches are swapped for forks halfway.
  @Test(arguments: [
    "rkv:40,buffer=16,threshold=0.45", "rkv:40,buffer=16,threshold=0.45+hqq:2,group=16",
    "rkv:40,buffer=16,threshold=0.45+hqq:2,group=16,residual=4",
  ])
  func marksDoNotChangeTheKeptRows(_ text: String) throws {
    let spec = try KVCacheSpec.parse(text)
    var marked = try #require(try spec.makeCache(geometry: Self.geometry, queryHeads: Self.queryHeads, elementType: .bf16) as? CompressedKVCache)
    var unmarked = try #require(try spec.makeCache(geometry: Self.geometry, queryHeads: Self.queryHeads, elementType: .bf16) as? CompressedKVCache)
    var random = TestRandom(seed: 8)
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    let (width, queryWidth) = (Self.geometry.rowWidth, Self.queryHeads * Self.geometry.headDim)
    var isolatedSeen = 0, settledSeen = 0, compared = 0
    let eviction = try #require(spec.eviction)
    let counts = [30, 1, 1, 5] + Array(repeating: 1, count: 60) + [20] + Array(repeating: 1, count: 60)
    for (step, count) in counts.enumerated() {
      if step == 70 {
        marked = try #require(marked.fork() as? CompressedKVCache)
        unmarked = try #require(unmarked.fork() as? CompressedKVCache)
      }
      var output = [Float](repeating: 0, count: count * queryWidth)
      for layer in 0..<Self.geometry.layers {
        let keys = (0..<count * width).map { _ in random.signedUnit() * 2 }
        let values = (0..<count * width).map { _ in random.signedUnit() }
        let queries = (0..<count * queryWidth).map { _ in random.signedUnit() * 2 }
        for cache in [marked, unmarked] {
          cache.append(layer: layer, keys: keys, values: values, count: count)
          cache.attend(layer: layer, queries: queries, rows: count, shape: Self.shape, output: &output, pool: pool, scratch: scratch)
        }
      }
      for l in 0..<Self.geometry.layers {
        let marks = unmarked.layers[l].marks
        marks.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: marks.byteCount)
        let held = marked.layers[l].marks
        for b in 0..<held.byteCount {
          let mark = KeyMarks(rawValue: held.pointer.load(fromByteOffset: b, as: UInt8.self))
          if mark.contains(.isolated) { isolatedSeen += 1 } else if mark.contains(.settled) { settledSeen += 1 }
        }
        if count > 1 || marked.nextPosition % eviction.interval == 0, let selection = marked.selectRows(l, eviction) {
          #expect(selection == unmarked.selectRows(l, eviction), "layer \(l) at \(marked.nextPosition)")
          compared += 1
        }
      }
      marked.commit(tokens: count)
      unmarked.commit(tokens: count)
      for l in 0..<Self.geometry.layers {
        #expect(marked.rowsInCacheOrder(l) == unmarked.rowsInCacheOrder(l), "keys, layer \(l) at \(marked.nextPosition)")
        #expect(marked.rowsInCacheOrder(l, values: true) == unmarked.rowsInCacheOrder(l, values: true), "values, layer \(l)")
      }
    }
    // Both kinds of marks were in play (with HQQ only the rows quantized before a compression
    // keep theirs).
    #expect(isolatedSeen > 0 && settledSeen > 0, "isolated \(isolatedSeen), settled only \(settledSeen)")
    #expect(compared >= 10)
  }

  /// H2O fixtures (the H2O repository's `H2OKVCache_LayerWise`, `scripts/make-h2o-fixtures.py`)
  /// replayed through the cache with the reference's schedule (`buffer=1`: a compression at every
  /// step once the budget is reached): a prompt, then one token per pass; the rows held at the end
  /// are the reference's, in its order, with the same keys and values. Accumulated attention
  /// that left out the prompt's weights, or totals that did not follow their rows through a
  /// compression, fail them.
  @Test(arguments: ["h2o-mha2-P60-S40-b32-r16", "h2o-mha4-P24-S70-b20-r4"])
  func h2oReferenceThroughTheCache(_ name: String) throws {
    struct Case: Decodable {
      let budget: Int, recent: Int, prompt_tokens: Int, steps: Int, heads: Int, head_dim: Int
      let queries: [Float], keys: [Float], values: [Float]
      let kept_positions: [[Int]], out_keys: [Float], out_values: [Float]
    }
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/kv/\(name).json")
    let reference = try JSONDecoder().decode(Case.self, from: Data(contentsOf: url))
    let (heads, d, total) = (reference.heads, reference.head_dim, reference.prompt_tokens + reference.steps)
    var policy = H2OPolicy(budget: reference.budget, recent: reference.recent)
    policy.buffer = 1
    let cache = try #require(
      try KVCacheSpec(eviction: policy).makeCache(
        geometry: KVCacheGeometry(layers: 1, kvHeads: heads, headDim: d), queryHeads: heads, elementType: .f32)
        as? CompressedKVCache)
    // [heads][tokens][d] → rows [count][heads·d] of tokens first..<first+count.
    func rows(_ flat: [Float], _ first: Int, _ count: Int) -> [Float] {
      var out = [Float](repeating: 0, count: count * heads * d)
      for t in 0..<count { for h in 0..<heads { for x in 0..<d { out[(t * heads + h) * d + x] = flat[(h * total + first + t) * d + x] } } }
      return out
    }
    let shape = AttentionShape(queryHeads: heads, kvHeads: heads, headDim: d)
    let (pool, scratch) = (ThreadPool(threadCount: 2), AttentionScratch(threadCount: 2))
    var first = 0
    for count in [reference.prompt_tokens] + Array(repeating: 1, count: reference.steps) {
      var output = [Float](repeating: 0, count: count * heads * d)
      cache.append(layer: 0, keys: rows(reference.keys, first, count), values: rows(reference.values, first, count), count: count)
      cache.attend(layer: 0, queries: rows(reference.queries, first, count), rows: count, shape: shape, output: &output, pool: pool, scratch: scratch)
      cache.commit(tokens: count)
      first += count
    }
    #expect(cache.residentTokens == reference.budget)
    #expect(cache.rowsInCacheOrder(0) == reference.out_keys, "kept \(reference.kept_positions)")
    #expect(cache.rowsInCacheOrder(0, values: true) == reference.out_values)
  }

  /// Every policy's spec text is canonical: parsing it again gives the same spec. Budgets that do
  /// not exceed the observation window are refused (an R-KV budget of 4 used to crash the
  /// compression), as are malformed options.
  @Test func specsParseToCanonicalText() throws {
    for text in Self.specs + ["rkv:1024,window=300,buffer=400", "snapkv:1024,window=200"] {
      let spec = try KVCacheSpec.parse(text)
      #expect(try KVCacheSpec.parse(spec.description) == spec, "\(text) → \(spec)")
      // The display form leaves defaults out and still means the same spec.
      #expect(try KVCacheSpec.parse(spec.shortDescription) == spec, "\(text) → \(spec.shortDescription)")
    }
    #expect(try KVCacheSpec.parse("rkv:2048").shortDescription == "rkv:2048")
    #expect(try KVCacheSpec.parse("rkv:2048,window=16+hqq:4,group=32").shortDescription == "rkv:2048,window=16+hqq:4,group=32")
    #expect(KVCacheSpec.shortDescription(of: "future:12,x=1") == "future:12,x=1")
    #expect(try KVCacheSpec.parse("snapkv:64").description == "snapkv:64,window=32,kernel=7,buffer=128")
    #expect(try KVCacheSpec.parse("snapkv:64") != KVCacheSpec.parse("snapkv:64,window=31"))
    // A window longer than the default interval moves the interval's default with it.
    for long in ["snapkv:1024,window=200", "rkv:1024,window=300"] {
      let spec = try KVCacheSpec.parse(long)
      #expect(try KVCacheSpec.parse(spec.description) == spec && spec.eviction?.interval == spec.eviction?.queryWindow, "\(spec)")
    }
    for bad in [
      "rkv:4", "rkv:8", "snapkv:32", "snapkv:64,kernel=4", "snapkv:64,window=0", "snapkv:64,buffer=8", "snapkv:64,lambda=1",
      "streaming:3", "streaming:4", "h2o:64,recent=65",
    ] {
      #expect(throws: EngineError.self, "\(bad)") { try KVCacheSpec.parse(bad) }
    }
    for policy in KVPolicies.evictionPolicies {
      #expect(KVCacheSpec.acceptedForms.contains(policy.form))
    }
  }

  /// A policy defined outside the engine, registered at run time: parsing, the accepted forms,
  /// a bounded cache and the memory model's replay all take it without further code.
  @Test func registeredPolicyRunsThroughTheCache() throws {
    KVPolicies.register(NewestTokensPolicy.self)
    #expect(KVCacheSpec.acceptedForms.contains("newest:B"))
    let spec = try KVCacheSpec.parse("newest:40+hqq:4,group=16")
    #expect(spec.description == "newest:40+hqq:4,group=16,residual=128")
    let cache = try #require(try spec.makeCache(geometry: Self.geometry, queryHeads: Self.queryHeads) as? CompressedKVCache)
    var random = TestRandom(seed: 4)
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    Self.feed(cache, count: 70, random: &random, pool: pool, scratch: scratch)
    for _ in 0..<300 { Self.feed(cache, count: 1, random: &random, pool: pool, scratch: scratch) }
    #expect(cache.residentTokens <= 40 + 16)
    #expect(cache.residentBytes == Self.recount(cache))
    let usage = KVMemory.engineUsage(
      geometry: Self.geometry, queryHeads: Self.queryHeads, spec: spec, elementType: .bf16, promptTokens: 70, tokens: 300,
      samples: 1, prefillChunk: 70)
    #expect(usage.bytes == cache.residentBytes)
  }

  /// Below the budget an evicting cache is the full cache: same logits through a model.
  @Test(arguments: KVPolicies.evictionPolicies.map { "\($0.name):64" })
  func belowBudgetEqualsFull(_ text: String) throws {
    let name = "qwen3-gqa-tied-f32"
    let reference = try Fixtures.reference(name)
    let model = try DecoderModel.load(path: Fixtures.modelPath(name))
    let session = try InferenceSession(model: model, threads: 2)
    let prompt = Array(reference.inputIds.prefix(20))
    let full = try Generator(session: session).generateGreedy(prompt: prompt, maxTokens: 40, stopTokens: [], cache: session.makeCache(elementType: .f32))
    let cache = try session.makeCache(spec: try KVCacheSpec.parse(text), elementType: .f32)
    let evicting = try Generator(session: session).generateGreedy(prompt: prompt, maxTokens: 40, stopTokens: [], cache: cache)
    #expect(evicting.samples[0].tokens == full.samples[0].tokens)
    // The last generated token is not fed back.
    #expect(cache.residentTokens == 59 && cache.nextPosition == 59)
  }

  /// Forks evolve independently; quantized blocks are shared, not copied.
  @Test(arguments: specs)
  func forksAreIndependent(_ text: String) throws {
    let spec = try KVCacheSpec.parse(text)
    let cache = try spec.makeCache(geometry: Self.geometry, queryHeads: Self.queryHeads, elementType: .f32)
    var random = TestRandom(seed: 3)
    let pool = ThreadPool(threadCount: 2)
    let scratch = AttentionScratch(threadCount: 2)
    Self.feed(cache, count: 90, random: &random, pool: pool, scratch: scratch)
    let fork = cache.fork()
    if spec.quantization != nil {
      var shared = Set<ObjectIdentifier>()
      cache.engine.forEachStorage { id, _ in shared.insert(id) }
      var common = 0
      fork.engine.forEachStorage { id, _ in if shared.contains(id) { common += 1 } }
      #expect(common == Self.geometry.layers, "one quantized block per layer shared")
    }
    let before = try #require(cache as? CompressedKVCache).rowsInCacheOrder(0)
    var other = TestRandom(seed: 99)
    for _ in 0..<60 { Self.feed(fork, count: 1, random: &other, pool: pool, scratch: scratch) }
    #expect(try #require(cache as? CompressedKVCache).rowsInCacheOrder(0) == before)
    #expect(cache.nextPosition == 90 && fork.nextPosition == 150)
  }

  /// R-KV, StreamingLLM and SnapKV fixtures replayed through the cache: a prefill of the
  /// fixture's keys (f32 cache) whose last queries are the fixture's window ends with the
  /// reference's rows.
  @Test(arguments: [
    "rkv-at-budget-L64-b64", "rkv-gqa2-L200-b64", "rkv-gqa4-L300-b128-lam007", "rkv-mha-L160-b48",
    "streaming-L100-b32-s4", "streaming-L20-b32-s4",
  ] + EvictionPolicyTests.snapKVFixtures)
  func referenceThroughTheCache(_ name: String) throws {
    let reference = try EvictionPolicyTests.load(name)
    let (heads, length, d) = (reference.kv_heads, reference.length, reference.head_dim)
    let queryHeads = reference.query_heads ?? heads
    let spec = KVCacheSpec(eviction: EvictionPolicyTests.policy(reference))
    let cache = try #require(
      try spec.makeCache(geometry: KVCacheGeometry(layers: 1, kvHeads: heads, headDim: d), queryHeads: queryHeads, elementType: .f32)
        as? CompressedKVCache)
    // [kvHeads][length][d] → rows [length][kvHeads·d].
    func rows(_ flat: [Float]) -> [Float] {
      var out = [Float](repeating: 0, count: flat.count)
      for h in 0..<heads { for t in 0..<length { for x in 0..<d { out[(t * heads + h) * d + x] = flat[(h * length + t) * d + x] } } }
      return out
    }
    cache.append(layer: 0, keys: rows(reference.keys), values: rows(reference.values), count: length)
    let window = spec.eviction?.queryWindow ?? 0
    var queries = [Float](repeating: 0.5, count: length * queryHeads * d)
    if let windowQueries = reference.window_queries {
      for i in 0..<window { for h in 0..<queryHeads { for x in 0..<d {
        queries[((length - window + i) * queryHeads + h) * d + x] = windowQueries[(h * window + i) * d + x]
      } } }
    }
    var output = [Float](repeating: 0, count: length * queryHeads * d)
    let shape = AttentionShape(queryHeads: queryHeads, kvHeads: heads, headDim: d)
    cache.attend(layer: 0, queries: queries, rows: length, shape: shape, output: &output, pool: ThreadPool(threadCount: 2), scratch: AttentionScratch(threadCount: 2))
    cache.commit(tokens: length)
    #expect(cache.rowsInCacheOrder(0) == reference.out_keys)
    #expect(cache.nextPosition == length)
  }
}

/// Keeps the newest `budget` tokens every 16 steps: the smallest policy a package could add.
struct NewestTokensPolicy: EvictionPolicy {
  static let name = "newest"
  static let form = "newest:B"
  static let conformanceSpecs = ["newest:40"]
  var budget: Int
  init(budget: Int, options: inout KVSpecOptions) throws { self.budget = budget }
  var description: String { "newest:\(budget)" }
  var interval: Int { 16 }
  func keptRows(_ request: EvictionRequest) -> [[Int]] {
    Array(repeating: Array((request.length - budget)..<request.length), count: request.kvHeads)
  }
}

extension KVCache {
  /// The calls the forward pass makes, on a cache the tests made with `makeCache` (always one of
  /// the engine's, so the cast cannot fail).
  var engine: any KVCacheStorage { self as! any KVCacheStorage }
}
