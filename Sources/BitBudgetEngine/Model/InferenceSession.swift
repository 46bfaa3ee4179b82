import BitBudgetKernels

/// New tokens of one sequence for a forward pass: they get positions `cache.nextPosition…`.
public struct SequenceInput {
  public let cache: any KVCache
  public let tokens: [Int]

  public init(cache: any KVCache, tokens: [Int]) {
    self.cache = cache
    self.tokens = tokens
  }
}

/// Which rows of a forward pass produce logits.
public enum LogitRows: Sendable {
  /// None (a prefill chunk that is not the last).
  case none
  /// The last token of each sequence (generation).
  case lastOfEachSequence
  /// Every token (`bitbudget logits`); at most `maxLogitRows` rows per call.
  case all
}

/// Logits of a forward pass: `rows × vocabSize` f32 values inside the session's workspace, valid
/// until the session's next forward pass.
public struct LogitsView {
  public let base: UnsafePointer<Float>
  public let rows: Int
  public let vocabSize: Int

  public func row(_ index: Int) -> UnsafeBufferPointer<Float> {
    UnsafeBufferPointer(start: base + index * vocabSize, count: vocabSize)
  }
}

/// Runs a `DecoderModel`: owns the thread pool and every activation buffer, sized once for at most
/// `maxRows` token rows per forward pass, so forward passes allocate no activation memory (the KV
/// cache's blocks, and the attention tiles at the first attention call, aside). Not thread-safe: one
/// session serves one generation loop at a time.
///
/// The forward pass is transformers' `Qwen3ForCausalLM` in f32: embedding → per layer [RMSNorm →
/// q/k/v projections (+bias) → per-head q/k RMSNorm → RoPE → KV cache → causal GQA attention →
/// o_proj → residual → RMSNorm → SwiGLU MLP (or routed experts' MLPs) → residual] → RMSNorm →
/// lm_head.
public final class InferenceSession {
  public let model: DecoderModel
  public let pool: ThreadPool
  /// Largest number of token rows (over all sequences) in one forward pass.
  public let maxRows: Int
  /// Rows per forward pass unless told otherwise (so also the prefill chunk).
  public static let defaultMaxRows = 256
  /// Largest number of rows that produce logits in one forward pass.
  public let maxLogitRows: Int

  private let config: ModelConfig
  private let rotary: RotaryEmbedding
  private let attentionShape: AttentionShape
  private var linearScratch: LinearScratch
  private let attentionScratch: AttentionScratch
  private let buffers: Buffers
  private var qkvJobs: [[LinearJob]]
  private var outputJobs: [[LinearJob]]
  private var gateUpJobs: [[LinearJob]]
  private var downJobs: [[LinearJob]]
  /// Per layer of experts, the router's job and each expert's gate/up and down jobs.
  private let expertJobs: [ExpertJobs?]
  private let lmHeadJobs: [LinearJob]
  private var rowPositions: [Int]

  /// Called with the input rows of each group of linear layers as the forward pass reaches them
  /// (`[count, stride]` floats, valid during the call): how GPTQ collects its Hessians. Nil
  /// normally.
  public var linearInputObserver: ((_ layer: Int, _ site: LinearSite, _ rows: UnsafePointer<Float>, _ stride: Int, _ count: Int) -> Void)?

  /// f32 activation buffers, 64-byte aligned; for a mixture of experts also the router's
  /// outputs and the routing (`ExpertRouting`), 4-byte integers where they hold indices.
  final class Buffers {
    let residual, normed, query, key, value, attention, projection, gate, up: UnsafeMutablePointer<Float>
    let cosines, sines, finalRows, logits: UnsafeMutablePointer<Float>
    let experts: ExpertBuffers?
    let byteCount: Int
    private var allocations: [UnsafeMutableRawPointer] = []

    struct ExpertBuffers {
      /// `[rows, count]` router logits, then probabilities.
      let routerLogits: UnsafeMutablePointer<Float>
      /// `[rows, hidden]`: the normed rows routed to one expert, gathered.
      let input: UnsafeMutablePointer<Float>
      /// `[rows, perToken]`: each row's experts and their weights.
      let chosen: UnsafeMutablePointer<Int32>
      let weights: UnsafeMutablePointer<Float>
      /// `[rows × perToken]` choices grouped by expert, and `count + 1` group starts.
      let order: UnsafeMutablePointer<Int32>
      let starts: UnsafeMutablePointer<Int32>
    }

