// `canImport(CAVX512VNNI)` is the gate; the module itself is never imported, so that clients of
// this module compiled for any CPU (which cannot load it) never have to.
#if canImport(CAVX512VNNI)
internal import _Builtin_intrinsics.intel
#endif
import CPrefetch

/// Input rows quantized for a quantized matrix's int8 kernels, once per run and layout:
/// - `codes`: each row in the matrix's input order, as int8 codes of blocks of 32 values;
/// - `scales`: per row and 64-column chunk, 16 lanes: the first block's scale in lanes 0–7, the
///   second's in lanes 8–15 (lane `l` of the dot-product instruction sums columns `4l ..< 4l+4`);
/// - `sums`: per row and span (`QuantizedMatrix.span`), 16 lanes of `scale · Σ code` over the
///   span, for the zero points: `Σ (w − z) x = Σ w·x − z Σ x`.
/// Builds with the AVX2 kernels fill it by `prepareRowBlocks` instead: per row, block `b`'s scale
/// at `scales[b]`, its `Σ code` as an `Int32` at `sums[b]` and those of its halves of 16 at
/// `sums[blocks + 2b]` and the next.
public struct Int8Input: @unchecked Sendable {
  let codes: UnsafeMutablePointer<Int8>
  /// Bytes from one row's codes to the next.
  let codeStride: Int
  let scales: UnsafeMutablePointer<Float>
  let sums: UnsafeMutablePointer<Float>
  /// Floats from one row's scales (and sums) to the next.
  let laneStride: Int

  /// Values per int8 block (one scale each).
  public static let block = 32

  /// Bytes of codes per row of `columns` inputs (whole 64-byte chunks).
  static func codeStride(_ columns: Int) -> Int { (columns + 63) / 64 * 64 }
  /// Floats of scales (and of sums) per row: 16 per chunk.
  static func laneStride(_ columns: Int) -> Int { (columns + 63) / 64 * 16 }
  /// Bytes of one prepared row: codes, scales and sums.
  static func rowBytes(_ columns: Int) -> Int { codeStride(columns) + 2 * laneStride(columns) * 4 }

  /// The scale and codes of one block of 32 values, exactly as the kernels compute them: the
  /// scalar definition (tests, `Linear.reference`).
  public static func quantize(block x: UnsafePointer<Float>) -> (scale: Float, codes: [Int8]) {
    var codes = [Int8](repeating: 0, count: block)
    let scale = codes.withUnsafeMutableBufferPointer { quantize(block: x, into: $0.baseAddress!).scale }
    return (scale, codes)
  }

  /// `quantize(block:)` into `codes`, also returning `Σ codes`; the AVX2 kernels' quantizer.
  @inline(__always)
  static func quantize(block x: UnsafePointer<Float>, into codes: UnsafeMutablePointer<Int8>) -> (scale: Float, sum: Int32) {
    var largest: Float = 0
    for i in 0..<block { largest = max(largest, abs(x[i])) }
    let scale = largest / 127
    let inverse: Float = scale > 0 ? 1 / scale : 0
    var sum: Int32 = 0
    for i in 0..<block {
      // Non-finite inputs (an overflowed activation) give code 0, as the AVX-512 conversion's
      // out-of-range result truncates to.
      let q = (x[i] * inverse).rounded(.toNearestOrEven)
      let code: Int8 = q.isFinite ? Int8(max(-127, min(127, q))) : 0
      codes[i] = code
      sum &+= Int32(code)
    }
    return (scale, sum)
  }

