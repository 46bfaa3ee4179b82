/// Scratch memory of the linear kernels, allocated once per session:
/// - the input rows in pair order for the streaming kernel (`tiledMinimumTokens × maxColumns`
///   floats), so that 16-bit weights can be widened with a shift and a mask;
/// - per thread, one packed weight panel for the tiled kernel (`32 × maxColumns` floats);
/// - for models with quantized linears, per job, the input rows prepared for the quantized
///   streaming kernel (`QuantizedInput`: in the matrix's input order, pre-scaled per vector, with
///   per-group lane sums), and where the int8 kernels exist their int8 input (`Int8Input`) and,
///   for the tiled int8 kernel, the whole run's rows quantized (`Int8Prompt`, `maxRows` rows);
/// - for models with bf16 linears, where the bf16 tile exists, the run's rows rounded to bf16
///   (`BF16Prompt`, `maxRows` rows rounded up to a tile).
public final class LinearScratch: @unchecked Sendable {
  /// Most jobs one `Linear.run` may take.
  public static let maxJobs = 4
  /// Token rows per streaming call (more are processed in slices of this many).
  let pairOrderRows = Linear.tiledMinimumTokens
  private let maxColumns: Int
  private let pairOrderInput: UnsafeMutablePointer<Float>
  private let panels: [UnsafeMutablePointer<Float>]
  /// Per job, room for its input rows prepared for quantized weights, and their group sums (nil
  /// without quantized weights).
  private let preparedInputs: UnsafeMutablePointer<Float>?
  private let preparedSums: UnsafeMutablePointer<Float>?
  /// Per job, the quantized kernel's prepared input (valid for quantized jobs after
  /// `prepareInputs`).
  private(set) var quantizedInputs: [QuantizedInput]
  /// Per job, room for its input rows quantized to int8 (nil without quantized weights or
  /// without the int8 kernels).
  private let int8Rows: UnsafeMutableRawPointer?
  /// Per job, the int8 kernels' prepared input (valid for quantized jobs after `prepareInputs`
  /// when `usesInt8`).
  private(set) var int8Inputs: [Int8Input]
  /// Per job, room for `promptRows` input rows quantized for the tiled int8 kernel (nil
  /// without quantized weights or without the int8 kernels).
  private let promptRowsBuffer: UnsafeMutableRawPointer?
  /// Token rows one tiled int8 run takes at once (more are processed in slices of this many).
  let promptRows: Int
  /// Per job, the tiled int8 kernel's prepared rows (valid for quantized jobs after
  /// `prepareInt8Prompts`).
  private(set) var int8Prompts: [Int8Prompt]
  /// Room for `promptRows` input rows rounded to bf16 (nil without bf16 weights or without the
  /// bf16 tile).
  private let bf16Rows: UnsafeMutablePointer<UInt32>?
  /// How activations meet weights, in the streaming and tiled kernels; `.rounded` is exact for
  /// the weights whose fast kernel the build lacks.
  public var activations: LinearActivations = .fastest
  /// Whether the streaming kernels take int8 inputs.
  var usesInt8: Bool { activations == .rounded && int8Rows != nil }
  let jobInputs: UnsafeMutablePointer<UnsafePointer<Float>>
  let jobStrides: UnsafeMutablePointer<Int>
  let threadCount: Int