    /// Values of each buffer (4 bytes each), in the order `init` makes them (each a multiple of
    /// 16, at least 16).
    static func sizes(config c: ModelConfig, rows: Int, logitRows: Int) -> [Int] {
      var sizes = [
        rows * c.hiddenSize, rows * c.hiddenSize, rows * c.queryWidth, rows * c.kvWidth, rows * c.kvWidth,
        rows * c.queryWidth, rows * c.hiddenSize, rows * c.widestMLP, rows * c.widestMLP,
        rows * c.headDim / 2, rows * c.headDim / 2, logitRows * c.hiddenSize, logitRows * c.vocabSize,
      ]
      if let e = c.experts {
        sizes += [rows * e.count, rows * c.hiddenSize, rows * e.perToken, rows * e.perToken, rows * e.perToken, e.count + 1]
      }
      return sizes.map { max(16, ($0 + 15) / 16 * 16) }
    }

    init(config c: ModelConfig, rows: Int, logitRows: Int) {
      let sizes = Self.sizes(config: c, rows: rows, logitRows: logitRows)
      let raw = sizes.map { UnsafeMutableRawPointer.allocate(byteCount: $0 * 4, alignment: 64) }
      let list = raw.map { $0.bindMemory(to: Float.self, capacity: 16) }
      (residual, normed, query, key, value, attention, projection) = (list[0], list[1], list[2], list[3], list[4], list[5], list[6])
      (gate, up, cosines, sines, finalRows, logits) = (list[7], list[8], list[9], list[10], list[11], list[12])
      if c.experts != nil {
        func integers(_ i: Int) -> UnsafeMutablePointer<Int32> { raw[i].bindMemory(to: Int32.self, capacity: sizes[i]) }
        experts = ExpertBuffers(
          routerLogits: list[13], input: list[14], chosen: integers(15), weights: list[16], order: integers(17), starts: integers(18))
      } else {
        experts = nil
      }
      byteCount = sizes.reduce(0, +) * 4
      allocations = raw
    }

    deinit {
      for pointer in allocations { pointer.deallocate() }
    }

    /// Values (4 bytes each) of all buffers, or nil if they overflow.
    static func floats(config c: ModelConfig, rows: Int, logitRows: Int) -> Int? {
      var perRow = [c.hiddenSize, c.hiddenSize, c.queryWidth, c.kvWidth, c.kvWidth, c.queryWidth, c.hiddenSize,
                    c.widestMLP, c.widestMLP, c.headDim]
      if let e = c.experts { perRow += [e.count, c.hiddenSize, 3 * e.perToken] }
      var total = c.experts.map { $0.count + 1 } ?? 0
      for width in perRow {
        let (product, overflow) = width.multipliedReportingOverflow(by: rows)
        let (sum, overflow2) = total.addingReportingOverflow(product)
        guard !overflow && !overflow2 else { return nil }
        total = sum
      }
      let (logits, overflow) = (c.vocabSize + c.hiddenSize).multipliedReportingOverflow(by: logitRows)
      let (sum, overflow2) = total.addingReportingOverflow(logits)
      return overflow || overflow2 ? nil : sum
    }
  }

  /// The largest activation memory a session may allocate; a model whose shapes need more is
  /// rejected (a config can claim shapes that small tensors do not contradict).
  public static let maxBufferBytes = 8 << 30

