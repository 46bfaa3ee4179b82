// The bf16 tile reuses the AVX-512 helpers of the int8 kernels (`transpose16x16`), so it needs
// both gates; every CPU with AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4) has VNNI too.
#if canImport(CAVX512BF16) && canImport(CAVX512VNNI)
internal import _Builtin_intrinsics.intel
internal import CBF16
import CPrefetch

/// Input rows rounded to bf16 for the bf16 tile (`LinearActivations.rounded` with bf16
/// weights): row `t` holds `pairs` 32-bit words at `words + t · stride`, word `p` being the
/// inputs `2p` (low half) and `2p + 1` (high half), as `vdpbf16ps` multiplies them. Rows past
/// the run's last token, up to a multiple of `Linear.tileTokens`, are zero.
struct BF16Prompt {
  let words: UnsafeMutablePointer<UInt32>
  let stride: Int

  /// Rounds rows `rows` of `natural` (`columns` floats each, `stride` apart) into this prompt,
  /// to nearest with ties to even (`floatToBF16`; the instruction also flushes subnormals to 0).
  func prepare(natural: UnsafePointer<Float>, stride ldx: Int, columns: Int, rows: Range<Int>) {
    let vectorized = columns / 32 * 32
    for t in rows {
      let x = natural + t * ldx, out = words + t * stride
      var c = 0
      while c < vectorized {
        let low = UnsafeRawPointer(x + c).loadUnaligned(as: SIMD16<Float>.self)
        let high = UnsafeRawPointer(x + c + 16).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(out + c / 2).storeBytes(of: bitbudget_bf16_round(low, high), as: __m512i.self)
        c += 32
      }
      while c < columns {
        let second = c + 1 < columns ? UInt32(floatToBF16(x[c + 1])) : 0
        out[c / 2] = UInt32(floatToBF16(x[c])) | second << 16
        c += 2
      }
    }
  }

  /// Zeroes rows `rows` (the padding of the last tile).
  func clear(rows: Range<Int>) {
    for t in rows { (words + t * stride).initialize(repeating: 0, count: stride) }
  }
}

extension Linear {
  /// The tiled kernel for calls whose every weight is bf16, with activations rounded to bf16:
  /// each 32-row panel is packed as bf16 pairs (a 32-bit transpose of the rows, no widening)
  /// and `vdpbf16ps` adds two products per lane, twice the multiply-adds of an f32 FMA. The
  /// input is rounded once per call (`LinearScratch.prepareBF16Prompt`); every token row,
  /// the last partial tile's too, goes through the tile, so a prefill rounds all its rows alike.
  static func runBF16Tiled(
    _ jobs: [LinearJob], input: UnsafePointer<Float>, inputStride: Int, tokens: Int, pool: ThreadPool, scratch: LinearScratch
  ) {
    if tokens > scratch.promptRows {
      for first in stride(from: 0, to: tokens, by: scratch.promptRows) {
        runBF16Tiled(
          jobs.map { $0.advanced(byTokens: first) }, input: input + first * inputStride, inputStride: inputStride,
          tokens: min(scratch.promptRows, tokens - first), pool: pool, scratch: scratch)
      }
      return
    }
    let k = jobs[0].weight.columns
    let prompt = scratch.prepareBF16Prompt(natural: input, stride: inputStride, columns: k, rows: tokens, pool: pool)
    let pairs = (k + 1) / 2
    var totalTasks = 0
    for job in jobs { totalTasks += (job.weight.rows + panelWidth - 1) / panelWidth }
    pool.parallelFor(totalTasks) { task, thread in
      var local = task
      for job in jobs {
        let blocks = (job.weight.rows + panelWidth - 1) / panelWidth
        guard local < blocks else {
          local -= blocks
          continue
        }
        guard case .dense(let weight) = job.weight else { preconditionFailure("the bf16 tile takes bf16 weights only") }
        let panel = UnsafeMutableRawPointer(scratch.panel(thread: thread)).assumingMemoryBound(to: UInt32.self)
        let first = local * panelWidth
        let count = min(panelWidth, job.weight.rows - first)
        packBF16(weight, rows: first..<(first + count), into: panel)
        for t in stride(from: 0, to: tokens, by: tileTokens) {
          bf16Tile8x32(
            panel, prompt.words + t * prompt.stride, prompt.stride, pairs, job.output + t * job.outputStride + first,
            job.outputStride, count, tokens: min(tileTokens, tokens - t))
        }
        addBias(job, rows: first..<(first + count), tokens: tokens)
        return
      }
    }
  }

