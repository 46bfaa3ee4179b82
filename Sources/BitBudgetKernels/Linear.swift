#if canImport(CBLAS)
import CBLAS
#elseif canImport(Accelerate)
import Accelerate
#endif

/// One linear layer applied to a batch of token rows: `output[t, r] = Σ_c input[t, c] · W[r, c]
/// (+ bias[r])`. Several jobs that read the same input (q, k and v; gate and up) run as one parallel
/// loop, which halves or thirds the dispatch cost of a decode step.
public struct LinearJob: @unchecked Sendable {
  public let weight: DenseMatrix
  public let bias: WeightVector?
  public let output: UnsafeMutablePointer<Float>
  /// Distance in floats between the output rows of consecutive tokens.
  public let outputStride: Int

  public init(
    weight: DenseMatrix, bias: WeightVector? = nil, output: UnsafeMutablePointer<Float>,
    outputStride: Int
  ) {
    self.weight = weight
    self.bias = bias
    self.output = output
    self.outputStride = outputStride
  }
}

/// Matrix products of f32 activations with f32/f16/bf16 weights.
///
/// Two paths, chosen by the number of token rows `T`:
/// - **Streaming kernel** (`T < blasMinimumTokens`: decode, batched decode of G samples, short
///   prompts): each weight row is loaded once, widened to f32 in registers and multiplied with up to
///   8 token rows. Memory-bandwidth bound; reads each weight byte once per call.
/// - **BLAS** (`T ≥ blasMinimumTokens`: prefill): per thread, a block of weight rows is widened into
///   f32 scratch (`LinearScratch`) and multiplied with `cblas_sgemm`. Compute bound. Without a BLAS
///   library the streaming kernel is used for every `T`.
///
/// `reference(...)` is the plain scalar definition, kept for tests.
public enum Linear {
  /// Rows of `T` at or above which prefill GEMMs go through BLAS.
  public static let blasMinimumTokens = 32

  /// Weight rows per task of the streaming kernel (a task reads `rowsPerTask × columns` weights).
  static let rowsPerTask = 32

  /// Whether a BLAS library was linked (OpenBLAS on Linux, Accelerate on macOS).
  public static var hasBLAS: Bool {
    #if canImport(CBLAS) || canImport(Accelerate)
    return true
    #else
    return false
    #endif
  }

  /// Runs every job on `tokens` input rows (`input` is `[tokens, inputStride]`, each job reads the
  /// first `weight.columns` values of a row). Jobs run together in one parallel loop.
  public static func run(
    _ jobs: [LinearJob], input: UnsafePointer<Float>, inputStride: Int, tokens: Int,
    pool: ThreadPool, scratch: LinearScratch
  ) {
    guard tokens > 0, !jobs.isEmpty else { return }
    if hasBLAS && tokens >= blasMinimumTokens {
      runBLAS(jobs, input: input, inputStride: inputStride, tokens: tokens, pool: pool, scratch: scratch)
    } else {
      runStreaming(jobs, input: input, inputStride: inputStride, tokens: tokens, pool: pool)
    }
  }

  /// The scalar definition, accumulated in `Double`: slow, for tests.
  public static func reference(
    _ job: LinearJob, input: UnsafePointer<Float>, inputStride: Int, tokens: Int
  ) {
    let w = job.weight
    for t in 0..<tokens {
      for r in 0..<w.rows {
        var sum = 0.0
        for c in 0..<w.columns {
          sum += Double(input[t * inputStride + c]) * Double(load1(w.base, r * w.columns + c, w.elementType))
        }
        if let bias = job.bias { sum += Double(bias[r]) }
        job.output[t * job.outputStride + r] = Float(sum)
      }
    }
  }

  // MARK: Streaming kernel

  static func runStreaming(
    _ jobs: [LinearJob], input: UnsafePointer<Float>, inputStride: Int, tokens: Int, pool: ThreadPool
  ) {
    var totalTasks = 0
    for job in jobs { totalTasks += (job.weight.rows + rowsPerTask - 1) / rowsPerTask }
    pool.parallelFor(totalTasks) { task in
      var local = task
      for job in jobs {
        let tasks = (job.weight.rows + rowsPerTask - 1) / rowsPerTask
        if local < tasks {
          let start = local * rowsPerTask
          let rows = start..<min(job.weight.rows, start + rowsPerTask)
          switch job.weight.elementType {
          case .bf16: streamRows(job, BF16Widening.self, rows, input, inputStride, tokens)
          case .f16: streamRows(job, F16Widening.self, rows, input, inputStride, tokens)
          case .f32: streamRows(job, F32Widening.self, rows, input, inputStride, tokens)
          }
          return
        }
        local -= tasks
      }
    }
  }

