import CPrefetch

/// One linear layer applied to a batch of token rows: `output[t, r] = Σ_c input[t, c] · W[r, c]
/// (+ bias[r])`. Several jobs that read the same input (q, k and v; gate and up) run as one parallel
/// loop, which saves the dispatch and barrier of the others.
public struct LinearJob: @unchecked Sendable {
  public let weight: LinearWeight
  public let bias: WeightVector?
  public let output: UnsafeMutablePointer<Float>
  /// Distance in floats between the output rows of consecutive tokens.
  public let outputStride: Int

  public init(
    weight: LinearWeight, bias: WeightVector? = nil, output: UnsafeMutablePointer<Float>,
    outputStride: Int
  ) {
    self.weight = weight
    self.bias = bias
    self.output = output
    self.outputStride = outputStride
  }

  public init(
    weight: DenseMatrix, bias: WeightVector? = nil, output: UnsafeMutablePointer<Float>,
    outputStride: Int
  ) {
    self.init(weight: .dense(weight), bias: bias, output: output, outputStride: outputStride)
  }

  /// The same job for the token rows from `tokens` on.
  func advanced(byTokens tokens: Int) -> LinearJob {
    LinearJob(weight: weight, bias: bias, output: output + tokens * outputStride, outputStride: outputStride)
  }
}

/// Matrix products of f32 activations with f32/f16/bf16 or 4/8-bit group-quantized weights
/// (`Linear+Quantized.swift`).
///
/// Two paths, chosen by the number of token rows `T`:
/// - **Streaming** (`T < tiledMinimumTokens`: decode, batched decode of G samples, short prompts):
///   weight rows are widened to f32 in registers (`Widening.load32`) and multiplied with up to 8
///   token rows at once, so each weight byte is read from memory once per call. Memory-bandwidth
///   bound: a decode step of a bf16 model reads 2 bytes per parameter.
/// - **Tiled** (`T ≥ tiledMinimumTokens`: prefill): blocks of 32 weight rows are widened into a
///   packed panel and multiplied with 8 tokens at a time in registers (`Linear+Tiled.swift`).
///   Compute bound; as fast as OpenBLAS's AVX-512 SGEMM here, and 1.45× its AVX2 kernel. With
///   `LinearActivations.rounded`, quantized weights take an int8 tile (`Linear+Int8Tiled.swift`)
///   and bf16 weights a bf16 tile (`Linear+BF16Tiled.swift`), both about twice as fast. Builds
///   with the AVX2 int8 kernels stream prompts of row-blocked weights instead (`streamsPrompts`).
///
/// `reference(...)` is the plain scalar definition, kept for tests.
public enum Linear {
  /// Token rows at or above which the tiled kernel is used.
  public static let tiledMinimumTokens = 32

  /// Tasks per thread and job of the streaming kernel. Few large contiguous row ranges stream
  /// DRAM much faster than many small ones handed out alternately (measured on a 311 MB bf16
  /// matrix with 2 threads: 64-row tasks 55 GB/s, one half per thread 71 GB/s); a few per thread
  /// still let a thread slowed by another tenant take less.
  static let tasksPerThread = 2

  /// Weight rows per streaming task for a matrix of `rows` rows (a multiple of 16, so that tasks
  /// start at a row block of a row-blocked matrix; at least 32).
  @inline(__always)
  static func rowsPerTask(_ rows: Int, threads: Int) -> Int {
    let tasks = max(1, threads * tasksPerThread)
    return max(32, ((rows + tasks - 1) / tasks + 15) / 16 * 16)
  }

  /// The two implementations; `run` picks one by the number of tokens.
  public enum Path: Sendable {
    case streaming
    case tiled
  }