  /// - Parameters:
  ///   - threadCount: threads of the pool that will run the kernels.
  ///   - maxColumns: the widest weight matrix input (largest `columns`).
  ///   - quantized: whether some weight matrix is quantized.
  ///   - bf16: whether some call's weights are all bf16 (`ModelWeights.hasBF16Linears`).
  ///   - maxRows: token rows of the longest run (the session's rows per forward pass); longer
  ///     runs of the tiled int8 and bf16 kernels are sliced.
  public init(
    threadCount: Int, maxColumns: Int, quantized: Bool = false, bf16: Bool = false, maxRows: Int = Linear.tiledMinimumTokens
  ) {
    self.maxColumns = max(1, maxColumns)
    self.threadCount = max(1, threadCount)
    promptRows = max(Linear.tiledMinimumTokens, maxRows)
    let promptBytes = Self.promptBytes(maxColumns: self.maxColumns, quantized: quantized, maxRows: maxRows)
    promptRowsBuffer = promptBytes > 0 ? UnsafeMutableRawPointer.allocate(byteCount: promptBytes, alignment: 64) : nil
    int8Prompts = []
    let bf16Bytes = Self.bf16PromptBytes(maxColumns: self.maxColumns, bf16: bf16, maxRows: maxRows)
    bf16Rows = bf16Bytes > 0
      ? UnsafeMutableRawPointer.allocate(byteCount: bf16Bytes, alignment: 64).bindMemory(to: UInt32.self, capacity: bf16Bytes / 4)
      : nil
    pairOrderInput = Self.allocate(pairOrderRows * Self.paddedStride(self.maxColumns))
    preparedInputs = quantized ? Self.allocate(Self.maxJobs * pairOrderRows * Self.paddedStride(self.maxColumns)) : nil
    preparedSums = quantized ? Self.allocate(Self.maxJobs * pairOrderRows * Self.sumStride(self.maxColumns)) : nil
    quantizedInputs = Array(
      repeating: QuantizedInput(values: pairOrderInput, valueStride: 0, sums: pairOrderInput, sumStride: 0), count: Self.maxJobs)
    let int8Bytes = Self.int8Bytes(maxColumns: self.maxColumns, quantized: quantized)
    int8Rows = int8Bytes > 0 ? UnsafeMutableRawPointer.allocate(byteCount: int8Bytes, alignment: 64) : nil
    int8Inputs = Array(
      repeating: Int8Input(
        codes: UnsafeMutableRawPointer(pairOrderInput).assumingMemoryBound(to: Int8.self), codeStride: 0, scales: pairOrderInput,
        sums: pairOrderInput, laneStride: 0),
      count: Self.maxJobs)
    panels = (0..<max(1, threadCount)).map { _ in Self.allocate(Linear.panelWidth * max(1, maxColumns)) }
    jobInputs = .allocate(capacity: Self.maxJobs)
    jobStrides = .allocate(capacity: Self.maxJobs)
  }

