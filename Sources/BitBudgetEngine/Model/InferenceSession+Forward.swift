import BitBudgetKernels

/// The forward pass: layers, attention, MLPs (dense or routed), logits; and prefill in chunks.
extension InferenceSession {
  /// One forward pass over the new tokens of one or more sequences (at most `maxRows` in all),
  /// appending their keys and values to each sequence's cache. `linearPath` forces the linear
  /// kernels' implementation (generation forces `.streaming` after the prompt, whose outputs do not
  /// depend on which rows share a pass).
  @discardableResult
  public func forward(
    _ sequences: [SequenceInput], logits selection: LogitRows, linearPath: Linear.Path? = nil
  ) throws -> LogitsView {
    let inputs = try sequences.map { ForwardInput(cache: try $0.cache.storage(), tokens: $0.tokens) }
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
  func runLayer(_ l: Int, rows: Int, inputs: [ForwardInput], linearPath: Linear.Path?) {
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
  func attend(layer l: Int, inputs: [ForwardInput]) {
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
  func runMLP(
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
  func runExperts(_ jobs: ExpertJobs, width: Int, rows: Int, linearPath: Linear.Path?) {
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

  func normalizeRows(
    _ x: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, weight: WeightVector
  ) {
    let h = config.hiddenSize
    let eps = config.rmsNormEpsilon
    pool.parallelChunks(rows, grain: 8) { range in
      for r in range { Elementwise.rmsNorm(x + r * h, count: h, weight: weight, epsilon: eps, into: y + r * h) }
    }
  }

  func addRows(_ x: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int) {
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
