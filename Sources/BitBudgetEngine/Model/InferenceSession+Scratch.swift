import BitBudgetKernels

/// The session's activation buffers and what its scratch costs.
extension InferenceSession {
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
}
