#if canImport(CAVX512VNNI)
internal import _Builtin_intrinsics.intel
#endif
import CPrefetch

/// A prompt's input rows quantized to int8 for the tiled int8 kernel, once per run and layout:
/// - `codes`: each row in the matrix's stored column order, int8 codes of blocks of 32 values
///   (the same codes and scales as `Int8Input`, so prefill and decode round alike);
/// - `scales`: per row, each block's scale;
/// - `sums`: per row and 16 columns, `scale · Σ code` (for zero points and minima:
///   `Σ (s·q + o) x = s Σ q·x + o Σ x`).
struct Int8Prompt {
  let codes: UnsafeMutablePointer<Int8>
  let scales: UnsafeMutablePointer<Float>
  let sums: UnsafeMutablePointer<Float>
  /// Input width; bytes from one row's codes to the next.
  let columns: Int

  /// Bytes of one prepared row of `columns` inputs (a multiple of 64).
  static func rowBytes(_ columns: Int) -> Int { columns + columns / Int8Input.block * 4 + columns / 16 * 4 }

  /// Lays out `rows` rows of `columns` inputs at `base` (`rows · rowBytes(columns)` bytes).
  init(base: UnsafeMutableRawPointer, rows: Int, columns: Int) {
    self.columns = columns
    codes = base.assumingMemoryBound(to: Int8.self)
    scales = (base + rows * columns).assumingMemoryBound(to: Float.self)
    sums = scales + rows * columns / Int8Input.block
  }
}

#if canImport(CAVX512VNNI)
extension Int8Prompt {
  /// Fills rows `rows` from `natural` (`[rows, stride]`). Cost: one pass over those inputs.
  func prepare(for m: QuantizedMatrix, natural: UnsafePointer<Float>, stride: Int, rows: Range<Int>) {
    let ones = unsafeBitCast(SIMD64<UInt8>(repeating: 1), to: __m512i.self)
    for t in rows {
      let rowScales = scales + t * columns / Int8Input.block, rowSums = sums + t * columns / 16
      for column in Swift.stride(from: 0, to: columns, by: QuantizedMatrix.chunk) {
        let destination = UnsafeMutableRawPointer(codes + t * columns + column)
        let (first, second) = Int8Input.quantizeChunk(m, natural + t * stride, column: column, into: destination)
        rowScales[column / 32] = first
        rowScales[column / 32 + 1] = second
        // Lane `l` sums columns `4l ..< 4l + 4`: four lanes per 16 columns.
        let lanes = unsafeBitCast(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(destination)), to: SIMD16<Int32>.self)
        for quarter in 0..<4 {
          let sum = lanes[4 * quarter] + lanes[4 * quarter + 1] + lanes[4 * quarter + 2] + lanes[4 * quarter + 3]
          rowSums[column / 16 + quarter] = Float(sum) * (quarter < 2 ? first : second)
        }
      }
    }
  }
}

/// The tiled int8 kernel (prefill with `LinearActivations.rounded`): tasks are blocks of 32
/// weight rows; each task unpacks its block once into a panel with the rows in the lanes —
/// per 4 columns, 32 rows × 4 code bytes — plus each row's scale and offset per sub-block (32
/// columns, 16 for groups of 16), and multiplies it with the tokens 4 at a time: per 4 columns,
/// two panel loads and four broadcasts of 4 input codes feed eight `vpdpbusd` (256 products,
/// exact in int32); per sub-block each (token, 16 rows) takes `float(acc) · scale · input
/// scale + offset · input sum`. A sub-block of 32 × 4 × 32 costs 64 `vpdpbusd` and 32 float
/// operations where the f32 tile needs 256 FMAs.
extension Linear {
  /// Token rows per register tile of the int8 tiled kernel.
  static let int8TileTokens = 4

  /// Columns per sub-block of `m` in the int8 panel: the span of one weight scale and one
  /// input scale.
  @inline(__always)
  static func int8SubBlock(_ m: QuantizedMatrix) -> Int { m.groupSize < Int8Input.block ? m.groupSize : Int8Input.block }

  /// Unpacks rows `rows` of `m` (at most 32) into `panel`: codes at `[(c / 4) · 128 + j · 4 +
  /// c % 4]` for row `j` of the block and column `c`, then per sub-block `s` the scales at
  /// `[s · 32 + j]` and the offsets (`o` in `W = scale · code + o`) after them: at most 48
  /// bytes per column, so it fits the f32 panel's buffer (128 per column). Missing rows are zero.
  static func packInt8(_ m: QuantizedMatrix, rows: Range<Int>, into panel: UnsafeMutableRawPointer) {
    switch m.bits {
    case 4: packInt8(FourBitCodes.self, m, rows, panel)
    case 5: packInt8(FiveBitCodes.self, m, rows, panel)
    case 6: packInt8(SixBitCodes.self, m, rows, panel)
    default: packInt8(EightBitCodes.self, m, rows, panel)
    }
  }