  private static func allocate(_ floats: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: floats * 4, alignment: 64)
      .bindMemory(to: Float.self, capacity: floats)
  }

  deinit {
    pairOrderInput.deallocate()
    preparedInputs?.deallocate()
    preparedSums?.deallocate()
    int8Rows?.deallocate()
    promptRowsBuffer?.deallocate()
    bf16Rows?.deallocate()
    for panel in panels { panel.deallocate() }
    jobInputs.deallocate()
    jobStrides.deallocate()
  }

  /// Whether runs over inputs `columns` wide on a pool of `threads` threads fit this scratch.
  func fits(columns: Int, threads: Int) -> Bool { columns <= maxColumns && threads <= threadCount }

  /// Whether the scratch has room for quantized weights' inputs.
  public var servesQuantizedWeights: Bool { preparedInputs != nil }

  /// Whether the scratch has room for inputs rounded to bf16 (for bf16 weights, where the build
  /// has the bf16 tile).
  public var servesBF16Weights: Bool { bf16Rows != nil }

  /// Total scratch bytes held.
  public var byteCount: Int {
    Self.byteCount(
      threadCount: threadCount, maxColumns: maxColumns, quantized: preparedInputs != nil, bf16: bf16Rows != nil, maxRows: promptRows)
  }

  /// Scratch bytes of a `LinearScratch(threadCount:maxColumns:quantized:bf16:maxRows:)`.
  public static func byteCount(
    threadCount: Int, maxColumns: Int, quantized: Bool = false, bf16: Bool = false, maxRows: Int = Linear.tiledMinimumTokens
  ) -> Int {
    let columns = max(1, maxColumns)
    let rows = Linear.tiledMinimumTokens * paddedStride(columns)
    let prepared = quantized ? maxJobs * Linear.tiledMinimumTokens * (paddedStride(columns) + sumStride(columns)) : 0
    return (rows + prepared + max(1, threadCount) * Linear.panelWidth * columns) * 4
      + int8Bytes(maxColumns: columns, quantized: quantized) + promptBytes(maxColumns: columns, quantized: quantized, maxRows: maxRows)
      + bf16PromptBytes(maxColumns: columns, bf16: bf16, maxRows: maxRows)
  }

  /// Bytes of the bf16 tile's rounded rows (0 without bf16 weights or without the bf16 tile):
  /// `maxRows` rows rounded up to a whole tile, of `BF16Prompt.stride` words.
  static func bf16PromptBytes(maxColumns: Int, bf16: Bool, maxRows: Int) -> Int {
    guard bf16 && LinearActivations.bf16Available else { return 0 }
    let rows = (max(Linear.tiledMinimumTokens, maxRows) + Linear.tileTokens - 1) / Linear.tileTokens * Linear.tileTokens
    return rows * bf16Stride(max(1, maxColumns)) * 4
  }

  /// Words per bf16-rounded row for inputs `columns` wide: the pairs, rounded up to 16 words,
  /// plus 16 (as `paddedStride`, so that the 8 rows a tile reads do not start 4 KiB apart).
  static func bf16Stride(_ columns: Int) -> Int { ((columns + 1) / 2 + 15) / 16 * 16 + 16 }

  /// Bytes of the tiled int8 kernel's prepared rows of every job (0 without quantized weights
  /// or int8 kernels).
  static func promptBytes(maxColumns: Int, quantized: Bool, maxRows: Int) -> Int {
    guard quantized && LinearActivations.int8Available else { return 0 }
    return maxJobs * max(Linear.tiledMinimumTokens, maxRows) * Int8Prompt.rowBytes((max(1, maxColumns) + 63) / 64 * 64)
  }

  /// Bytes of the int8 inputs of every job (0 without quantized weights or int8 kernels).
  static func int8Bytes(maxColumns: Int, quantized: Bool) -> Int {
    guard quantized && (LinearActivations.int8Available || LinearActivations.int8RowBlocksAvailable) else { return 0 }
    return maxJobs * Linear.tiledMinimumTokens * Int8Input.rowBytes(max(1, maxColumns))
  }

  /// Floats per row of group sums: 16 lanes per group of at least one 64-column chunk.
  static func sumStride(_ columns: Int) -> Int { (columns + QuantizedMatrix.chunk - 1) / QuantizedMatrix.chunk * 16 }

  /// Row stride of the pair-order input: a multiple of 16 floats plus 16, so that consecutive
  /// rows do not start 4 KiB apart (rows of 1024 floats would all fall in the same L1 sets and
  /// evict each other while the batched kernels read 8 of them per block).
  static func paddedStride(_ columns: Int) -> Int { (columns + 15) / 16 * 16 + 16 }

  /// The tiled kernel's packed-panel buffer of `thread` (`32 × maxColumns` floats, 64-byte aligned).
  func panel(thread: Int) -> UnsafeMutablePointer<Float> { panels[thread] }

  /// Job `j`'s slot of int8 inputs `columns` wide in `int8Rows`.
  private func int8Input(_ int8Rows: UnsafeMutableRawPointer, job j: Int, columns: Int) -> Int8Input {
    let base = int8Rows + j * pairOrderRows * Int8Input.rowBytes(maxColumns)
    let scales = (base + pairOrderRows * Int8Input.codeStride(columns)).assumingMemoryBound(to: Float.self)
    return Int8Input(
      codes: base.assumingMemoryBound(to: Int8.self), codeStride: Int8Input.codeStride(columns), scales: scales,
      sums: scales + pairOrderRows * Int8Input.laneStride(columns), laneStride: Int8Input.laneStride(columns))
  }

  /// Sets each job's input pointer and stride: f32 weights read `natural` as it is; 16-bit
  /// weights read one copy of the rows in pair order (`PairOrder.permute`), made once per run;
  /// quantized weights read a `QuantizedInput` (or with `int8`, an `Int8Input`) prepared once per layout.
  func prepareInputs(_ jobs: [LinearJob], natural: UnsafePointer<Float>, stride: Int, rows: Int, int8: Bool) {
    var permuted = false
    for (j, job) in jobs.enumerated() {
      let columns = job.weight.columns
      switch job.weight {
      case .quantized(let weight):
        guard let inputs = preparedInputs, let sums = preparedSums else {
          preconditionFailure("LinearScratch was made without room for quantized weights")
        }
        precondition(columns <= maxColumns && rows <= pairOrderRows, "LinearScratch was sized for narrower inputs")
        // Jobs with the same layout (q, k, v; gate, up) share one prepared input.
        let earlier = jobs[..<j].indices.first(where: { QuantizedInput.sameLayout(jobs[$0].weight, job.weight) })
        #if canImport(CAVX512VNNI)
        if int8, let int8Rows {
          if let earlier {
            int8Inputs[j] = int8Inputs[earlier]
          } else {
            let prepared = int8Input(int8Rows, job: j, columns: columns)
            prepared.prepare(for: weight, natural: natural, stride: stride, rows: rows)
            int8Inputs[j] = prepared
          }
          continue
        }
        #elseif canImport(CAVX2)
        if int8, weight.rowBlocked, let int8Rows {
          if let earlier {
            int8Inputs[j] = int8Inputs[earlier]
          } else {
            let prepared = int8Input(int8Rows, job: j, columns: columns)
            prepared.prepareRowBlocks(for: weight, natural: natural, stride: stride, rows: rows)
            int8Inputs[j] = prepared
          }
          continue
        }
        #endif
        if let earlier {
          quantizedInputs[j] = quantizedInputs[earlier]
        } else {
          let prepared = QuantizedInput(
            values: inputs + j * pairOrderRows * Self.paddedStride(maxColumns), valueStride: Self.paddedStride(columns),
            sums: sums + j * pairOrderRows * Self.sumStride(maxColumns), sumStride: Self.sumStride(columns))
          prepared.prepare(for: weight, natural: natural, stride: stride, rows: rows)
          quantizedInputs[j] = prepared
        }
        continue
      case .dense(let weight) where weight.elementType == .f32:
        jobInputs[j] = natural
        jobStrides[j] = stride
        continue
      case .dense:
        break
      }
      precondition(columns <= maxColumns && rows <= pairOrderRows, "LinearScratch was sized for narrower inputs")
      if !permuted {
        for t in 0..<rows {
          PairOrder.permute(natural + t * stride, count: columns, into: pairOrderInput + t * Self.paddedStride(columns))
        }
        permuted = true
      }
      jobInputs[j] = UnsafePointer(pairOrderInput)
      jobStrides[j] = Self.paddedStride(columns)
    }
  }

  #if canImport(CAVX512VNNI)
  /// Whether a tiled run of `jobs` multiplies int8 activations (some job is quantized and the
  /// scratch has room for it).
  func tilesInt8(_ jobs: [LinearJob]) -> Bool {
    usesInt8 && promptRowsBuffer != nil && jobs.contains { if case .quantized = $0.weight { true } else { false } }
  }

  /// Prepares `rows` (at most `promptRows`) input rows for each quantized job's tiled int8
  /// kernel, on `pool`; jobs of one layout share them.
  func prepareInt8Prompts(_ jobs: [LinearJob], natural: UnsafePointer<Float>, stride: Int, rows: Int, pool: ThreadPool) {
    guard let promptRowsBuffer else { preconditionFailure("LinearScratch was made without room for int8 prompts") }
    precondition(rows <= promptRows, "at most \(promptRows) rows per tiled int8 run")
    let slot = promptRows * Int8Prompt.rowBytes((maxColumns + 63) / 64 * 64)
    int8Prompts.removeAll(keepingCapacity: true)
    for (j, job) in jobs.enumerated() {
      let prompt = Int8Prompt(base: promptRowsBuffer + j * slot, rows: promptRows, columns: job.weight.columns)
      guard case .quantized(let weight) = job.weight else {
        int8Prompts.append(prompt)
        continue
      }
      precondition(weight.columns <= maxColumns, "LinearScratch was sized for narrower inputs")
      if let earlier = jobs[..<j].indices.first(where: { QuantizedInput.sameLayout(jobs[$0].weight, job.weight) }) {
        int8Prompts.append(int8Prompts[earlier])
      } else {
        pool.parallelChunks(rows, grain: 8) { range in prompt.prepare(for: weight, natural: natural, stride: stride, rows: range) }
        int8Prompts.append(prompt)
      }
    }
  }
  #endif

  #if canImport(CAVX512BF16) && canImport(CAVX512VNNI)
  /// Whether a tiled run of `jobs` takes the bf16 tile: activations `.rounded`, room for them,
  /// and every weight bf16.
  func tilesBF16(_ jobs: [LinearJob]) -> Bool {
    activations == .rounded && bf16Rows != nil
      && jobs.allSatisfy { if case .dense(let w) = $0.weight { w.elementType == .bf16 } else { false } }
  }

  /// Rounds `rows` (at most `promptRows`) input rows, `columns` wide, to bf16 on `pool`, and
  /// zeroes the rows up to the next whole tile.
  func prepareBF16Prompt(natural: UnsafePointer<Float>, stride: Int, columns: Int, rows: Int, pool: ThreadPool) -> BF16Prompt {
    guard let bf16Rows else { preconditionFailure("LinearScratch was made without room for bf16 rows") }
    precondition(rows <= promptRows && columns <= maxColumns, "LinearScratch was sized for fewer or narrower rows")
    let prompt = BF16Prompt(words: bf16Rows, stride: Self.bf16Stride(columns))
    pool.parallelChunks(rows, grain: 8) { range in prompt.prepare(natural: natural, stride: stride, columns: columns, rows: range) }
    prompt.clear(rows: rows..<((rows + Linear.tileTokens - 1) / Linear.tileTokens * Linear.tileTokens))
    return prompt
  }
  #endif
}