  /// Fills `rows` rows from `natural` (`[rows, stride]`) for the AVX2 row-block kernels: codes
  /// in stored column order, then per block of 32 its scale at `scales[block]` and `Σ code` as
  /// an `Int32` at `sums[block]` (of each row), and the sums of its two halves of 16 (Q6_K's
  /// groups) at `sums[blocks + 2 · block]` and the next. Cost: one pass over the inputs.
  func prepareRowBlocks(for m: QuantizedMatrix, natural: UnsafePointer<Float>, stride: Int, rows: Int) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.block) { stored in
      for t in 0..<rows {
        let source = natural + t * stride, rowCodes = codes + t * codeStride
        let rowScales = scales + t * laneStride
        let rowSums = UnsafeMutableRawPointer(sums + t * laneStride).assumingMemoryBound(to: Int32.self)
        let blocks = m.columns / Self.block
        for block in 0..<blocks {
          let first = block * Self.block
          let x: UnsafePointer<Float>
          if let order = m.inputOrder {
            for i in 0..<Self.block { stored[i] = source[Int(order[first + i])] }
            x = UnsafePointer(stored.baseAddress!)
          } else {
            x = source + first
          }
          (rowScales[block], rowSums[block]) = Self.quantize(block: x, into: rowCodes + first)
          var firstHalf: Int32 = 0
          for i in 0..<(Self.block / 2) { firstHalf &+= Int32(rowCodes[first + i]) }
          (rowSums[blocks + 2 * block], rowSums[blocks + 2 * block + 1]) = (firstHalf, rowSums[block] &- firstHalf)
        }
      }
    }
  }

  #if canImport(CAVX512VNNI)
  /// Fills `rows` rows from `natural` (`[rows, stride]`). Cost: one pass over the inputs.
  func prepare(for m: QuantizedMatrix, natural: UnsafePointer<Float>, stride: Int, rows: Int) {
    let ones = unsafeBitCast(SIMD64<UInt8>(repeating: 1), to: __m512i.self)
    for t in 0..<rows {
      let rowCodes = codes + t * codeStride, rowScales = scales + t * laneStride, rowSums = sums + t * laneStride
      var spanSum = SIMD16<Float>()
      var column = 0
      while column < m.columns {
        let destination = UnsafeMutableRawPointer(rowCodes + column)
        let (first, second) = Self.quantizeChunk(m, natural + t * stride, column: column, into: destination)
        let scale = SIMD16<Float>(lowHalf: SIMD8(repeating: first), highHalf: SIMD8(repeating: second))
        UnsafeMutableRawPointer(rowScales + column / 4).storeBytes(of: scale, as: SIMD16<Float>.self)
        let laneSums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(destination))
        spanSum.addProduct(_mm512_cvtepi32_ps(laneSums), scale)
        column += QuantizedMatrix.chunk
        if column % m.span == 0 || column == m.columns {
          UnsafeMutableRawPointer(rowSums + (column - 1) / m.span * 16).storeBytes(of: spanSum, as: SIMD16<Float>.self)
          spanSum = SIMD16<Float>()
        }
      }
    }
  }

  /// Quantizes the 64 inputs of stored columns `column ..< column + 64` of one row (`source`,
  /// in input order) as two blocks of 32, writing their codes to `destination`; returns the
  /// blocks' scales. The one definition of the kernels' rounding (`quantize(block:)` in scalar).
  @inline(__always)
  static func quantizeChunk(
    _ m: QuantizedMatrix, _ source: UnsafePointer<Float>, column: Int, into destination: UnsafeMutableRawPointer
  ) -> (first: Float, second: Float) {
    let magnitude = SIMD16<UInt32>(repeating: 0x7FFF_FFFF)
    var values = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
    if let order = m.inputOrder {
      withUnsafeMutableBytes(of: &values) { raw in
        let v = raw.bindMemory(to: Float.self)
        for i in 0..<QuantizedMatrix.chunk { v[i] = source[Int(order[column + i])] }
      }
    } else {
      let raw = UnsafeRawPointer(source + column)
      values = (
        raw.loadUnaligned(as: SIMD16<Float>.self), raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self),
        raw.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self), raw.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self)
      )
    }
    // `vmaxps` returns its second operand when either is NaN: NaNs count as 0, as the scalar
    // `max` skips them. (The generic SIMD max and select compile to scalar loops.)
    let zero = _mm512_setzero_ps()
    func absolute(_ v: SIMD16<Float>) -> __m512 {
      _mm512_max_ps(unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & magnitude, to: __m512.self), zero)
    }
    let first = _mm512_reduce_max_ps(_mm512_max_ps(absolute(values.0), absolute(values.1))) / 127
    let second = _mm512_reduce_max_ps(_mm512_max_ps(absolute(values.2), absolute(values.3))) / 127
    let lowInverse = SIMD16<Float>(repeating: first > 0 ? 1 / first : 0)
    let highInverse = SIMD16<Float>(repeating: second > 0 ? 1 / second : 0)
    // `cvtps` rounds to nearest even (the default MXCSR mode), as `quantize(block:)` does.
    let q = (
      _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(unsafeBitCast(values.0 * lowInverse, to: __m512.self))),
      _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(unsafeBitCast(values.1 * lowInverse, to: __m512.self))),
      _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(unsafeBitCast(values.2 * highInverse, to: __m512.self))),
      _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(unsafeBitCast(values.3 * highInverse, to: __m512.self)))
    )
    destination.storeBytes(of: q, as: (__m128i, __m128i, __m128i, __m128i).self)
    return (first, second)
  }
  #endif
}