  /// Runs every job on `tokens` input rows (`input` is `[tokens, inputStride]`; each job reads the
  /// first `weight.columns` values of a row; all jobs have the same `columns`). At most
  /// `LinearScratch.maxJobs` jobs. `path` forces an implementation (tests).
  public static func run(
    _ jobs: [LinearJob], input: UnsafePointer<Float>, inputStride: Int, tokens: Int,
    pool: ThreadPool, scratch: LinearScratch, path: Path? = nil
  ) {
    guard tokens > 0, !jobs.isEmpty else { return }
    let columns = jobs[0].weight.columns
    precondition(jobs.allSatisfy { $0.weight.columns == columns }, "jobs of one run must read inputs of one width")
    precondition(scratch.fits(columns: columns, threads: pool.threadCount), "LinearScratch is too small for this run")
    switch path ?? (tokens >= tiledMinimumTokens && !streamsPrompts(jobs, scratch: scratch) ? .tiled : .streaming) {
    case .tiled:
      runTiled(jobs, input: input, inputStride: inputStride, tokens: tokens, pool: pool, scratch: scratch)
    case .streaming:
      runStreaming(jobs, input: input, inputStride: inputStride, tokens: tokens, pool: pool, scratch: scratch)
    }
  }

  /// Whether prompts of `jobs` take the streaming kernels too: with the AVX2 int8 kernels and
  /// every weight row-blocked. A row block (16 · columns bytes at 8 bits) stays in L1/L2 while
  /// the prompt's tokens pass it 4 at a time, each 32 bytes of codes unpacked once per pass:
  /// 1.1–1.4× the f32 tile's rate (docs/performance.md).
  static func streamsPrompts(_ jobs: [LinearJob], scratch: LinearScratch) -> Bool {
    guard LinearActivations.int8RowBlocksAvailable, scratch.usesInt8 else { return false }
    return jobs.allSatisfy {
      guard case .quantized(let m) = $0.weight else { return false }
      return m.rowBlocked
    }
  }

  /// The scalar definition, accumulated in `Double`: slow, for tests. With `.rounded`
  /// activations, quantized weights multiply the int8 blocks' values (`Int8Input.quantize(block:)`)
  /// and bf16 weights the inputs rounded to bf16 (`floatToBF16`), as the fast kernels do.
  public static func reference(
    _ job: LinearJob, input: UnsafePointer<Float>, inputStride: Int, tokens: Int, activations: LinearActivations = .exact
  ) {
    if activations == .rounded, case .quantized(let w) = job.weight {
      var stored = [Float](repeating: 0, count: w.columns)
      for t in 0..<tokens {
        for j in 0..<w.columns { stored[j] = input[t * inputStride + w.inputIndex(ofStoredColumn: j)] }
        let blocks = stride(from: 0, to: w.columns, by: Int8Input.block).map { start in
          stored.withUnsafeBufferPointer { Int8Input.quantize(block: $0.baseAddress! + start) }
        }
        for r in 0..<w.rows {
          var sum = 0.0
          for j in 0..<w.columns {
            let (scale, codes) = blocks[j / Int8Input.block]
            sum += Double(scale) * Double(codes[j % Int8Input.block]) * Double(w.dequantized(row: r, column: j))
          }
          if let bias = job.bias { sum += Double(bias[r]) }
          job.output[t * job.outputStride + r] = Float(sum)
        }
      }
      return
    }
    for t in 0..<tokens {
      for r in 0..<job.weight.rows {
        var sum = 0.0
        switch job.weight {
        case .dense(let w):
          let rounds = activations == .rounded && w.elementType == .bf16
          for c in 0..<w.columns {
            let x = input[t * inputStride + c]
            let rounded = rounds ? bf16ToFloat(floatToBF16(x)) : x
            sum += Double(rounded) * Double(load1(w.base, r * w.columns + c, w.elementType))
          }
        case .quantized(let w):
          for j in 0..<w.columns {
            sum += Double(input[t * inputStride + w.inputIndex(ofStoredColumn: j)]) * Double(w.dequantized(row: r, column: j))
          }
        }
        if let bias = job.bias { sum += Double(bias[r]) }
        job.output[t * job.outputStride + r] = Float(sum)
      }
    }
  }

