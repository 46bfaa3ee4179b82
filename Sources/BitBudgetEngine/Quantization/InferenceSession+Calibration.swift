import BitBudgetKernels

/// What GPTQ calibration needs of a session: one layer at a time over given hidden states, the
/// embedding, and linears swapped for quantized ones (`linearInputObserver` on the session
/// collects each layer's inputs).
extension InferenceSession {
  /// Runs decoder layer `l` alone on the hidden states (residual stream) of one sequence,
  /// `hidden` (`[count, hiddenSize]`), in place, continuing `cache` (whose layer `l` alone is
  /// filled): calibration runs each layer over the outputs of the layers before it. Chunks of
  /// `maxRows` rows.
  public func forwardLayer(_ l: Int, hidden: UnsafeMutablePointer<Float>, count: Int, cache given: any KVCache) throws {
    guard model.weights.layers.indices.contains(l) else { throw EngineError.invalidInput("no layer \(l)") }
    let cache = try given.storage()
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
      runLayer(l, rows: n, inputs: [ForwardInput(cache: cache, tokens: Array(repeating: 0, count: n))], linearPath: nil)
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
}
