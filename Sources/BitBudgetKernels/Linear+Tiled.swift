#if canImport(CAVX512VNNI)
internal import _Builtin_intrinsics.intel
#endif
import CPrefetch

extension Linear {
  /// Output rows per packed panel of the tiled kernel.
  static let panelWidth = 32
  /// Token rows per register tile of the tiled kernel.
  static let tileTokens = 8

  /// Prefill GEMM without a BLAS library: tasks are blocks of 32 weight rows; each task widens its
  /// block once into a k-major f32 panel (`[columns][32]`, in L2) and multiplies it with the
  /// tokens 8 at a time, keeping an 8 × 32 tile of outputs in 16 registers: per column, two panel
  /// loads and eight broadcasts feed 16 FMAs. Each weight byte is read once per call (per
  /// `LinearScratch.promptRows` tokens with rounded activations). Quantized weights with int8
  /// activations (`LinearScratch.activations`) take the int8 tile instead
  /// (`Linear+Int8Tiled.swift`), and bf16 weights with rounded activations the bf16 tile
  /// (`Linear+BF16Tiled.swift`). Token rows past the last multiple of 8 go through the
  /// streaming kernel.
  static func runTiled(
    _ jobs: [LinearJob], input: UnsafePointer<Float>, inputStride: Int, tokens: Int,
    pool: ThreadPool, scratch: LinearScratch
  ) {
    #if canImport(CAVX512BF16) && canImport(CAVX512VNNI)
    if scratch.tilesBF16(jobs) {
      runBF16Tiled(jobs, input: input, inputStride: inputStride, tokens: tokens, pool: pool, scratch: scratch)
      return
    }
    #endif
    #if canImport(CAVX512VNNI)
    let int8 = scratch.tilesInt8(jobs)
    if int8 && tokens > scratch.promptRows {
      for first in stride(from: 0, to: tokens, by: scratch.promptRows) {
        runTiled(
          jobs.map { $0.advanced(byTokens: first) }, input: input + first * inputStride, inputStride: inputStride,
          tokens: min(scratch.promptRows, tokens - first), pool: pool, scratch: scratch)
      }
      return
    }
    #else
    let int8 = false
    #endif
    let tiled = tokens / tileTokens * tileTokens
    if tiled > 0 {
      #if canImport(CAVX512VNNI)
      if int8 { scratch.prepareInt8Prompts(jobs, natural: input, stride: inputStride, rows: tiled, pool: pool) }
      #endif
      var totalTasks = 0
      for job in jobs { totalTasks += (job.weight.rows + panelWidth - 1) / panelWidth }
      pool.parallelFor(totalTasks) { task, thread in
        var local = task
        for (j, job) in jobs.enumerated() {
          let blocks = (job.weight.rows + panelWidth - 1) / panelWidth
          if local < blocks {
            let panel = scratch.panel(thread: thread)
            let first = local * panelWidth
            let count = min(panelWidth, job.weight.rows - first)
            let k = job.weight.columns
            switch job.weight {
            case .dense(let weight):
              pack(weight, rows: first..<(first + count), into: panel)
              tileAll(panel, job, input, inputStride, k, tiled, first, count)
            case .quantized(let weight):
              if int8 {
                #if canImport(CAVX512VNNI)
                packInt8(weight, rows: first..<(first + count), into: UnsafeMutableRawPointer(panel))
                let prompt = scratch.int8Prompts[j], sub = int8SubBlock(weight)
                for t in stride(from: 0, to: tiled, by: int8TileTokens) {
                  int8Tile4x32(UnsafeRawPointer(panel), columns: k, subBlock: sub, prompt, t, job.output + t * job.outputStride + first, job.outputStride, count)
                }
                #endif
              } else {
                pack(weight, rows: first..<(first + count), into: panel)
                tileAll(panel, job, input, inputStride, k, tiled, first, count)
              }
            }
            addBias(job, rows: first..<(first + count), tokens: tiled)
            return
          }
          local -= blocks
        }
      }
    }
    if tiled < tokens {
      runStreaming(
        jobs.map { $0.advanced(byTokens: tiled) }, input: input + tiled * inputStride, inputStride: inputStride,
        tokens: tokens - tiled, pool: pool, scratch: scratch,
        // The whole prefill multiplies the activations one way, its last few tokens too.
        activations: int8 ? nil : .exact)
    }
  }