  @inline(__always)
  static func packInt8<C: QuantizedCodes>(_: C.Type, _ m: QuantizedMatrix, _ rows: Range<Int>, _ panel: UnsafeMutableRawPointer) {
    let k = m.columns, sub = int8SubBlock(m), chunkBytes = QuantizedMatrix.chunk * C.bits / 8
    // Codes: per 16 rows and chunk, the rows' 16 words (4 columns each) transposed in registers
    // into 16 vectors of one word per row.
    for firstRow in stride(from: 0, to: panelWidth, by: 16) {
      let present = max(0, min(16, rows.count - firstRow))
      for chunk in 0..<(k / QuantizedMatrix.chunk) {
        var words = (
          _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
          _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
          _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
          _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512())
        withUnsafeMutableBytes(of: &words) { raw in
          let w = raw.baseAddress!.assumingMemoryBound(to: __m512i.self)
          for j in 0..<present {
            let codes = m.codes + (rows.lowerBound + firstRow + j) * m.rowBytes + chunk * chunkBytes
            // 16 rows are 16 streams, more than the hardware prefetcher follows.
            bitbudget_prefetch(codes + 4 * chunkBytes)
            w[j] = int8Codes(C.self, codes)
          }
          transpose16x16(w)
          let base = panel + (chunk * 16 * panelWidth + firstRow) * 4
          for l in 0..<16 { (base + l * panelWidth * 4).storeBytes(of: w[l], as: __m512i.self) }
        }
      }
    }
    let scales = (panel + k * panelWidth).assumingMemoryBound(to: Float.self)
    let offsets = scales + k / sub * panelWidth
    for j in 0..<panelWidth {
      guard j < rows.count else {
        for s in 0..<(k / sub) { (scales[s * panelWidth + j], offsets[s * panelWidth + j]) = (0, 0) }
        continue
      }
      let row = rows.lowerBound + j
      for s in 0..<(k / sub) {
        let (scale, second) = m.parameters(row: row, group: s * sub / m.groupSize)
        scales[s * panelWidth + j] = scale
        offsets[s * panelWidth + j] = m.form.addsMinimum ? second : -scale * second
      }
    }
  }