  /// - Parameters:
  ///   - threads: threads for the kernels (default: all available processors).
  ///   - maxRows: token rows per forward pass; longer prompts are prefilled in chunks of this size.
  ///   - maxLogitRows: rows with logits per forward pass (each costs `vocabSize × 4` bytes).
  public init(
    model: DecoderModel, threads: Int = ThreadPool.defaultThreadCount, maxRows: Int = defaultMaxRows, maxLogitRows: Int = 16
  ) throws {
    guard let floats = Buffers.floats(config: model.config, rows: max(1, maxRows), logitRows: max(1, maxLogitRows)),
      floats <= Self.maxBufferBytes / 4
    else {
      throw EngineError.invalidInput(
        "the model's shapes need more than \(Self.maxBufferBytes >> 30) GiB of activation buffers for \(maxRows) rows per pass")
    }
    self.model = model
    config = model.config
    pool = ThreadPool(threadCount: threads)
    self.maxRows = max(1, maxRows)
    self.maxLogitRows = max(1, maxLogitRows)
    rotary = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
    attentionShape = AttentionShape(queryHeads: config.queryHeads, kvHeads: config.kvHeads, headDim: config.headDim)
    linearScratch = LinearScratch(
      threadCount: pool.threadCount,
      maxColumns: max(config.hiddenSize, config.widestMLP, config.queryWidth),
      quantized: model.weights.hasQuantizedLinears, bf16: model.weights.hasBF16Linears, maxRows: self.maxRows)
    attentionScratch = AttentionScratch(threadCount: pool.threadCount)
    attentionScratch.roundsToBF16 = linearScratch.activations == .rounded
    let b = Buffers(config: config, rows: self.maxRows, logitRows: self.maxLogitRows)
    buffers = b
    let c = config
    let w = model.weights
    qkvJobs = w.layers.map { l in
      [
        LinearJob(weight: l.query, bias: l.queryBias, output: b.query, outputStride: c.queryWidth),
        LinearJob(weight: l.key, bias: l.keyBias, output: b.key, outputStride: c.kvWidth),
        LinearJob(weight: l.value, bias: l.valueBias, output: b.value, outputStride: c.kvWidth),
      ]
    }
    outputJobs = w.layers.map { l in
      [LinearJob(weight: l.output, bias: l.outputBias, output: b.projection, outputStride: c.hiddenSize)]
    }
    func mlpJobs(_ mlp: MLPWeights, width: Int) -> (gateUp: [LinearJob], down: [LinearJob]) {
      (
        [LinearJob(weight: mlp.gate, output: b.gate, outputStride: width), LinearJob(weight: mlp.up, output: b.up, outputStride: width)],
        [LinearJob(weight: mlp.down, output: b.projection, outputStride: c.hiddenSize)]
      )
    }
    let mlps: [(gateUp: [LinearJob], down: [LinearJob])] = w.layers.indices.map { l in
      guard case .dense(let mlp) = w.layers[l].feedForward else { return ([], []) }
      return mlpJobs(mlp, width: c.mlpWidth(layer: l))
    }
    gateUpJobs = mlps.map(\.gateUp)
    downJobs = mlps.map(\.down)
    expertJobs = w.layers.indices.map { l in
      guard case .experts(let router, let experts, let routing) = w.layers[l].feedForward, let buffers = b.experts else { return nil }
      return ExpertJobs(
        router: LinearJob(weight: router, output: buffers.routerLogits, outputStride: routing.count),
        experts: experts.map { mlpJobs($0, width: c.mlpWidth(layer: l)) }, routing: routing)
    }
    lmHeadJobs = [LinearJob(weight: w.lmHead, output: b.logits, outputStride: c.vocabSize)]
    rowPositions = Array(repeating: 0, count: self.maxRows)
  }

  /// How activations meet the weights (`LinearActivations`): `.rounded` (the default where the
  /// build has the kernels) rounds each block of 32 inputs to int8 for quantized weights, in
  /// decode and prefill, inputs to bf16 for bf16 weights in prefill, and queries and softmax
  /// weights to bf16 against a bf16 KV cache (`AttentionScratch.roundsToBF16`); `.exact` keeps f32.
  public var linearActivations: LinearActivations {
    get { linearScratch.activations }
    set {
      linearScratch.activations = newValue
      attentionScratch.roundsToBF16 = newValue == .rounded
    }
  }

  /// Bytes of scratch the session holds besides weights and KV caches: activation buffers, the
  /// linear kernels' packed panels and pair-order input, and the attention tiles (held from the
  /// first attention call; their size does not depend on the context).
  public var scratchBytes: Int { buffers.byteCount + linearScratch.byteCount + attentionScratch.byteCount }

