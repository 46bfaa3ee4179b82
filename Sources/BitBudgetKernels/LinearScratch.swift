/// Scratch memory of the linear kernels, allocated once per session:
/// - the input rows in pair order for the streaming kernel (`tiledMinimumTokens × maxColumns`
///   floats), so that 16-bit weights can be widened with a shift and a mask;
/// - per thread, one packed weight panel for the tiled kernel (`32 × maxColumns` floats).
public final class LinearScratch: @unchecked Sendable {
  /// Most jobs one `Linear.run` may take.
  public static let maxJobs = 4
  /// Token rows per streaming call (more are processed in slices of this many).
  let pairOrderRows = Linear.tiledMinimumTokens
  private let maxColumns: Int
  private let pairOrderInput: UnsafeMutablePointer<Float>
  private let panels: [UnsafeMutablePointer<Float>]
  /// Per job, room for its input rows in an act-order matrix's input order (nil if no matrix
  /// reorders its input).
  private let gatheredInputs: UnsafeMutablePointer<Float>?
  let jobInputs: UnsafeMutablePointer<UnsafePointer<Float>>
  let jobStrides: UnsafeMutablePointer<Int>
  let threadCount: Int

  /// - Parameters:
  ///   - threadCount: threads of the pool that will run the kernels.
  ///   - maxColumns: the widest weight matrix input (largest `columns`).
  ///   - reordersInputs: whether some quantized matrix has an input order (act-order).
  public init(threadCount: Int, maxColumns: Int, reordersInputs: Bool = false) {
    self.maxColumns = max(1, maxColumns)
    self.threadCount = max(1, threadCount)
    pairOrderInput = Self.allocate(pairOrderRows * Self.paddedStride(self.maxColumns))
    gatheredInputs = reordersInputs ? Self.allocate(Self.maxJobs * pairOrderRows * Self.paddedStride(self.maxColumns)) : nil
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
    gatheredInputs?.deallocate()
    for panel in panels { panel.deallocate() }
    jobInputs.deallocate()
    jobStrides.deallocate()
  }

  /// Whether runs over inputs `columns` wide on a pool of `threads` threads fit this scratch.
  func fits(columns: Int, threads: Int) -> Bool { columns <= maxColumns && threads <= threadCount }

  /// Whether the scratch has room for act-order inputs.
  public var reordersInputs: Bool { gatheredInputs != nil }

  /// Total scratch bytes held.
  public var byteCount: Int {
    Self.byteCount(threadCount: threadCount, maxColumns: maxColumns, reordersInputs: gatheredInputs != nil)
  }

  /// Scratch bytes of a `LinearScratch(threadCount:maxColumns:reordersInputs:)`.
  public static func byteCount(threadCount: Int, maxColumns: Int, reordersInputs: Bool = false) -> Int {
    let columns = max(1, maxColumns)
    let rows = Linear.tiledMinimumTokens * paddedStride(columns)
    return (rows * (reordersInputs ? 1 + maxJobs : 1) + max(1, threadCount) * Linear.panelWidth * columns) * 4
  }

  /// Row stride of the pair-order input: a multiple of 16 floats plus 16, so that consecutive
  /// rows do not start 4 KiB apart (rows of 1024 floats would all fall in the same L1 sets and
  /// evict each other while the batched kernels read 8 of them per block).
  static func paddedStride(_ columns: Int) -> Int { (columns + 15) / 16 * 16 + 16 }

  /// The tiled kernel's packed-panel buffer of `thread` (`32 × maxColumns` floats, 64-byte aligned).
  func panel(thread: Int) -> UnsafeMutablePointer<Float> { panels[thread] }

  /// Sets each job's input pointer and stride: f32 and quantized weights read `natural` as it
  /// is; 16-bit weights read one copy of the rows in pair order (`PairOrder.permute`), made once
  /// per run; act-order quantized weights read their own copy in their input order.
  func prepareInputs(_ jobs: [LinearJob], natural: UnsafePointer<Float>, stride: Int, rows: Int) {
    var permuted = false
    for (j, job) in jobs.enumerated() {
      let columns = job.weight.columns
      switch job.weight {
      case .quantized(let weight):
        if let order = weight.inputOrder, let gathered = gatheredInputs {
          precondition(columns <= maxColumns && rows <= pairOrderRows, "LinearScratch was sized for narrower inputs")
          let destination = gathered + j * pairOrderRows * Self.paddedStride(maxColumns)
          for t in 0..<rows {
            let source = natural + t * stride, row = destination + t * Self.paddedStride(columns)
            for c in 0..<columns { row[c] = source[Int(order[c])] }
          }
          jobInputs[j] = UnsafePointer(destination)
          jobStrides[j] = Self.paddedStride(columns)
        } else {
          precondition(weight.inputOrder == nil, "LinearScratch was made without room for act-order inputs")
          jobInputs[j] = natural
          jobStrides[j] = stride
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
}