  @inline(__always)
  static func streamRows<W: Widening>(
    _ job: LinearJob, _: W.Type, _ rows: Range<Int>, _ x: UnsafePointer<Float>, _ ldx: Int,
    _ tokens: Int
  ) {
    let weight = job.weight
    let n = weight.columns
    let rowBytes = n * weight.elementType.byteCount
    var t = 0
    while t < tokens {
      let remaining = tokens - t
      let xt = x + t * ldx
      let yt = job.output + t * job.outputStride
      let ldy = job.outputStride
      var r = rows.lowerBound
      if remaining >= 8 {
        while r + 2 <= rows.upperBound {
          kernel2x8(W.self, weight.base + r * rowBytes, rowBytes, xt, ldx, n, yt + r, ldy)
          r += 2
        }
        while r < rows.upperBound {
          for k in 0..<8 { yt[k * ldy + r] = dot1(W.self, weight.base + r * rowBytes, xt + k * ldx, n) }
          r += 1
        }
        t += 8
      } else if remaining >= 4 {
        while r + 4 <= rows.upperBound {
          kernel4x4(W.self, weight.base + r * rowBytes, rowBytes, xt, ldx, n, yt + r, ldy)
          r += 4
        }
        while r < rows.upperBound {
          for k in 0..<4 { yt[k * ldy + r] = dot1(W.self, weight.base + r * rowBytes, xt + k * ldx, n) }
          r += 1
        }
        t += 4
      } else if remaining >= 2 {
        while r + 4 <= rows.upperBound {
          kernel4x2(W.self, weight.base + r * rowBytes, rowBytes, xt, ldx, n, yt + r, ldy)
          r += 4
        }
        while r < rows.upperBound {
          for k in 0..<2 { yt[k * ldy + r] = dot1(W.self, weight.base + r * rowBytes, xt + k * ldx, n) }
          r += 1
        }
        t += 2
      } else {
        while r + 4 <= rows.upperBound {
          kernel4x1(W.self, weight.base + r * rowBytes, rowBytes, xt, n, yt + r)
          r += 4
        }
        while r < rows.upperBound {
          yt[r] = dot1(W.self, weight.base + r * rowBytes, xt, n)
          r += 1
        }
        t += 1
      }
    }
    if let bias = job.bias {
      for t in 0..<tokens {
        let y = job.output + t * job.outputStride
        for r in rows { y[r] += bias[r] }
      }
    }
  }

  @inline(__always)
  static func xLoad(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
    UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
  }