  // MARK: Streaming kernel

  static func runStreaming(
    _ jobs: [LinearJob], input: UnsafePointer<Float>, inputStride: Int, tokens: Int,
    pool: ThreadPool, scratch: LinearScratch, activations: LinearActivations? = nil
  ) {
    let int8 = scratch.usesInt8 && activations != .exact
    precondition(jobs.count <= LinearScratch.maxJobs, "at most \(LinearScratch.maxJobs) jobs per run")
    var totalTasks = 0
    let threads = pool.threadCount
    for job in jobs {
      let perTask = rowsPerTask(job.weight.rows, threads: threads)
      totalTasks += (job.weight.rows + perTask - 1) / perTask
    }
    var first = 0
    while first < tokens {
      let count = min(tokens - first, scratch.pairOrderRows)
      scratch.prepareInputs(jobs, natural: input + first * inputStride, stride: inputStride, rows: count, int8: int8)
      pool.parallelFor(totalTasks) { task in
        var local = task
        for (j, job) in jobs.enumerated() {
          let perTask = rowsPerTask(job.weight.rows, threads: threads)
          let tasks = (job.weight.rows + perTask - 1) / perTask
          if local < tasks {
            let start = local * perTask
            let rows = start..<min(job.weight.rows, start + perTask)
            let output = job.output + first * job.outputStride
            switch job.weight {
            case .dense(let weight):
              let x = scratch.jobInputs[j], ldx = scratch.jobStrides[j]
              switch weight.elementType {
              case .bf16: streamRows(weight, job, BF16Widening.self, rows, x, ldx, count, output)
              case .f16: streamRows(weight, job, F16Widening.self, rows, x, ldx, count, output)
              case .f32: streamRows(weight, job, F32Widening.self, rows, x, ldx, count, output)
              }
            case .quantized(let weight):
              #if canImport(CAVX512VNNI)
              if int8 {
                streamInt8Rows(weight, rows, scratch.int8Inputs[j], count, output, job.outputStride)
              } else {
                streamQuantizedRows(weight, rows, scratch.quantizedInputs[j], count, output, job.outputStride)
              }
              #elseif canImport(CAVX2)
              if int8 && weight.rowBlocked {
                streamInt8RowBlocks(weight, rows, scratch.int8Inputs[j], count, output, job.outputStride)
              } else {
                streamQuantizedRows(weight, rows, scratch.quantizedInputs[j], count, output, job.outputStride)
              }
              #else
              streamQuantizedRows(weight, rows, scratch.quantizedInputs[j], count, output, job.outputStride)
              #endif
              if let bias = job.bias {
                for t in 0..<count {
                  let y = output + t * job.outputStride
                  for r in rows { y[r] += bias[r] }
                }
              }
            }
            return
          }
          local -= tasks
        }
      }
      first += count
    }
  }

  /// Rows `rows` of one job for `tokens` token rows of `x` (in the widening's load order).
  @inline(__always)
  static func streamRows<W: Widening>(
    _ weight: DenseMatrix, _ job: LinearJob, _: W.Type, _ rows: Range<Int>, _ x: UnsafePointer<Float>, _ ldx: Int,
    _ tokens: Int, _ output: UnsafeMutablePointer<Float>
  ) {
    let n = weight.columns
    let rowBytes = n * weight.elementType.byteCount
    let ldy = job.outputStride
    var t = 0
    while t < tokens {
      let remaining = tokens - t
      let xt = x + t * ldx
      let yt = output + t * ldy
      var r = rows.lowerBound
      if remaining == 1 {
        // One weight row at a time: a single sequential stream per thread reads DRAM fastest
        // (measured: 4 interleaved row streams were 15–20% slower).
        while r < rows.upperBound {
          yt[r] = dot1(W.self, weight.base + r * rowBytes, xt, n)
          r += 1
        }
        t += 1
        continue
      }
      let block = remaining >= 8 ? 8 : remaining >= 4 ? 4 : 2
      let rowStep = block == 8 ? 2 : 4
      while r + rowStep <= rows.upperBound {
        let w = weight.base + r * rowBytes
        switch block {
        case 8: kernel2x8(W.self, w, rowBytes, xt, ldx, n, yt + r, ldy)
        case 4: kernel4x4(W.self, w, rowBytes, xt, ldx, n, yt + r, ldy)
        default: kernel4x2(W.self, w, rowBytes, xt, ldx, n, yt + r, ldy)
        }
        r += rowStep
      }
      while r < rows.upperBound {
        for k in 0..<block { yt[k * ldy + r] = dot1(W.self, weight.base + r * rowBytes, xt + k * ldx, n) }
        r += 1
      }
      t += block
    }
    if let bias = job.bias {
      for t in 0..<tokens {
        let y = output + t * ldy
        for r in rows { y[r] += bias[r] }
      }
    }
  }