  /// `scratchBytes` of a session with these settings once its attention has seen at most
  /// `longestContext` tokens in one call (without creating it; only whether attention has run,
  /// `longestContext > 0`, changes the amount); `quantizedLinears` and
  /// `bf16Linears` for weights with quantized or bf16 linears (their kernels prepare inputs in
  /// scratch).
  public static func scratchBytes(
    config: ModelConfig, threads: Int, maxRows: Int = defaultMaxRows, maxLogitRows: Int = 16, longestContext: Int,
    quantizedLinears: Bool = false, bf16Linears: Bool = false
  ) -> Int {
    let shape = AttentionShape(queryHeads: config.queryHeads, kvHeads: config.kvHeads, headDim: config.headDim)
    let buffers = Buffers.sizes(config: config, rows: max(1, maxRows), logitRows: max(1, maxLogitRows)).reduce(0, +) * 4
    let linear = LinearScratch.byteCount(
      threadCount: threads, maxColumns: max(config.hiddenSize, config.widestMLP, config.queryWidth),
      quantized: quantizedLinears, bf16: bf16Linears, maxRows: max(1, maxRows))
    let attention = AttentionScratch.byteCount(
      threadCount: threads, floats: longestContext > 0 ? Attention.scratchFloats(shape: shape) : 0)
    return buffers + linear + attention
  }

  /// A new empty cache of the kind `spec` names, for this session's model.
  public func makeCache(spec: KVCacheSpec, elementType: ElementType = .bf16) throws -> any KVCache {
    try model.makeCache(spec: spec, elementType: elementType)
  }

  /// A new empty full cache for this session's model.
  public func makeCache(elementType: ElementType = .bf16) -> FullKVCache {
    model.makeCache(elementType: elementType)
  }

  /// Checks that `tokens` more tokens fit in the model's context after `cache`'s and that every id
  /// is in the vocabulary.
  public func validate(tokens: [Int], appendingTo cache: any KVCache) throws {
    for token in tokens where token < 0 || token >= config.vocabSize {
      throw EngineError.invalidInput("token id \(token) is outside the vocabulary (0..<\(config.vocabSize))")
    }
    if cache.nextPosition + tokens.count > config.maxPositions {
      throw EngineError.invalidInput(
        "\(cache.nextPosition + tokens.count) tokens exceed the model's context of \(config.maxPositions) positions (max_position_embeddings)")
    }
  }

  /// One forward pass over the new tokens of one or more sequences (at most `maxRows` in all),
  /// appending their keys and values to each sequence's cache. `linearPath` forces the linear
  /// kernels' implementation (generation forces `.streaming` after the prompt, whose outputs do not
  /// depend on which rows share a pass).
  @discardableResult
  public func forward(
    _ inputs: [SequenceInput], logits selection: LogitRows, linearPath: Linear.Path? = nil
  ) throws -> LogitsView {
    let rows = inputs.reduce(0) { $0 + $1.tokens.count }
    guard rows > 0 else { throw EngineError.invalidInput("a forward pass needs at least one token") }
    guard rows <= maxRows else {
      throw EngineError.invalidInput("\(rows) token rows exceed this session's maximum of \(maxRows) per forward pass")
    }
    let logitRows: Int
    switch selection {
    case .none: logitRows = 0
    case .lastOfEachSequence: logitRows = inputs.filter { !$0.tokens.isEmpty }.count
    case .all: logitRows = rows
    }
    guard logitRows <= maxLogitRows else {
      throw EngineError.invalidInput("\(logitRows) rows of logits exceed this session's maximum of \(maxLogitRows)")
    }
    guard Set(inputs.map { ObjectIdentifier($0.cache) }).count == inputs.count else {
      throw EngineError.invalidInput("one KV cache was given for two sequences of one forward pass")
    }
    for input in inputs {
      guard input.cache.geometry == KVCacheGeometry(config) else {
        throw EngineError.invalidInput("a KV cache of another model's geometry was given to this model")
      }
      try validate(tokens: input.tokens, appendingTo: input.cache)
    }

    let c = config
    let b = buffers
    let w = model.weights
    let h = c.hiddenSize
    let half = c.headDim / 2

    // Embedding and the RoPE angles of every row.
    var row = 0
    for input in inputs {
      for (i, token) in input.tokens.enumerated() {
        rowPositions[row] = input.cache.nextPosition + i
        w.embedding.copyRow(token, into: b.residual + row * h)
        row += 1
      }
    }
    let positions = rowPositions
    pool.parallelChunks(rows, grain: 8) { range in
      for r in range {
        rotary.fill(position: positions[r], cos: b.cosines + r * half, sin: b.sines + r * half)
      }
    }

    for l in w.layers.indices {
      runLayer(l, rows: rows, inputs: inputs, linearPath: linearPath)
    }

    // Final norm and lm_head on the rows that need logits.
    var selected = 0
    var first = 0
    for input in inputs where !input.tokens.isEmpty {
      let n = input.tokens.count
      let chosen: Range<Int>
      switch selection {
      case .none: chosen = 0..<0
      case .lastOfEachSequence: chosen = (first + n - 1)..<(first + n)
      case .all: chosen = first..<(first + n)
      }
      for r in chosen {
        Elementwise.rmsNorm(b.residual + r * h, count: h, weight: w.finalNorm, epsilon: c.rmsNormEpsilon, into: b.finalRows + selected * h)
        selected += 1
      }
      first += n
    }
    if selected > 0 {
      Linear.run(lmHeadJobs, input: b.finalRows, inputStride: h, tokens: selected, pool: pool, scratch: linearScratch, path: linearPath)
    }
    for input in inputs where !input.tokens.isEmpty {
      input.cache.commit(tokens: input.tokens.count)
    }
    return LogitsView(base: b.logits, rows: selected, vocabSize: c.vocabSize)
  }