  /// One weight row times one token row.
  @inline(__always)
  static func dot1<W: Widening>(_: W.Type, _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int)
    -> Float
  {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
      a0.addProduct(W.load16(w, i), xLoad(x, i))
      a1.addProduct(W.load16(w, i + 16), xLoad(x, i + 16))
      i += 32
    }
    if i + 16 <= n {
      a0.addProduct(W.load16(w, i), xLoad(x, i))
      i += 16
    }
    var sum = (a0 + a1).sum()
    while i < n {
      sum += W.load1(w, i) * x[i]
      i += 1
    }
    return sum
  }

  /// Four weight rows times one token row (decode).
  @inline(__always)
  static func kernel4x1<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ ldw: Int, _ x: UnsafePointer<Float>, _ n: Int,
    _ y: UnsafeMutablePointer<Float>
  ) {
    let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
      let xv = xLoad(x, i)
      a0.addProduct(W.load16(w, i), xv)
      a1.addProduct(W.load16(w1, i), xv)
      a2.addProduct(W.load16(w2, i), xv)
      a3.addProduct(W.load16(w3, i), xv)
      i += 16
    }
    var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
    while i < n {
      let xv = x[i]
      s0 += W.load1(w, i) * xv
      s1 += W.load1(w1, i) * xv
      s2 += W.load1(w2, i) * xv
      s3 += W.load1(w3, i) * xv
      i += 1
    }
    y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3
  }

  /// Four weight rows times two token rows.
  @inline(__always)
  static func kernel4x2<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ ldw: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ n: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
    let x1 = x + ldx
    var a00 = SIMD16<Float>(), a10 = SIMD16<Float>(), a20 = SIMD16<Float>(), a30 = SIMD16<Float>()
    var a01 = SIMD16<Float>(), a11 = SIMD16<Float>(), a21 = SIMD16<Float>(), a31 = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
      let v0 = W.load16(w, i), v1 = W.load16(w1, i), v2 = W.load16(w2, i), v3 = W.load16(w3, i)
      let x0v = xLoad(x, i), x1v = xLoad(x1, i)
      a00.addProduct(v0, x0v); a10.addProduct(v1, x0v); a20.addProduct(v2, x0v); a30.addProduct(v3, x0v)
      a01.addProduct(v0, x1v); a11.addProduct(v1, x1v); a21.addProduct(v2, x1v); a31.addProduct(v3, x1v)
      i += 16
    }
    var s = (a00.sum(), a10.sum(), a20.sum(), a30.sum(), a01.sum(), a11.sum(), a21.sum(), a31.sum())
    while i < n {
      let v0 = W.load1(w, i), v1 = W.load1(w1, i), v2 = W.load1(w2, i), v3 = W.load1(w3, i)
      s.0 += v0 * x[i]; s.1 += v1 * x[i]; s.2 += v2 * x[i]; s.3 += v3 * x[i]
      s.4 += v0 * x1[i]; s.5 += v1 * x1[i]; s.6 += v2 * x1[i]; s.7 += v3 * x1[i]
      i += 1
    }
    y[0] = s.0; y[1] = s.1; y[2] = s.2; y[3] = s.3
    let y1 = y + ldy
    y1[0] = s.4; y1[1] = s.5; y1[2] = s.6; y1[3] = s.7
  }

  /// Four weight rows times four token rows (16 accumulators).
  @inline(__always)
  static func kernel4x4<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ ldw: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ n: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
    let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
    var a = (
      SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
      SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
      SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
      SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>()
    )
    var i = 0
    while i + 16 <= n {
      let v0 = W.load16(w, i), v1 = W.load16(w1, i), v2 = W.load16(w2, i), v3 = W.load16(w3, i)
      var xv = xLoad(x, i)
      a.0.addProduct(v0, xv); a.1.addProduct(v1, xv); a.2.addProduct(v2, xv); a.3.addProduct(v3, xv)
      xv = xLoad(x1, i)
      a.4.addProduct(v0, xv); a.5.addProduct(v1, xv); a.6.addProduct(v2, xv); a.7.addProduct(v3, xv)
      xv = xLoad(x2, i)
      a.8.addProduct(v0, xv); a.9.addProduct(v1, xv); a.10.addProduct(v2, xv); a.11.addProduct(v3, xv)
      xv = xLoad(x3, i)
      a.12.addProduct(v0, xv); a.13.addProduct(v1, xv); a.14.addProduct(v2, xv); a.15.addProduct(v3, xv)
      i += 16
    }
    let tail = i
    withUnsafeBytes(of: &a) { raw in
      let acc = raw.bindMemory(to: SIMD16<Float>.self)
      for k in 0..<4 {
        let xk = x + k * ldx
        let yk = y + k * ldy
        for r in 0..<4 {
          var s = acc[k * 4 + r].sum()
          let wr = w + r * ldw
          var j = tail
          while j < n {
            s += W.load1(wr, j) * xk[j]
            j += 1
          }
          yk[r] = s
        }
      }
    }
  }

  /// Two weight rows times eight token rows (batched decode of G samples).
  @inline(__always)
  static func kernel2x8<W: Widening>(
    _: W.Type, _ w: UnsafeRawPointer, _ ldw: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ n: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let w1 = w + ldw
    var a = (
      SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
      SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
      SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
      SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>()
    )
    var i = 0
    while i + 16 <= n {
      let v0 = W.load16(w, i), v1 = W.load16(w1, i)
      var xv = xLoad(x, i)
      a.0.addProduct(v0, xv); a.1.addProduct(v1, xv)
      xv = xLoad(x + ldx, i)
      a.2.addProduct(v0, xv); a.3.addProduct(v1, xv)
      xv = xLoad(x + 2 * ldx, i)
      a.4.addProduct(v0, xv); a.5.addProduct(v1, xv)
      xv = xLoad(x + 3 * ldx, i)
      a.6.addProduct(v0, xv); a.7.addProduct(v1, xv)
      xv = xLoad(x + 4 * ldx, i)
      a.8.addProduct(v0, xv); a.9.addProduct(v1, xv)
      xv = xLoad(x + 5 * ldx, i)
      a.10.addProduct(v0, xv); a.11.addProduct(v1, xv)
      xv = xLoad(x + 6 * ldx, i)
      a.12.addProduct(v0, xv); a.13.addProduct(v1, xv)
      xv = xLoad(x + 7 * ldx, i)
      a.14.addProduct(v0, xv); a.15.addProduct(v1, xv)
      i += 16
    }
    let tail = i
    withUnsafeBytes(of: &a) { raw in
      let acc = raw.bindMemory(to: SIMD16<Float>.self)
      for k in 0..<8 {
        let xk = x + k * ldx
        let yk = y + k * ldy
        for r in 0..<2 {
          var s = acc[k * 2 + r].sum()
          let wr = w + r * ldw
          var j = tail
          while j < n {
            s += W.load1(wr, j) * xk[j]
            j += 1
          }
          yk[r] = s
        }
      }
    }
  }

  // MARK: BLAS path

  static func runBLAS(
    _ jobs: [LinearJob], input: UnsafePointer<Float>, inputStride: Int, tokens: Int,
    pool: ThreadPool, scratch: LinearScratch
  ) {
    #if canImport(CBLAS) || canImport(Accelerate)
    var totalTasks = 0
    for job in jobs { totalTasks += (job.weight.rows + scratch.rowsPerBlock(job.weight.columns) - 1) / scratch.rowsPerBlock(job.weight.columns) }
    pool.parallelFor(totalTasks) { task, thread in
      var local = task
      for job in jobs {
        let weight = job.weight
        let blockRows = scratch.rowsPerBlock(weight.columns)
        let tasks = (weight.rows + blockRows - 1) / blockRows
        if local >= tasks {
          local -= tasks
          continue
        }
        let start = local * blockRows
        let count = min(weight.rows, start + blockRows) - start
        let k = weight.columns
        let block: UnsafePointer<Float>
        if weight.elementType == .f32 && Int(bitPattern: weight.base) % 4 == 0 {
          block = weight.base.assumingMemoryBound(to: Float.self) + start * k
        } else {
          let destination = scratch.buffer(thread: thread)
          loadConverted(from: weight.base, at: start * k, count: count * k, as: weight.elementType, into: destination)
          block = UnsafePointer(destination)
        }
        cblas_sgemm(
          CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(count), Int32(k),
          1, input, Int32(inputStride), block, Int32(k), 0, job.output + start, Int32(job.outputStride))
        if let bias = job.bias {
          for t in 0..<tokens {
            let y = job.output + t * job.outputStride + start
            for r in 0..<count { y[r] += bias[start + r] }
          }
        }
        return
      }
    }
    #else
    runStreaming(jobs, input: input, inputStride: inputStride, tokens: tokens, pool: pool)
    #endif
  }
}