#if canImport(CAVX512VNNI)
/// The int8 kernels: per span, one accumulator takes `scales · float(vpdpbusd(codes, x))` for
/// each chunk in order; then `scaled += scale · (acc − zero · sums)` (or `scaled += scale · acc`,
/// `offsets += minimum · sums`: `SpanReader.close`); the result is the tree sum of
/// `scaled + offsets`. Every kernel computes an output the same way, so batched decoding of G samples
/// gives each exactly its tokens alone. Per 64 weights and row: a load (and at 4 bits a shift,
/// two masks), one `vpdpbusd`, a conversion and an FMA.
extension Linear {
  static func streamInt8Rows(
    _ m: QuantizedMatrix, _ rows: Range<Int>, _ x: Int8Input,
    _ tokens: Int, _ output: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    switch m.bits {
    case 4: streamInt8Rows(FourBitCodes.self, m, rows, x, tokens, output, ldy)
    case 5: streamInt8Rows(FiveBitCodes.self, m, rows, x, tokens, output, ldy)
    case 6: streamInt8Rows(SixBitCodes.self, m, rows, x, tokens, output, ldy)
    default: streamInt8Rows(EightBitCodes.self, m, rows, x, tokens, output, ldy)
    }
  }

  @inline(__always)
  static func streamInt8Rows<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ rows: Range<Int>, _ x: Int8Input,
    _ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let pairs = m.groupSize < QuantizedMatrix.chunk
    switch m.form {
    case .scale(let zero):
      if pairs {
        streamInt8Rows(C.self, OneZeroPairs(zero: zero), m, rows, x, tokens, y, ldy)
      } else {
        streamInt8Rows(C.self, OneZeroGroups(zero: zero), m, rows, x, tokens, y, ldy)
      }
    case .scaleAndZero:
      if pairs {
        streamInt8Rows(C.self, ScaleAndZeroPairs(), m, rows, x, tokens, y, ldy)
      } else {
        streamInt8Rows(C.self, ScaleAndZeroGroups(), m, rows, x, tokens, y, ldy)
      }
    case .scaleAndMinimum:
      if pairs {
        streamInt8Rows(C.self, ScaleAndMinimumPairs(), m, rows, x, tokens, y, ldy)
      } else {
        streamInt8Rows(C.self, ScaleAndMinimumGroups(), m, rows, x, tokens, y, ldy)
      }
    case .superBlockScaleAndMinimum: streamInt8Rows(C.self, SuperBlockScaleAndMinimum(), m, rows, x, tokens, y, ldy)
    case .superBlockScale: streamInt8Rows(C.self, SuperBlockScale(), m, rows, x, tokens, y, ldy)
    }
  }

  /// One token: one row at a time, a single sequential stream per thread (reads DRAM fastest:
  /// four interleaved rows ran at half the rate). More tokens: four rows at a time, each token
  /// in turn, so the four rows' codes stay in L1 across tokens.
  @inline(__always)
  static func streamInt8Rows<C: QuantizedCodes, P: SpanReader>(
    _: C.Type, _ reader: P, _ m: QuantizedMatrix, _ rows: Range<Int>, _ x: Int8Input,
    _ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    var r = rows.lowerBound
    if tokens == 1 {
      while r < rows.upperBound {
        y[r] = int8Dot1(C.self, reader, m, r, x.codes, x.scales, x.sums)
        r += 1
      }
      return
    }
    while r + 4 <= rows.upperBound {
      for t in 0..<tokens {
        int8Rows4(
          C.self, reader, m, r, x.codes + t * x.codeStride, x.scales + t * x.laneStride, x.sums + t * x.laneStride,
          y + t * ldy + r)
      }
      r += 4
    }
    while r < rows.upperBound {
      for t in 0..<tokens {
        y[t * ldy + r] = int8Dot1(
          C.self, reader, m, r, x.codes + t * x.codeStride, x.scales + t * x.laneStride, x.sums + t * x.laneStride)
      }
      r += 1
    }
  }

  /// A chunk of codes as 64 unsigned bytes in column order.
  @inline(__always)
  static func int8Codes<C: QuantizedCodes>(_: C.Type, _ p: UnsafeRawPointer) -> __m512i {
    if C.bits == 8 { return _mm512_loadu_si512(p) }
    // The nibbles: the 32 bytes in both halves (a broadcast load), the upper half shifted down
    // by 4, masked — three instructions; the generic vector code took a shift, an insert and two
    // masks.
    let words = p.loadUnaligned(as: SIMD8<UInt32>.self)
    var codes = _mm512_and_si512(
      _mm512_srlv_epi64(_mm512_broadcast_i64x4(unsafeBitCast(words, to: __m256i.self)), unsafeBitCast(SIMD8<UInt64>(0, 0, 0, 0, 4, 4, 4, 4), to: __m512i.self)),
      _mm512_set1_epi8(0x0F))
    if C.bits == 4 { return codes }
    // 5 and 6 bits (`BitPlaneCodes`), written with the intrinsics: the generic vector code
    // compiles to a chain of permutes. Each plane: its half `h` in words 8h ..< 8h + 8, word
    // `l = 8h + j` rotated so that bit `8k + j` lands on bit `8k + 4` (`8k + 5`), then masked in.
    let halves = unsafeBitCast(SIMD16<UInt32>(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), to: __m512i.self)
    for plane in 0..<(C.bits - 4) {
      let spread = _mm512_permutexvar_epi32(halves, _mm512_set1_epi64(p.loadUnaligned(fromByteOffset: 32 + 8 * plane, as: Int64.self)))
      let j = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7)
      let rotation = (SIMD16<UInt32>(repeating: UInt32(4 + plane)) &- j) & 31
      let bit = _mm512_set1_epi8(Int8(16 << plane))
      codes = _mm512_or_si512(codes, _mm512_and_si512(_mm512_rolv_epi32(spread, unsafeBitCast(rotation, to: __m512i.self)), bit))
    }
    return codes
  }

  /// `acc += float(Σ₄ codes · x) · scales`.
  @inline(__always)
  static func int8Accumulate(_ acc: inout SIMD16<Float>, _ codes: __m512i, _ x: __m512i, _ scales: SIMD16<Float>) {
    let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, x)
    acc.addProduct(_mm512_cvtepi32_ps(dot), scales)
  }

  @inline(__always)
  static func laneLoad(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
    UnsafeRawPointer(p + 16 * i).loadUnaligned(as: SIMD16<Float>.self)
  }

  /// Adds chunk `column` of one row to `acc`.
  @inline(__always)
  static func int8Chunk<C: QuantizedCodes>(
    _: C.Type, _ acc: inout SIMD16<Float>, _ codes: UnsafeRawPointer, _ x: UnsafePointer<Int8>,
    _ scales: UnsafePointer<Float>, _ column: Int
  ) {
    int8Accumulate(
      &acc, int8Codes(C.self, codes + column &* C.bits / 8), _mm512_loadu_si512(x + column),
      laneLoad(scales, column / QuantizedMatrix.chunk))
  }

  /// Prefetch distance of a lone row's stream, in bytes: about 1 µs of reading ahead.
  static let int8PrefetchDistance = 4096

  /// One row times one prepared token row.
  @inline(__always)
  static func int8Dot1<C: QuantizedCodes, P: SpanReader>(
    _: C.Type, _ reader: P, _ m: QuantizedMatrix, _ r: Int, _ x: UnsafePointer<Int8>, _ scales: UnsafePointer<Float>,
    _ sums: UnsafePointer<Float>
  ) -> Float {
    let codes = UnsafeRawPointer(m.codes + r &* m.rowBytes)
    let params = UnsafeRawPointer(m.groupParameters + r &* m.parameterRowBytes)
    var scaled = SIMD16<Float>(), offsets = SIMD16<Float>()
    var column = 0
    for g in 0..<m.spans {
      var acc = SIMD16<Float>()
      if P.spanIsChunk {
        bitbudget_prefetch(codes + (column &* C.bits / 8 &+ int8PrefetchDistance))
        int8Chunk(C.self, &acc, codes, x, scales, column)
        column &+= QuantizedMatrix.chunk
      } else {
        let end = min(column &+ m.span, m.columns)
        while column < end {
          bitbudget_prefetch(codes + (column &* C.bits / 8 &+ int8PrefetchDistance))
          int8Chunk(C.self, &acc, codes, x, scales, column)
          column &+= QuantizedMatrix.chunk
        }
      }
      reader.close(params, g, acc, laneLoad(sums, g), &scaled, &offsets)
    }
    return horizontalSum(scaled + offsets)
  }

  /// Four rows times one prepared token row: four independent chains sharing the input loads.
  @inline(__always)
  static func int8Rows4<C: QuantizedCodes, P: SpanReader>(
    _: C.Type, _ reader: P, _ m: QuantizedMatrix, _ r: Int, _ x: UnsafePointer<Int8>, _ scales: UnsafePointer<Float>,
    _ sums: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>
  ) {
    let c0 = UnsafeRawPointer(m.codes + r &* m.rowBytes), c1 = c0 + m.rowBytes, c2 = c1 + m.rowBytes, c3 = c2 + m.rowBytes
    let p0 = UnsafeRawPointer(m.groupParameters + r &* m.parameterRowBytes)
    let p1 = p0 + m.parameterRowBytes, p2 = p1 + m.parameterRowBytes, p3 = p2 + m.parameterRowBytes
    let distance = 4 &* m.rowBytes
    var t0 = SIMD16<Float>(), t1 = SIMD16<Float>(), t2 = SIMD16<Float>(), t3 = SIMD16<Float>()
    var o0 = SIMD16<Float>(), o1 = SIMD16<Float>(), o2 = SIMD16<Float>(), o3 = SIMD16<Float>()
    var column = 0
    for g in 0..<m.spans {
      var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
      let end = P.spanIsChunk ? column &+ QuantizedMatrix.chunk : min(column &+ m.span, m.columns)
      while column < end {
        // The same place in the next four rows: rows are short (512 bytes at 4 bits and 1024
        // columns), so a distance within the row would fetch what this block already reads.
        let ahead = column &* C.bits / 8 &+ distance
        bitbudget_prefetch(c0 + ahead)
        bitbudget_prefetch(c1 + ahead)
        bitbudget_prefetch(c2 + ahead)
        bitbudget_prefetch(c3 + ahead)
        let xv = _mm512_loadu_si512(x + column)
        let d = laneLoad(scales, column / QuantizedMatrix.chunk)
        let offset = column &* C.bits / 8
        int8Accumulate(&a0, int8Codes(C.self, c0 + offset), xv, d)
        int8Accumulate(&a1, int8Codes(C.self, c1 + offset), xv, d)
        int8Accumulate(&a2, int8Codes(C.self, c2 + offset), xv, d)
        int8Accumulate(&a3, int8Codes(C.self, c3 + offset), xv, d)
        column &+= QuantizedMatrix.chunk
      }
      let sg = laneLoad(sums, g)
      reader.close(p0, g, a0, sg, &t0, &o0)
      reader.close(p1, g, a1, sg, &t1, &o1)
      reader.close(p2, g, a2, sg, &t2, &o2)
      reader.close(p3, g, a3, sg, &t3, &o3)
    }
    y[0] = horizontalSum(t0 + o0)
    y[1] = horizontalSum(t1 + o1)
    y[2] = horizontalSum(t2 + o2)
    y[3] = horizontalSum(t3 + o3)
  }
}
#endif