  /// Adds `job`'s bias (if any) to outputs `rows` of its first `tokens` token rows: the tiles
  /// write their sums without it.
  @inline(__always)
  static func addBias(_ job: LinearJob, rows: Range<Int>, tokens: Int) {
    guard let bias = job.bias else { return }
    for t in 0..<tokens {
      let y = job.output + t * job.outputStride
      for r in rows { y[r] += bias[r] }
    }
  }

  /// The f32 tile over the first `tiled` token rows, for rows `first ..< first + count`.
  @inline(__always)
  static func tileAll(
    _ panel: UnsafeMutablePointer<Float>, _ job: LinearJob, _ input: UnsafePointer<Float>, _ inputStride: Int, _ k: Int,
    _ tiled: Int, _ first: Int, _ count: Int
  ) {
    for t in stride(from: 0, to: tiled, by: tileTokens) {
      tile8x32(panel, input + t * inputStride, inputStride, k, job.output + t * job.outputStride + first, job.outputStride, count)
    }
  }

  /// Widens rows `rows` of `weight` (at most 32) into `panel[c * 32 + r]`, zero-filling missing
  /// rows.
  @inline(__always)
  static func pack(_ weight: DenseMatrix, rows: Range<Int>, into panel: UnsafeMutablePointer<Float>) {
    let k = weight.columns
    switch weight.elementType {
    case .bf16: pack(BF16Widening.self, weight, rows, panel, k)
    case .f16: pack(F16Widening.self, weight, rows, panel, k)
    case .f32: pack(F32Widening.self, weight, rows, panel, k)
    }
  }

  @inline(__always)
  static func pack<W: Widening>(
    _: W.Type, _ weight: DenseMatrix, _ rows: Range<Int>, _ panel: UnsafeMutablePointer<Float>, _ k: Int
  ) {
    #if canImport(CAVX512VNNI)
    let vectorized = k / 32 * 32
    packBlocks(W.self, weight, rows, panel, k)
    #else
    let vectorized = 0
    #endif
    for (j, row) in rows.enumerated() {
      let base = weight.base + row * k * weight.elementType.byteCount
      for c in vectorized..<k { panel[c * panelWidth + j] = W.load1(base, c) }
    }
    if rows.count < panelWidth {
      for c in vectorized..<k {
        for j in rows.count..<panelWidth { panel[c * panelWidth + j] = 0 }
      }
    }
  }

  #if canImport(CAVX512VNNI)
  /// The columns `0 ..< k / 32 * 32` of `pack`, 16 rows × 32 columns at a time: each row's 32
  /// values widened as the streaming kernels load them (two vectors), then each vector set's
  /// 16 × 16 transposed in registers into 16 panel columns; missing rows stay zero. (Written one
  /// float at a time, the pack took 13% of a 16-bit prefill.)
  @inline(__always)
  static func packBlocks<W: Widening>(
    _: W.Type, _ weight: DenseMatrix, _ rows: Range<Int>, _ panel: UnsafeMutablePointer<Float>, _ k: Int
  ) {
    let rowBytes = k * W.byteCount
    withUnsafeTemporaryAllocation(of: __m512i.self, capacity: 32) { buffer in
      guard let first = buffer.baseAddress else { return }
      let second = first + 16
      for firstRow in stride(from: 0, to: panelWidth, by: 16) {
        let present = max(0, min(16, rows.count - firstRow))
        var column = 0
        while column + 32 <= k {
          for j in 0..<16 {
            guard j < present else {
              (first[j], second[j]) = (_mm512_setzero_si512(), _mm512_setzero_si512())
              continue
            }
            let base = weight.base + (rows.lowerBound + firstRow + j) * rowBytes
            // 16 rows are 16 streams, more than the hardware prefetcher follows.
            bitbudget_prefetch(base + (column + 128) * W.byteCount)
            let (low, high) = W.load32(base, column)
            (first[j], second[j]) = (unsafeBitCast(low, to: __m512i.self), unsafeBitCast(high, to: __m512i.self))
          }
          transpose16x16(first)
          transpose16x16(second)
          for l in 0..<16 {
            // Pair order: the vectors hold the even and the odd columns; else the two halves.
            let (a, b) = W.usesPairOrder ? (column + 2 * l, column + 2 * l + 1) : (column + l, column + 16 + l)
            UnsafeMutableRawPointer(panel + a * panelWidth + firstRow).storeBytes(of: first[l], as: __m512i.self)
            UnsafeMutableRawPointer(panel + b * panelWidth + firstRow).storeBytes(of: second[l], as: __m512i.self)
          }
          column += 32
        }
      }
    }
  }
  #endif