  /// Decoder layer `l` on `rows` rows of `buffers.residual` (RoPE angles already filled),
  /// appending to and attending over each input's cache.
  private func runLayer(_ l: Int, rows: Int, inputs: [SequenceInput], linearPath: Linear.Path?) {
    let c = config
    let b = buffers
    let h = c.hiddenSize
    let half = c.headDim / 2
    let layer = model.weights.layers[l]
    let skipsRope = c.layersWithoutRope.contains(l)
    normalizeRows(b.residual, into: b.normed, rows: rows, weight: layer.inputNorm)
    linearInputObserver?(l, .attentionInput, b.normed, h, rows)
    Linear.run(qkvJobs[l], input: b.normed, inputStride: h, tokens: rows, pool: pool, scratch: linearScratch, path: linearPath)
    pool.parallelChunks(rows, grain: 4) { range in
      for r in range {
        let q = b.query + r * c.queryWidth
        let k = b.key + r * c.kvWidth
        if let qn = layer.queryNorm {
          for head in 0..<c.queryHeads {
            Elementwise.rmsNorm(q + head * c.headDim, count: c.headDim, weight: qn, epsilon: c.rmsNormEpsilon, into: q + head * c.headDim)
          }
        }
        if let kn = layer.keyNorm {
          for head in 0..<c.kvHeads {
            Elementwise.rmsNorm(k + head * c.headDim, count: c.headDim, weight: kn, epsilon: c.rmsNormEpsilon, into: k + head * c.headDim)
          }
        }
        if !skipsRope {
          RotaryEmbedding.rotate(q, heads: c.queryHeads, headDim: c.headDim, cos: b.cosines + r * half, sin: b.sines + r * half)
          RotaryEmbedding.rotate(k, heads: c.kvHeads, headDim: c.headDim, cos: b.cosines + r * half, sin: b.sines + r * half)
        }
      }
    }
    var start = 0
    for input in inputs where !input.tokens.isEmpty {
      let n = input.tokens.count
      input.cache.append(layer: l, keys: b.key + start * c.kvWidth, values: b.value + start * c.kvWidth, count: n)
      start += n
    }
    attend(layer: l, inputs: inputs)
    linearInputObserver?(l, .attentionOutput, b.attention, c.queryWidth, rows)
    Linear.run(outputJobs[l], input: b.attention, inputStride: c.queryWidth, tokens: rows, pool: pool, scratch: linearScratch, path: linearPath)
    addRows(b.projection, into: b.residual, rows: rows)

    normalizeRows(b.residual, into: b.normed, rows: rows, weight: layer.postAttentionNorm)
    if let experts = expertJobs[l] {
      runExperts(experts, width: c.mlpWidth(layer: l), rows: rows, linearPath: linearPath)
      return
    }
    linearInputObserver?(l, .mlpInput, b.normed, h, rows)
    runMLP(gateUp: gateUpJobs[l], down: downJobs[l], input: b.normed, width: c.mlpWidth(layer: l), rows: rows, linearPath: linearPath) {
      linearInputObserver?(l, .mlpHidden, b.gate, $0, rows)
    }
    addRows(b.projection, into: b.residual, rows: rows)
  }