  @inline(__always)
  static func xLoad32(_ x: UnsafePointer<Float>, _ i: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    let raw = UnsafeRawPointer(x + i)
    return (raw.loadUnaligned(as: SIMD16<Float>.self), raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
  }

  /// The columns `end..<n` past the last full block of 32, which every load order leaves in
  /// place.
  @inline(__always)
  static func tail<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ end: Int, _ n: Int
  ) -> Float {
    var sum: Float = 0
    var i = end
    while i < n {
      sum += W.load1(w, i) * x[i]
      i += 1
    }
    return sum
  }

  /// Elements ahead of the current block that the batched kernels prefetch (about 1 KB of 16-bit
  /// weights: far enough to cover DRAM latency at their pace of one block per ~10 cycles).
  static let prefetchDistance = 2048

  // Every kernel below computes each output the same way — one accumulator that takes, block
  // by block in order, the low then the high vector of each 32-column block; then
  // `horizontalSum(acc)` plus the tail — so an output is bit-for-bit the same whichever kernel,
  // block of tokens or thread computes it. Batched decoding of G samples therefore gives each
  // sample exactly the tokens it gets alone.

  /// One weight row times one token row (decode).
  @inline(__always)
  static func dot1<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int
  ) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
      bitbudget_prefetch(w + (i + prefetchDistance) * W.byteCount)
      let (wl, wh) = W.load32(w, i)
      let (xl, xh) = xLoad32(x, i)
      acc.addProduct(wl, xl)
      acc.addProduct(wh, xh)
      i += 32
    }
    return horizontalSum(acc) + tail(W.self, w, x, i, n)
  }

  /// Four weight rows times two token rows (8 accumulators).
  @inline(__always)
  static func kernel4x2<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ ldw: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ n: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
    let x1 = x + ldx
    var a = Accumulators16()
    var i = 0
    while i + 32 <= n {
      bitbudget_prefetch(w + (i + prefetchDistance) * W.byteCount)
      bitbudget_prefetch(w1 + (i + prefetchDistance) * W.byteCount)
      bitbudget_prefetch(w2 + (i + prefetchDistance) * W.byteCount)
      bitbudget_prefetch(w3 + (i + prefetchDistance) * W.byteCount)
      let (l0, h0) = W.load32(w, i), (l1, h1) = W.load32(w1, i)
      let (l2, h2) = W.load32(w2, i), (l3, h3) = W.load32(w3, i)
      let (xl, xh) = xLoad32(x, i), (yl, yh) = xLoad32(x1, i)
      a.v.0.addProduct(l0, xl); a.v.0.addProduct(h0, xh)
      a.v.1.addProduct(l1, xl); a.v.1.addProduct(h1, xh)
      a.v.2.addProduct(l2, xl); a.v.2.addProduct(h2, xh)
      a.v.3.addProduct(l3, xl); a.v.3.addProduct(h3, xh)
      a.v.4.addProduct(l0, yl); a.v.4.addProduct(h0, yh)
      a.v.5.addProduct(l1, yl); a.v.5.addProduct(h1, yh)
      a.v.6.addProduct(l2, yl); a.v.6.addProduct(h2, yh)
      a.v.7.addProduct(l3, yl); a.v.7.addProduct(h3, yh)
      i += 32
    }
    a.store(rows: 4, tokens: 2, w, ldw, x, ldx, i, n, y, ldy, W.self)
  }

  /// Four weight rows times four token rows (16 accumulators).
  @inline(__always)
  static func kernel4x4<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ ldw: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ n: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
    let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
    var a = Accumulators16()
    var i = 0
    while i + 32 <= n {
      bitbudget_prefetch(w + (i + prefetchDistance) * W.byteCount)
      bitbudget_prefetch(w1 + (i + prefetchDistance) * W.byteCount)
      bitbudget_prefetch(w2 + (i + prefetchDistance) * W.byteCount)
      bitbudget_prefetch(w3 + (i + prefetchDistance) * W.byteCount)
      let (l0, h0) = W.load32(w, i), (l1, h1) = W.load32(w1, i)
      let (l2, h2) = W.load32(w2, i), (l3, h3) = W.load32(w3, i)
      var (xl, xh) = xLoad32(x, i)
      a.v.0.addProduct(l0, xl); a.v.0.addProduct(h0, xh); a.v.1.addProduct(l1, xl); a.v.1.addProduct(h1, xh)
      a.v.2.addProduct(l2, xl); a.v.2.addProduct(h2, xh); a.v.3.addProduct(l3, xl); a.v.3.addProduct(h3, xh)
      (xl, xh) = xLoad32(x1, i)
      a.v.4.addProduct(l0, xl); a.v.4.addProduct(h0, xh); a.v.5.addProduct(l1, xl); a.v.5.addProduct(h1, xh)
      a.v.6.addProduct(l2, xl); a.v.6.addProduct(h2, xh); a.v.7.addProduct(l3, xl); a.v.7.addProduct(h3, xh)
      (xl, xh) = xLoad32(x2, i)
      a.v.8.addProduct(l0, xl); a.v.8.addProduct(h0, xh); a.v.9.addProduct(l1, xl); a.v.9.addProduct(h1, xh)
      a.v.10.addProduct(l2, xl); a.v.10.addProduct(h2, xh); a.v.11.addProduct(l3, xl); a.v.11.addProduct(h3, xh)
      (xl, xh) = xLoad32(x3, i)
      a.v.12.addProduct(l0, xl); a.v.12.addProduct(h0, xh); a.v.13.addProduct(l1, xl); a.v.13.addProduct(h1, xh)
      a.v.14.addProduct(l2, xl); a.v.14.addProduct(h2, xh); a.v.15.addProduct(l3, xl); a.v.15.addProduct(h3, xh)
      i += 32
    }
    a.store(rows: 4, tokens: 4, w, ldw, x, ldx, i, n, y, ldy, W.self)
  }

  /// Two weight rows times eight token rows (batched decode of G samples; 16 accumulators).
  @inline(__always)
  static func kernel2x8<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ ldw: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ n: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let w1 = w + ldw
    var a = Accumulators16()
    var i = 0
    while i + 32 <= n {
      bitbudget_prefetch(w + (i + prefetchDistance) * W.byteCount)
      bitbudget_prefetch(w1 + (i + prefetchDistance) * W.byteCount)
      let (l0, h0) = W.load32(w, i), (l1, h1) = W.load32(w1, i)
      var (xl, xh) = xLoad32(x, i)
      a.v.0.addProduct(l0, xl); a.v.0.addProduct(h0, xh); a.v.1.addProduct(l1, xl); a.v.1.addProduct(h1, xh)
      (xl, xh) = xLoad32(x + ldx, i)
      a.v.2.addProduct(l0, xl); a.v.2.addProduct(h0, xh); a.v.3.addProduct(l1, xl); a.v.3.addProduct(h1, xh)
      (xl, xh) = xLoad32(x + 2 * ldx, i)
      a.v.4.addProduct(l0, xl); a.v.4.addProduct(h0, xh); a.v.5.addProduct(l1, xl); a.v.5.addProduct(h1, xh)
      (xl, xh) = xLoad32(x + 3 * ldx, i)
      a.v.6.addProduct(l0, xl); a.v.6.addProduct(h0, xh); a.v.7.addProduct(l1, xl); a.v.7.addProduct(h1, xh)
      (xl, xh) = xLoad32(x + 4 * ldx, i)
      a.v.8.addProduct(l0, xl); a.v.8.addProduct(h0, xh); a.v.9.addProduct(l1, xl); a.v.9.addProduct(h1, xh)
      (xl, xh) = xLoad32(x + 5 * ldx, i)
      a.v.10.addProduct(l0, xl); a.v.10.addProduct(h0, xh); a.v.11.addProduct(l1, xl); a.v.11.addProduct(h1, xh)
      (xl, xh) = xLoad32(x + 6 * ldx, i)
      a.v.12.addProduct(l0, xl); a.v.12.addProduct(h0, xh); a.v.13.addProduct(l1, xl); a.v.13.addProduct(h1, xh)
      (xl, xh) = xLoad32(x + 7 * ldx, i)
      a.v.14.addProduct(l0, xl); a.v.14.addProduct(h0, xh); a.v.15.addProduct(l1, xl); a.v.15.addProduct(h1, xh)
      i += 32
    }
    a.store(rows: 2, tokens: 8, w, ldw, x, ldx, i, n, y, ldy, W.self)
  }
}