  /// `y[t, 0..<count] = Σ_c x[t, c] · panel[c, 0..<count]` for 8 token rows. With AVX-512 one
  /// pass holds the 8 × 32 tile in 16 of the 32 vector registers; elsewhere (16 registers of
  /// half the width: AVX2, NEON) that tile spilled to the stack on every FMA, so the tile is
  /// four passes of 4 tokens × 16 rows (8 registers of accumulators). Each output takes the same
  /// FMAs in the same order either way.
  @inline(__always)
  static func tile8x32(
    _ panel: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ ldx: Int, _ k: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ count: Int
  ) {
    #if !canImport(CAVX512VNNI)
    for half in 0..<(count > 16 ? 2 : 1) {
      let rows = min(16, count - 16 * half)
      for group in 0..<2 {
        let x0 = x + 4 * group * ldx, x1 = x0 + ldx, x2 = x1 + ldx, x3 = x2 + ldx
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        let p = UnsafeRawPointer(panel + 16 * half)
        for c in 0..<k {
          let w = p.load(fromByteOffset: c &* panelWidth &* 4, as: SIMD16<Float>.self)
          a0.addProduct(w, SIMD16(repeating: x0[c]))
          a1.addProduct(w, SIMD16(repeating: x1[c]))
          a2.addProduct(w, SIMD16(repeating: x2[c]))
          a3.addProduct(w, SIMD16(repeating: x3[c]))
        }
        @inline(__always) func store(_ t: Int, _ v: SIMD16<Float>) {
          let out = y + (4 * group + t) * ldy + 16 * half
          if rows == 16 {
            UnsafeMutableRawPointer(out).storeBytes(of: v, as: SIMD16<Float>.self)
          } else {
            for r in 0..<rows { out[r] = v[r] }
          }
        }
        store(0, a0)
        store(1, a1)
        store(2, a2)
        store(3, a3)
      }
    }
    #else
    var a = Accumulators16()
    let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
    let x4 = x + 4 * ldx, x5 = x + 5 * ldx, x6 = x + 6 * ldx, x7 = x + 7 * ldx
    for c in 0..<k {
      let p = UnsafeRawPointer(panel + c * panelWidth)
      let w0 = p.load(as: SIMD16<Float>.self)
      let w1 = p.load(fromByteOffset: 64, as: SIMD16<Float>.self)
      var b = SIMD16<Float>(repeating: x[c])
      a.v.0.addProduct(w0, b); a.v.1.addProduct(w1, b)
      b = SIMD16<Float>(repeating: x1[c])
      a.v.2.addProduct(w0, b); a.v.3.addProduct(w1, b)
      b = SIMD16<Float>(repeating: x2[c])
      a.v.4.addProduct(w0, b); a.v.5.addProduct(w1, b)
      b = SIMD16<Float>(repeating: x3[c])
      a.v.6.addProduct(w0, b); a.v.7.addProduct(w1, b)
      b = SIMD16<Float>(repeating: x4[c])
      a.v.8.addProduct(w0, b); a.v.9.addProduct(w1, b)
      b = SIMD16<Float>(repeating: x5[c])
      a.v.10.addProduct(w0, b); a.v.11.addProduct(w1, b)
      b = SIMD16<Float>(repeating: x6[c])
      a.v.12.addProduct(w0, b); a.v.13.addProduct(w1, b)
      b = SIMD16<Float>(repeating: x7[c])
      a.v.14.addProduct(w0, b); a.v.15.addProduct(w1, b)
    }
    a.storeTile(y, ldy, count: count)
    #endif
  }
}