  /// Attention of every input's rows (appended to its cache) for layer `l`. Inputs of one row
  /// whose caches begin with the same storage (samples forked from one prompt) attend together,
  /// reading what they share once.
  private func attend(layer l: Int, inputs: [SequenceInput]) {
    let c = config
    let b = buffers
    // Decode rows that may share storage, by their cache's first segment.
    var sharing: [UnsafeRawPointer: [(row: Int, segments: [KVSegment])]] = [:]
    var start = 0
    for input in inputs where !input.tokens.isEmpty {
      let n = input.tokens.count
      defer { start += n }
      if n == 1, inputs.count > 1,
        let segments = input.cache.attentionSegments(layer: l, queries: b.query + start * c.queryWidth, rows: 1)
      {
        // The cache has recorded the query: from here on the session attends for it. The new
        // token is in the last segment, so there is one.
        precondition(!segments.isEmpty, "a KV cache listed no segments after an append")
        sharing[segments[0].keys, default: []].append((start, segments))
        continue
      }
      input.cache.attend(
        layer: l, queries: b.query + start * c.queryWidth, rows: n, shape: attentionShape,
        output: b.attention + start * c.queryWidth, pool: pool, scratch: attentionScratch)
    }
    for members in sharing.values {
      // The leading segments every member lists with the same storage and length. Each member's
      // new token is in its own storage (appending into a shared block copies it), so at least
      // the last segment is its own.
      var common = members.map { $0.segments.count - 1 }.min() ?? 0
      for member in members.dropFirst() {
        var i = 0
        while i < common && member.segments[i].keys == members[0].segments[i].keys
          && member.segments[i].tokens == members[0].segments[i].tokens
        {
          i += 1
        }
        common = i
      }
      guard members.count > 1 && common > 0 else {
        // The caches have recorded these queries already: attend over their segments directly.
        for member in members {
          let visibleBefore = member.segments.reduce(0) { $0 + $1.tokens } - 1
          member.segments.withUnsafeBufferPointer { segments in
            Attention.attend(
              queries: b.query + member.row * c.queryWidth, rows: 1, visibleBefore: visibleBefore, segments: segments,
              shape: attentionShape, output: b.attention + member.row * c.queryWidth, pool: pool, scratch: attentionScratch)
          }
        }
        continue
      }
      members[0].segments.prefix(common).withUnsafeBufferPointer { shared in
        Attention.attendSharing(
          queries: b.query, rows: members.map(\.row), shared: shared, own: members.map { Array($0.segments.dropFirst(common)) },
          shape: attentionShape, output: b.attention, pool: pool, scratch: attentionScratch)
      }
    }
  }

  /// `down(silu(gate(x)) · up(x))` of `rows` rows of `input` into `buffers.projection`;
  /// `observeHidden` sees the product before `down` reads it.
  private func runMLP(
    gateUp: [LinearJob], down: [LinearJob], input: UnsafePointer<Float>, width: Int, rows: Int, linearPath: Linear.Path?,
    observeHidden: (Int) -> Void = { _ in }
  ) {
    let b = buffers
    Linear.run(gateUp, input: input, inputStride: config.hiddenSize, tokens: rows, pool: pool, scratch: linearScratch, path: linearPath)
    pool.parallelChunks(rows, grain: 4) { range in
      for r in range { Elementwise.siluMultiply(b.gate + r * width, b.up + r * width, count: width) }
    }
    observeHidden(width)
    Linear.run(down, input: b.gate, inputStride: width, tokens: rows, pool: pool, scratch: linearScratch, path: linearPath)
  }