  /// Transposes the 16 × 16 32-bit words at `w` in place: word `l` of vector `j` goes to word
  /// `j` of vector `l`. Two rounds of unpacks (within 128-bit lanes), two of lane permutes.
  @inline(__always)
  static func transpose16x16(_ w: UnsafeMutablePointer<__m512i>) {
    // After the unpacks, vector 4g + m holds, in 128-bit lane q, word 4q + m of rows 4g ..< 4g + 4.
    for g in 0..<4 {
      let r = w + 4 * g
      let t0 = _mm512_unpacklo_epi32(r[0], r[1]), t1 = _mm512_unpackhi_epi32(r[0], r[1])
      let t2 = _mm512_unpacklo_epi32(r[2], r[3]), t3 = _mm512_unpackhi_epi32(r[2], r[3])
      r[0] = _mm512_unpacklo_epi64(t0, t2)
      r[1] = _mm512_unpackhi_epi64(t0, t2)
      r[2] = _mm512_unpacklo_epi64(t1, t3)
      r[3] = _mm512_unpackhi_epi64(t1, t3)
    }
    // Dword indices of `_mm512_permutex2var_epi32` (16 ..< 32 pick from the second vector):
    // 128-bit lanes (a0, a1, b0, b1), (a2, a3, b2, b3), (a0, a2, b0, b2), (a1, a3, b1, b3).
    let lowHalves = unsafeBitCast(SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), to: __m512i.self)
    let highHalves = unsafeBitCast(SIMD16<UInt32>(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31), to: __m512i.self)
    let evenLanes = unsafeBitCast(SIMD16<UInt32>(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27), to: __m512i.self)
    let oddLanes = unsafeBitCast(SIMD16<UInt32>(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31), to: __m512i.self)
    // Each round of four reads vectors m, 4 + m, 8 + m, 12 + m and writes the same four.
    for m in 0..<4 {
      let (a, b, c, d) = (w[m], w[4 + m], w[8 + m], w[12 + m])
      let ab0 = _mm512_permutex2var_epi32(a, lowHalves, b), ab1 = _mm512_permutex2var_epi32(a, highHalves, b)
      let cd0 = _mm512_permutex2var_epi32(c, lowHalves, d), cd1 = _mm512_permutex2var_epi32(c, highHalves, d)
      w[m] = _mm512_permutex2var_epi32(ab0, evenLanes, cd0)
      w[4 + m] = _mm512_permutex2var_epi32(ab0, oddLanes, cd0)
      w[8 + m] = _mm512_permutex2var_epi32(ab1, evenLanes, cd1)
      w[12 + m] = _mm512_permutex2var_epi32(ab1, oddLanes, cd1)
    }
  }

  /// `y[t, 0..<count] = Σ_c x[t, c] · W[c, 0..<count]` for 4 token rows `first ..< first + 4`
  /// of `x`, from a panel made by `packInt8`.
  @inline(__always)
  static func int8Tile4x32(
    _ panel: UnsafeRawPointer, columns k: Int, subBlock sub: Int, _ x: Int8Prompt, _ first: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ count: Int
  ) {
    let scales = (panel + k * panelWidth).assumingMemoryBound(to: Float.self)
    let offsets = scales + k / sub * panelWidth
    let x0 = UnsafeRawPointer(x.codes + first * k), x1 = x0 + k, x2 = x1 + k, x3 = x2 + k
    let blocks = k / Int8Input.block, quarters = k / 16
    let xs0 = x.scales + first * blocks, xs1 = xs0 + blocks, xs2 = xs1 + blocks, xs3 = xs2 + blocks
    let xq0 = x.sums + first * quarters, xq1 = xq0 + quarters, xq2 = xq1 + quarters, xq3 = xq2 + quarters
    var f0 = SIMD16<Float>(), g0 = SIMD16<Float>(), f1 = SIMD16<Float>(), g1 = SIMD16<Float>()
    var f2 = SIMD16<Float>(), g2 = SIMD16<Float>(), f3 = SIMD16<Float>(), g3 = SIMD16<Float>()
    let quadsPerSub = sub / 4, quartersPerSub = sub / 16
    for s in 0..<(k / sub) {
      var i0 = _mm512_setzero_si512(), j0 = i0, i1 = i0, j1 = i0, i2 = i0, j2 = i0, i3 = i0, j3 = i0
      var quad = s * quadsPerSub
      let end = quad + quadsPerSub
      while quad < end {
        let w = panel + quad * panelWidth * 4
        let w0 = _mm512_load_si512(w), w1 = _mm512_load_si512(w + 64)
        var b = _mm512_set1_epi32(x0.loadUnaligned(fromByteOffset: 4 * quad, as: Int32.self))
        i0 = _mm512_dpbusd_epi32(i0, w0, b); j0 = _mm512_dpbusd_epi32(j0, w1, b)
        b = _mm512_set1_epi32(x1.loadUnaligned(fromByteOffset: 4 * quad, as: Int32.self))
        i1 = _mm512_dpbusd_epi32(i1, w0, b); j1 = _mm512_dpbusd_epi32(j1, w1, b)
        b = _mm512_set1_epi32(x2.loadUnaligned(fromByteOffset: 4 * quad, as: Int32.self))
        i2 = _mm512_dpbusd_epi32(i2, w0, b); j2 = _mm512_dpbusd_epi32(j2, w1, b)
        b = _mm512_set1_epi32(x3.loadUnaligned(fromByteOffset: 4 * quad, as: Int32.self))
        i3 = _mm512_dpbusd_epi32(i3, w0, b); j3 = _mm512_dpbusd_epi32(j3, w1, b)
        quad += 1
      }
      let p = UnsafeRawPointer(scales + s * panelWidth), o = UnsafeRawPointer(offsets + s * panelWidth)
      let s0 = p.load(as: SIMD16<Float>.self), s1 = p.load(fromByteOffset: 64, as: SIMD16<Float>.self)
      let o0 = o.load(as: SIMD16<Float>.self), o1 = o.load(fromByteOffset: 64, as: SIMD16<Float>.self)
      let block = s * sub / Int8Input.block, quarter = s * quartersPerSub
      @inline(__always) func sum(_ q: UnsafeMutablePointer<Float>) -> Float {
        quartersPerSub == 1 ? q[quarter] : q[quarter] + q[quarter + 1]
      }
      @inline(__always) func close(_ f: inout SIMD16<Float>, _ acc: __m512i, _ scale: SIMD16<Float>, _ offset: SIMD16<Float>, _ a: Float, _ q: Float) {
        f.addProduct(_mm512_cvtepi32_ps(acc), scale * a)
        f.addProduct(offset, SIMD16(repeating: q))
      }
      var (a, q) = (xs0[block], sum(xq0))
      close(&f0, i0, s0, o0, a, q); close(&g0, j0, s1, o1, a, q)
      (a, q) = (xs1[block], sum(xq1))
      close(&f1, i1, s0, o0, a, q); close(&g1, j1, s1, o1, a, q)
      (a, q) = (xs2[block], sum(xq2))
      close(&f2, i2, s0, o0, a, q); close(&g2, j2, s1, o1, a, q)
      (a, q) = (xs3[block], sum(xq3))
      close(&f3, i3, s0, o0, a, q); close(&g3, j3, s1, o1, a, q)
    }
    @inline(__always) func store(_ t: Int, _ f: SIMD16<Float>, _ g: SIMD16<Float>) {
      let row = y + t * ldy
      if count == panelWidth {
        UnsafeMutableRawPointer(row).storeBytes(of: f, as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(row).storeBytes(of: g, toByteOffset: 64, as: SIMD16<Float>.self)
      } else {
        for r in 0..<count { row[r] = r < 16 ? f[r] : g[r - 16] }
      }
    }
    store(0, f0, g0)
    store(1, f1, g1)
    store(2, f2, g2)
    store(3, f3, g3)
  }
}
#endif
