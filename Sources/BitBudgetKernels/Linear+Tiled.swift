extension Linear {
  /// Output rows per packed panel of the tiled kernel.
  static let panelWidth = 32
  /// Token rows per register tile of the tiled kernel.
  static let tileTokens = 8

  /// Prefill GEMM without a BLAS library: tasks are blocks of 32 weight rows; each task widens its
  /// block once into a k-major f32 panel (`[columns][32]`, in L2) and multiplies it with the
  /// tokens 8 at a time, keeping an 8 × 32 tile of outputs in 16 registers: per column, two panel
  /// loads and eight broadcasts feed 16 FMAs. Each weight byte is read once per call. Token rows
  /// past the last multiple of 8 go through the streaming kernel.
  static func runTiled(
    _ jobs: [LinearJob], input: UnsafePointer<Float>, inputStride: Int, tokens: Int,
    pool: ThreadPool, scratch: LinearScratch
  ) {
    let tiled = tokens / tileTokens * tileTokens
    if tiled > 0 {
      var totalTasks = 0
      for job in jobs { totalTasks += (job.weight.rows + panelWidth - 1) / panelWidth }
      pool.parallelFor(totalTasks) { task, thread in
        var local = task
        for job in jobs {
          let blocks = (job.weight.rows + panelWidth - 1) / panelWidth
          if local < blocks {
            let panel = scratch.panel(thread: thread)
            let first = local * panelWidth
            let count = min(panelWidth, job.weight.rows - first)
            switch job.weight {
            case .dense(let weight): pack(weight, rows: first..<(first + count), into: panel)
            case .quantized(let weight): pack(weight, rows: first..<(first + count), into: panel)
            }
            let k = job.weight.columns
            var t = 0
            while t < tiled {
              tile8x32(panel, input + t * inputStride, inputStride, k, job.output + t * job.outputStride + first, job.outputStride, count)
              t += tileTokens
            }
            if let bias = job.bias {
              for t in 0..<tiled {
                let y = job.output + t * job.outputStride + first
                for r in 0..<count { y[r] += bias[first + r] }
              }
            }
            return
          }
          local -= blocks
        }
      }
    }
    if tiled < tokens {
      runStreaming(
        jobs.map { LinearJob(weight: $0.weight, bias: $0.bias, output: $0.output + tiled * $0.outputStride, outputStride: $0.outputStride) },
        input: input + tiled * inputStride, inputStride: inputStride, tokens: tokens - tiled, pool: pool, scratch: scratch,
        // The whole prefill multiplies f32 activations, its last few tokens too.
        activations: .f32)
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
    for (j, row) in rows.enumerated() {
      let base = weight.base + row * k * weight.elementType.byteCount
      for c in 0..<k { panel[c * panelWidth + j] = W.load1(base, c) }
    }
    if rows.count < panelWidth {
      for c in 0..<k {
        for j in rows.count..<panelWidth { panel[c * panelWidth + j] = 0 }
      }
    }
  }

  /// `y[t, 0..<count] = Σ_c x[t, c] · panel[c, 0..<count]` for 8 token rows.
  @inline(__always)
  static func tile8x32(
    _ panel: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ ldx: Int, _ k: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ count: Int
  ) {
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
    withUnsafeBytes(of: &a.v) { raw in
      let acc = raw.bindMemory(to: SIMD16<Float>.self)
      for t in 0..<8 {
        let row = y + t * ldy
        if count == panelWidth {
          UnsafeMutableRawPointer(row).storeBytes(of: acc[2 * t], as: SIMD16<Float>.self)
          UnsafeMutableRawPointer(row).storeBytes(of: acc[2 * t + 1], toByteOffset: 64, as: SIMD16<Float>.self)
        } else {
          for j in 0..<count { row[j] = acc[2 * t + j / 16][j % 16] }
        }
      }
    }
  }
}