  /// Packs rows `rows` (at most 32) of a bf16 `weight` into `panel[p · 32 + r]`: word `p` of
  /// row `r` (its columns `2p`, `2p + 1`), 16 rows × 16 words at a time through a register
  /// transpose; missing rows are zero.
  @inline(__always)
  static func packBF16(_ weight: DenseMatrix, rows: Range<Int>, into panel: UnsafeMutablePointer<UInt32>) {
    let k = weight.columns, rowBytes = k * 2
    let vectorized = k / 32 * 32
    withUnsafeTemporaryAllocation(of: __m512i.self, capacity: 16) { buffer in
      guard let w = buffer.baseAddress else { return }
      for firstRow in stride(from: 0, to: panelWidth, by: 16) {
        let present = max(0, min(16, rows.count - firstRow))
        var column = 0
        while column < vectorized {
          for j in 0..<16 {
            guard j < present else {
              w[j] = _mm512_setzero_si512()
              continue
            }
            let base = weight.base + (rows.lowerBound + firstRow + j) * rowBytes + column * 2
            // 16 rows are 16 streams, more than the hardware prefetcher follows.
            bitbudget_prefetch(base + 256)
            w[j] = base.loadUnaligned(as: __m512i.self)
          }
          transpose16x16(w)
          for l in 0..<16 {
            UnsafeMutableRawPointer(panel + (column / 2 + l) * panelWidth + firstRow).storeBytes(of: w[l], as: __m512i.self)
          }
          column += 32
        }
      }
    }
    for p in (vectorized / 2)..<((k + 1) / 2) {
      for j in 0..<panelWidth {
        guard j < rows.count else {
          panel[p * panelWidth + j] = 0
          continue
        }
        let row = weight.base + (rows.lowerBound + j) * rowBytes
        let low = UInt32(row.loadUnaligned(fromByteOffset: 4 * p, as: UInt16.self))
        let high = 2 * p + 1 < k ? UInt32(row.loadUnaligned(fromByteOffset: 4 * p + 2, as: UInt16.self)) : 0
        panel[p * panelWidth + j] = low | high << 16
      }
    }
  }

  /// `y[t, 0..<count] = Σ_p x[t, p] · panel[p, 0..<count]` over bf16 pairs for `tokens` (at most
  /// 8) token rows; the prompt has 8 rows from `x`, zero past the last token.
  @inline(__always)
  static func bf16Tile8x32(
    _ panel: UnsafePointer<UInt32>, _ x: UnsafePointer<UInt32>, _ ldx: Int, _ pairs: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ count: Int, tokens: Int
  ) {
    var a = Accumulators16()
    let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
    let x4 = x + 4 * ldx, x5 = x + 5 * ldx, x6 = x + 6 * ldx, x7 = x + 7 * ldx
    @inline(__always) func word(_ row: UnsafePointer<UInt32>, _ p: Int) -> __m512i {
      _mm512_set1_epi32(Int32(bitPattern: row[p]))
    }
    for p in 0..<pairs {
      let q = UnsafeRawPointer(panel + p * panelWidth)
      let w0 = q.load(as: __m512i.self), w1 = q.load(fromByteOffset: 64, as: __m512i.self)
      var b = word(x, p)
      a.v.0 = bitbudget_dpbf16(a.v.0, w0, b); a.v.1 = bitbudget_dpbf16(a.v.1, w1, b)
      b = word(x1, p)
      a.v.2 = bitbudget_dpbf16(a.v.2, w0, b); a.v.3 = bitbudget_dpbf16(a.v.3, w1, b)
      b = word(x2, p)
      a.v.4 = bitbudget_dpbf16(a.v.4, w0, b); a.v.5 = bitbudget_dpbf16(a.v.5, w1, b)
      b = word(x3, p)
      a.v.6 = bitbudget_dpbf16(a.v.6, w0, b); a.v.7 = bitbudget_dpbf16(a.v.7, w1, b)
      b = word(x4, p)
      a.v.8 = bitbudget_dpbf16(a.v.8, w0, b); a.v.9 = bitbudget_dpbf16(a.v.9, w1, b)
      b = word(x5, p)
      a.v.10 = bitbudget_dpbf16(a.v.10, w0, b); a.v.11 = bitbudget_dpbf16(a.v.11, w1, b)
      b = word(x6, p)
      a.v.12 = bitbudget_dpbf16(a.v.12, w0, b); a.v.13 = bitbudget_dpbf16(a.v.13, w1, b)
      b = word(x7, p)
      a.v.14 = bitbudget_dpbf16(a.v.14, w0, b); a.v.15 = bitbudget_dpbf16(a.v.15, w1, b)
    }
    a.storeTile(y, ldy, count: count, tokens: tokens)
  }
}
#endif