  /// A layer of experts on `rows` normed rows (`buffers.normed`), added into the residual
  /// stream: the router picks each row's experts (exact f32: the choice is discrete, so the
  /// router's input is not rounded as the linears' may be), then each expert runs once on all the
  /// rows routed to it, gathered, and its outputs are added back weighted.
  private func runExperts(_ jobs: ExpertJobs, width: Int, rows: Int, linearPath: Linear.Path?) {
    guard let e = buffers.experts else { return }
    let b = buffers
    let h = config.hiddenSize
    let (count, k, normalizes) = (jobs.routing.count, jobs.routing.perToken, jobs.routing.normalizesTopK)
    Linear.run([jobs.router], input: b.normed, inputStride: h, tokens: rows, pool: pool, scratch: linearScratch, path: .streaming)
    pool.parallelChunks(rows, grain: 16) { range in
      for r in range {
        ExpertRouting.route(
          logits: e.routerLogits + r * count, count: count, k: k, normalizes: normalizes, experts: e.chosen + r * k, weights: e.weights + r * k)
      }
    }
    ExpertRouting.group(experts: e.chosen, choices: rows * k, count: count, starts: e.starts, order: e.order)
    for expert in 0..<count {
      let first = Int(e.starts[expert])
      let n = Int(e.starts[expert + 1]) - first
      guard n > 0 else { continue }
      let choices = e.order + first
      pool.parallelChunks(n, grain: 8) { range in
        for j in range { (e.input + j * h).update(from: b.normed + Int(choices[j]) / k * h, count: h) }
      }
      runMLP(gateUp: jobs.experts[expert].gateUp, down: jobs.experts[expert].down, input: e.input, width: width, rows: n, linearPath: linearPath)
      // A row chooses an expert at most once, so these rows are distinct.
      pool.parallelChunks(n, grain: 8) { range in
        for j in range {
          let choice = Int(choices[j])
          Elementwise.add(b.projection + j * h, scaledBy: e.weights[choice], into: b.residual + choice / k * h, count: h)
        }
      }
    }
  }

  /// Runs decoder layer `l` alone on the hidden states (residual stream) of one sequence,
  /// `hidden` (`[count, hiddenSize]`), in place, continuing `cache` (whose layer `l` alone is
  /// filled): calibration runs each layer over the outputs of the layers before it. Chunks of
  /// `maxRows` rows.
  public func forwardLayer(_ l: Int, hidden: UnsafeMutablePointer<Float>, count: Int, cache: any KVCache) throws {
    guard model.weights.layers.indices.contains(l) else { throw EngineError.invalidInput("no layer \(l)") }
    let h = config.hiddenSize, half = config.headDim / 2
    var start = 0
    while start < count {
      let n = min(maxRows, count - start)
      try validate(tokens: Array(repeating: 0, count: n), appendingTo: cache)
      let b = buffers
      let first = cache.nextPosition
      pool.parallelChunks(n, grain: 8) { range in
        for r in range { self.rotary.fill(position: first + r, cos: b.cosines + r * half, sin: b.sines + r * half) }
      }
      b.residual.update(from: hidden + start * h, count: n * h)
      runLayer(l, rows: n, inputs: [SequenceInput(cache: cache, tokens: Array(repeating: 0, count: n))], linearPath: nil)
      (hidden + start * h).update(from: b.residual, count: n * h)
      cache.commit(tokens: n)
      start += n
    }
  }

  /// The embedding rows of `tokens` into `hidden` (`[tokens.count, hiddenSize]`).
  public func embed(_ tokens: [Int], into hidden: UnsafeMutablePointer<Float>) throws {
    try validate(tokens: tokens, appendingTo: makeCache())
    for (i, token) in tokens.enumerated() { model.weights.embedding.copyRow(token, into: hidden + i * config.hiddenSize) }
  }