/// Up to sixteen SIMD accumulators kept in registers by the multi-row kernels: output (row r,
/// token t) of an R×T block is `v[tR + r]`.
struct Accumulators16 {
  var v = (
    SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
    SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
    SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
    SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>()
  )

  /// Writes `y[t·ldy + r] = Σ(lo + hi) + tail` for the block's outputs.
  @inline(__always)
  mutating func store<W: Widening>(
    rows: Int, tokens: Int, _ w: UnsafeRawPointer, _ ldw: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
    _ end: Int, _ n: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _: W.Type
  ) {
    withUnsafeBytes(of: &v) { raw in
      let acc = raw.bindMemory(to: SIMD16<Float>.self)
      for t in 0..<tokens {
        for r in 0..<rows {
          y[t * ldy + r] = horizontalSum(acc[t * rows + r]) + Linear.tail(W.self, w + r * ldw, x + t * ldx, end, n)
        }
      }
    }
  }

  /// Writes a tiled kernel's 8-token × 32-row tile, `v.(2t)` and `v.(2t + 1)` holding rows
  /// `0 ..< 16` and `16 ..< 32` of token `t`: `y[t·ldy + r]` for the first `tokens` tokens and
  /// `count` rows.
  @inline(__always)
  mutating func storeTile(_ y: UnsafeMutablePointer<Float>, _ ldy: Int, count: Int, tokens: Int = Linear.tileTokens) {
    withUnsafeBytes(of: &v) { raw in
      let acc = raw.bindMemory(to: SIMD16<Float>.self)
      for t in 0..<tokens {
        let row = y + t * ldy
        if count == Linear.panelWidth {
          UnsafeMutableRawPointer(row).storeBytes(of: acc[2 * t], as: SIMD16<Float>.self)
          UnsafeMutableRawPointer(row).storeBytes(of: acc[2 * t + 1], toByteOffset: 64, as: SIMD16<Float>.self)
        } else {
          for j in 0..<count { row[j] = acc[2 * t + j / 16][j % 16] }
        }
      }
    }
  }
}

/// The sum of the 16 lanes as a balanced tree (`SIMD.sum()` is an out-of-line call).
@inline(__always) @usableFromInline
func horizontalSum(_ v: SIMD16<Float>) -> Float {
  let a = v.lowHalf + v.highHalf
  let b = a.lowHalf + a.highHalf
  let c = b.lowHalf + b.highHalf
  return c[0] + c[1]
}