/// Per-thread f32 scratch for the BLAS path: one block of widened weight rows per thread.
/// Holds `threads × blockBytes` bytes (1 MiB per thread), allocated once.
public final class LinearScratch: @unchecked Sendable {
  /// Bytes of widened weights per thread and block.
  public static let blockBytes = 1 << 20
  private let buffers: [UnsafeMutablePointer<Float>]

  public init(threadCount: Int) {
    buffers = (0..<max(1, threadCount)).map { _ in
      UnsafeMutableRawPointer.allocate(byteCount: Self.blockBytes, alignment: 64)
        .bindMemory(to: Float.self, capacity: Self.blockBytes / 4)
    }
    #if canImport(CBLAS)
    // Our own pool parallelizes over weight blocks; OpenBLAS threads would oversubscribe the cores.
    openblas_set_num_threads(1)
    #endif
  }

  deinit {
    for buffer in buffers { buffer.deallocate() }
  }

  /// Total scratch bytes held.
  public var byteCount: Int { buffers.count * Self.blockBytes }

  func buffer(thread: Int) -> UnsafeMutablePointer<Float> { buffers[thread] }

  /// Weight rows per block for a matrix with `columns` columns (at least 1).
  @inline(__always)
  func rowsPerBlock(_ columns: Int) -> Int {
    max(1, Self.blockBytes / 4 / max(1, columns))
  }
}

// MARK: - Widening (static dispatch on the weight element type)

@usableFromInline
protocol Widening {
  static func load16(_ base: UnsafeRawPointer, _ index: Int) -> SIMD16<Float>
  static func load1(_ base: UnsafeRawPointer, _ index: Int) -> Float
}

@usableFromInline
enum BF16Widening: Widening {
  @inline(__always) @usableFromInline
  static func load16(_ base: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> { loadBF16x16(base, index) }
  @inline(__always) @usableFromInline
  static func load1(_ base: UnsafeRawPointer, _ index: Int) -> Float {
    bf16ToFloat(base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
  }
}

@usableFromInline
enum F16Widening: Widening {
  @inline(__always) @usableFromInline
  static func load16(_ base: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> { loadF16x16(base, index) }
  @inline(__always) @usableFromInline
  static func load1(_ base: UnsafeRawPointer, _ index: Int) -> Float {
    f16ToFloat(base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
  }
}

@usableFromInline
enum F32Widening: Widening {
  @inline(__always) @usableFromInline
  static func load16(_ base: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> { loadF32x16(base, index) }
  @inline(__always) @usableFromInline
  static func load1(_ base: UnsafeRawPointer, _ index: Int) -> Float {
    base.loadUnaligned(fromByteOffset: index &* 4, as: Float.self)
  }
}