  /// Replaces the linear layers of `site` in layer `l` (q, k, v; o; gate, up; or down, in that
  /// order) for this session's forward passes — calibration swaps in each layer once it is
  /// quantized. The model's own weights are unchanged; the caller keeps the new weights alive.
  public func replaceLinears(layer l: Int, site: LinearSite, with weights: [LinearWeight]) throws {
    func replaced(_ jobs: [LinearJob]) throws -> [LinearJob] {
      guard weights.count == jobs.count else {
        throw EngineError.invalidInput("\(site) of layer \(l) has \(jobs.count) linear layers, not \(weights.count)")
      }
      return try zip(jobs, weights).map { job, weight in
        guard weight.rows == job.weight.rows, weight.columns == job.weight.columns else {
          throw EngineError.invalidInput("a [\(weight.rows), \(weight.columns)] weight cannot replace a [\(job.weight.rows), \(job.weight.columns)] one")
        }
        return LinearJob(weight: weight, bias: job.bias, output: job.output, outputStride: job.outputStride)
      }
    }
    if expertJobs[l] != nil && (site == .mlpInput || site == .mlpHidden) {
      throw EngineError.unsupported("replacing the linears of layer \(l)'s experts")
    }
    switch site {
    case .attentionInput: qkvJobs[l] = try replaced(qkvJobs[l])
    case .attentionOutput: outputJobs[l] = try replaced(outputJobs[l])
    case .mlpInput: gateUpJobs[l] = try replaced(gateUpJobs[l])
    case .mlpHidden: downJobs[l] = try replaced(downJobs[l])
    }
    let quantized = weights.contains { if case .quantized = $0 { true } else { false } }
    if quantized && !linearScratch.servesQuantizedWeights {
      let activations = linearScratch.activations
      linearScratch = LinearScratch(
        threadCount: pool.threadCount, maxColumns: max(config.hiddenSize, config.widestMLP, config.queryWidth),
        quantized: true, bf16: linearScratch.servesBF16Weights, maxRows: maxRows)
      linearScratch.activations = activations
    }
  }

  private func normalizeRows(
    _ x: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, weight: WeightVector
  ) {
    let h = config.hiddenSize
    let eps = config.rmsNormEpsilon
    pool.parallelChunks(rows, grain: 8) { range in
      for r in range { Elementwise.rmsNorm(x + r * h, count: h, weight: weight, epsilon: eps, into: y + r * h) }
    }
  }

  private func addRows(_ x: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int) {
    let h = config.hiddenSize
    pool.parallelChunks(rows, grain: 8) { range in
      Elementwise.add(x + range.lowerBound * h, into: y + range.lowerBound * h, count: range.count * h)
    }
  }

  /// Feeds `tokens` into `cache` in chunks of `maxRows` and returns the logits of the last token
  /// (or of every token with `.all`, delivered chunk by chunk to `onLogits`).
  public func prefill(
    _ tokens: [Int], cache: any KVCache, logits selection: LogitRows = .lastOfEachSequence,
    onLogits: ((LogitsView) throws -> Void)? = nil
  ) throws -> LogitsView? {
    try validate(tokens: tokens, appendingTo: cache)
    let chunk = selection == .all ? min(maxRows, maxLogitRows) : maxRows
    var start = 0
    var last: LogitsView?
    while start < tokens.count {
      let end = min(tokens.count, start + chunk)
      let isLast = end == tokens.count
      let rows: LogitRows =
        switch selection {
        case .all: .all
        case .lastOfEachSequence: isLast ? .lastOfEachSequence : .none
        case .none: .none
        }
      let view = try forward([SequenceInput(cache: cache, tokens: Array(tokens[start..<end]))], logits: rows)
      if rows != .none {
        try onLogits?(view)
        last = view
      }
      start = end
    }
    return last
  }
}

/// The kernel calls of a layer of experts.
struct ExpertJobs {
  let router: LinearJob
  let experts: [(gateUp: [LinearJob], down: [LinearJob])]
  let routing: MixtureOfExperts
}

/// The four places where a decoder layer's linear layers read their input.
public enum LinearSite: Int, Sendable, CaseIterable {
  /// Normed hidden states, read by q, k and v.
  case attentionInput
  /// Attention output, read by o.
  case attentionOutput
  /// Normed hidden states after attention, read by gate and up.
  case mlpInput
  /// `silu(gate) · up`, read by down.
  case mlpHidden
}
