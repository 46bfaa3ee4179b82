import CPrefetch

/// Unpacks one 64-column chunk of codes (`QuantizedMatrix`'s layout) into four vectors of
/// `2²³ + code · factor_k` as f32, by masking each code in place and OR-ing in the exponent of
/// 2²³ — no shift per vector and no conversion instruction. Lane `l` of vector `k` is column
/// `4l + k` of the chunk. Subtracting 2²³ is exact; the power of two `factor_k` is divided out
/// of the input beforehand (`QuantizedInput`), which is also permuted to this column order.
@usableFromInline
protocol QuantizedCodes {
  static var bits: Int { get }
  static func chunk(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)
}

extension QuantizedCodes {
  /// `factor_k` of the four vectors (the same for both widths).
  @inline(__always) @usableFromInline
  static var factors: SIMD4<Float> { SIMD4(1, 256, 1, 256) }

  /// The masked words as floats: bytes 0 and 1 of `v`, then of `v >> 16` (a code at bit 24
  /// would not fit the mantissa).
  @inline(__always) @usableFromInline
  static func split(_ v: SIMD16<UInt32>, mask: UInt32) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    let high = v &>> 16
    let magic = SIMD16<UInt32>(repeating: 0x4B00_0000)
    let low = SIMD16<UInt32>(repeating: mask), second = SIMD16<UInt32>(repeating: mask << 8)
    return (
      unsafeBitCast((v & low) | magic, to: SIMD16<Float>.self),
      unsafeBitCast((v & second) | magic, to: SIMD16<Float>.self),
      unsafeBitCast((high & low) | magic, to: SIMD16<Float>.self),
      unsafeBitCast((high & second) | magic, to: SIMD16<Float>.self)
    )
  }
}

@usableFromInline
enum FourBitCodes: QuantizedCodes {
  @usableFromInline static var bits: Int { 4 }

  /// Lanes 0–7 take the eight words' low nibbles (columns 0–31), lanes 8–15 the same words
  /// shifted down by 4 (their high nibbles: columns 32–63).
  @inline(__always) @usableFromInline
  static func chunk(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    let words = p.loadUnaligned(as: SIMD8<UInt32>.self)
    return split(SIMD16<UInt32>(lowHalf: words, highHalf: words &>> 4), mask: 0x0F)
  }
}

@usableFromInline
enum EightBitCodes: QuantizedCodes {
  @usableFromInline static var bits: Int { 8 }

  @inline(__always) @usableFromInline
  static func chunk(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    split(p.loadUnaligned(as: SIMD16<UInt32>.self), mask: 0xFF)
  }
}

/// 5- and 6-bit codes: a chunk's low nibbles as at 4 bits, then `planes` bit planes (bit 4,
/// bit 5) of 8 bytes, laid out so that one variable shift per 32-bit lane puts every column's
/// bit in place (`QuantizedMatrix.planePosition`).
@usableFromInline
protocol BitPlaneCodes: QuantizedCodes {
  static var planes: Int { get }
}

extension BitPlaneCodes {
  @inline(__always) @usableFromInline
  static var bits: Int { 4 + planes }

  /// The chunk's 64 codes as sixteen 32-bit words, byte `k` of word `l` being column `4l + k`
  /// (the byte order of the int8 dot product, and what `split` takes). Plane half `h` (its
  /// 32-bit word) holds column `32h + 4j + k` at bit `8k + j`, so word `l = 8h + j` takes its
  /// four bits by shifting the half right by `j` and masking one bit per byte.
  @inline(__always) @usableFromInline
  static func columnOrderWords(_ p: UnsafeRawPointer) -> SIMD16<UInt32> {
    let words = p.loadUnaligned(as: SIMD8<UInt32>.self)
    let nibbles = SIMD8<UInt32>(repeating: 0x0F0F_0F0F)
    var codes = SIMD16<UInt32>(lowHalf: words & nibbles, highHalf: (words &>> 4) & nibbles)
    let shifts = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7)
    let ones = SIMD16<UInt32>(repeating: 0x0101_0101)
    for plane in 0..<planes {
      let halves = p.loadUnaligned(fromByteOffset: 32 + 8 * plane, as: SIMD2<UInt32>.self)
      let spread = SIMD16<UInt32>(lowHalf: SIMD8(repeating: halves[0]), highHalf: SIMD8(repeating: halves[1]))
      codes |= ((spread &>> shifts) & ones) &<< UInt32(4 + plane)
    }
    return codes
  }

  @inline(__always) @usableFromInline
  static func chunk(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    split(columnOrderWords(p), mask: 0xFF)
  }
}

@usableFromInline
enum FiveBitCodes: BitPlaneCodes {
  @usableFromInline static var planes: Int { 1 }
}

@usableFromInline
enum SixBitCodes: BitPlaneCodes {
  @usableFromInline static var planes: Int { 2 }
}

/// Input rows prepared for a quantized matrix's f32 streaming kernel, once per run and layout:
/// - `values`: each row in the matrix's input order (act-order), every 64-column chunk permuted
///   to the unpacked order (element `16k + l` is column `4l + k`) and divided by `factor_k`
///   (exact: powers of two);
/// - `sums`: per row and span (`QuantizedMatrix.span`), 16 lane sums of the (unscaled,
///   reordered, permuted) inputs over the span, so that zero points are applied once per
///   group: `Σ (code − z) x = Σ code·x − z Σ x`.
/// For a row-blocked matrix, `values` holds each row in input order only (no chunk permutation,
/// no factors) and `sums` is unused.
public struct QuantizedInput: @unchecked Sendable {
  let values: UnsafeMutablePointer<Float>
  let valueStride: Int
  let sums: UnsafeMutablePointer<Float>
  let sumStride: Int

  /// Whether two weights read the same prepared input (same group size and input order; the
  /// code width does not change it).
  static func sameLayout(_ a: LinearWeight, _ b: LinearWeight) -> Bool {
    guard case .quantized(let x) = a, case .quantized(let y) = b else { return false }
    return x.span == y.span && x.columns == y.columns && x.inputOrder == y.inputOrder && x.rowBlocked == y.rowBlocked
  }

  /// Fills `rows` rows from `natural` (`[rows, stride]`). Cost: one pass over the inputs.
  func prepare(for m: QuantizedMatrix, natural: UnsafePointer<Float>, stride: Int, rows: Int) {
    let inverse = SIMD4<Float>(repeating: 1) / FourBitCodes.factors
    let span = m.span
    for t in 0..<rows {
      let source = natural + t * stride
      let row = values + t * valueStride
      if m.rowBlocked {
        for column in 0..<m.columns { row[column] = source[m.inputIndex(ofStoredColumn: column)] }
        continue
      }
      for chunk in Swift.stride(from: 0, to: m.columns, by: QuantizedMatrix.chunk) {
        for l in 0..<16 {
          for k in 0..<4 {
            let column = chunk + 4 * l + k
            row[chunk + 16 * k + l] = source[m.inputOrder.map { Int($0[column]) } ?? column]
          }
        }
      }
      let sumRow = sums + t * sumStride
      var column = 0
      for s in 0..<m.spans {
        var lanes = SIMD16<Float>()
        let end = min(column + span, m.columns)
        while column < end {
          for k in 0..<4 {
            let p = UnsafeMutableRawPointer(row + column + 16 * k)
            let x = p.loadUnaligned(as: SIMD16<Float>.self)
            lanes += x
            p.storeBytes(of: x * inverse[k], as: SIMD16<Float>.self)
          }
          column += QuantizedMatrix.chunk
        }
        UnsafeMutableRawPointer(sumRow + 16 * s).storeBytes(of: lanes, as: SIMD16<Float>.self)
      }
    }
  }
}

/// Kernels for group-quantized weights. Every output is computed the same way by every kernel:
/// per group, one accumulator takes `(2²³ + code·factor − 2²³) · x/factor` for the four vectors of
/// each chunk in order; then `total += scale · acc + offset · Σx` (offset `−scale · zero` or the
/// minimum); the result is the tree sum of `total` — so batched decoding of G samples gives each
/// exactly its tokens alone. Row-blocked matrices (`quantizedRowBlock`) keep the rows in the lanes
/// instead: one FMA per column in order, no tree sum; the same for every batch size too. Per 16
/// weights: a mask, an OR, a subtraction and an FMA. Codes are dequantized in registers; no
/// dequantized copy of a matrix is made (prefill widens 32 rows at a time into the tiled
/// kernel's panel, as for 16-bit weights).
extension Linear {
  /// Rows `rows` of a quantized job for `tokens` prepared token rows. Decode takes four rows per
  /// step (independent accumulator chains); batches take two rows times four tokens, so that
  /// each input load feeds two FMAs and the rows' codes stay in L1 across token blocks.
  static func streamQuantizedRows(
    _ m: QuantizedMatrix, _ rows: Range<Int>, _ x: QuantizedInput,
    _ tokens: Int, _ output: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    switch m.bits {
    case 4: streamQuantizedRows(FourBitCodes.self, m, rows, x, tokens, output, ldy)
    case 5: streamQuantizedRows(FiveBitCodes.self, m, rows, x, tokens, output, ldy)
    case 6: streamQuantizedRows(SixBitCodes.self, m, rows, x, tokens, output, ldy)
    default: streamQuantizedRows(EightBitCodes.self, m, rows, x, tokens, output, ldy)
    }
  }

  @inline(__always)
  static func streamQuantizedRows<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ rows: Range<Int>, _ x: QuantizedInput,
    _ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    var r = rows.lowerBound
    if let zero = m.rowBlockZero {
      precondition(r % QuantizedMatrix.rowBlock == 0, "row ranges of a row-blocked matrix start at a block")
      while r + QuantizedMatrix.rowBlock <= min(rows.upperBound, m.blockedRows) {
        for t in 0..<tokens {
          let total = quantizedRowBlock(C.self, m, zero, r, x.values + t * x.valueStride)
          UnsafeMutableRawPointer(y + t * ldy + r).storeBytes(of: total, as: SIMD16<Float>.self)
        }
        r += QuantizedMatrix.rowBlock
      }
      // Rows past the last whole block read the same input, in input order.
      while r < rows.upperBound {
        for t in 0..<tokens { y[t * ldy + r] = quantizedTailRow(m, zero, r, x.values + t * x.valueStride) }
        r += 1
      }
      return
    }
    if tokens == 1 {
      while r + 4 <= rows.upperBound {
        quantizedRows4(C.self, m, r, x.values, x.sums, y + r)
        r += 4
      }
      while r < rows.upperBound {
        y[r] = quantizedDot1(C.self, m, r, x.values, x.sums)
        r += 1
      }
      return
    }
    while r < rows.upperBound {
      let pair = r + 1 < rows.upperBound
      var t = 0
      while t < tokens {
        let count = min(tokens - t, 4)
        let xt = x.values + t * x.valueStride, st = x.sums + t * x.sumStride
        if pair {
          quantizedRows2Tokens4(C.self, m, r, xt, x.valueStride, st, x.sumStride, count, y + t * ldy + r, ldy)
        } else {
          for i in 0..<count {
            y[(t + i) * ldy + r] = quantizedDot1(C.self, m, r, xt + i * x.valueStride, st + i * x.sumStride)
          }
        }
        t += count
      }
      r += pair ? 2 : 1
    }
  }

  /// `2²³` as a vector: subtracted from every unpacked code.
  @inline(__always)
  static var codeOffset: SIMD16<Float> { SIMD16(repeating: 8_388_608) }

  @inline(__always)
  static func xLoad64(_ x: UnsafePointer<Float>, _ i: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    let raw = UnsafeRawPointer(x + i)
    return (
      raw.loadUnaligned(as: SIMD16<Float>.self), raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self),
      raw.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self), raw.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self)
    )
  }

  @inline(__always)
  static func sumsLoad(_ sums: UnsafePointer<Float>, _ s: Int) -> SIMD16<Float> {
    UnsafeRawPointer(sums + 16 * s).loadUnaligned(as: SIMD16<Float>.self)
  }

  /// One row's accumulation of one chunk: `acc += (code·factor)_k · (x/factor)_k`, k in order.
  @inline(__always)
  static func accumulateChunk<C: QuantizedCodes>(
    _: C.Type, _ acc: inout SIMD16<Float>, _ codes: UnsafeRawPointer, _ column: Int,
    _ x0: SIMD16<Float>, _ x1: SIMD16<Float>, _ x2: SIMD16<Float>, _ x3: SIMD16<Float>
  ) {
    let (f0, f1, f2, f3) = C.chunk(codes + column * C.bits / 8)
    acc.addProduct(f0 - codeOffset, x0)
    acc.addProduct(f1 - codeOffset, x1)
    acc.addProduct(f2 - codeOffset, x2)
    acc.addProduct(f3 - codeOffset, x3)
  }

  /// `total += scale · acc + offset · Σx` at the end of a span.
  @inline(__always)
  static func closeGroup(
    _ total: inout SIMD16<Float>, _ acc: SIMD16<Float>, _ scale: SIMD16<Float>, _ offset: SIMD16<Float>, _ sums: SIMD16<Float>
  ) {
    total.addProduct(scale, acc)
    total.addProduct(offset, sums)
  }

  /// The codes of one vector of a row block (16 rows × 4 bytes) as 16 floats `code − zero` for
  /// its column `k`: byte `k` of each word at 8 bits; at 4–6 bits, `k < 4` the low nibble of
  /// byte `k`, else the high nibble of byte `k − 4` — at 5 and 6 bits with the high bits from
  /// `plane` (the octet's plane half, its eight words repeated for rows 8–15; `parity`: the
  /// octet's index mod 2 at 5 bits, where two octets share a half).
  @inline(__always)
  static func blockColumn<C: QuantizedCodes>(
    _: C.Type, _ words: SIMD16<UInt32>, _ plane: SIMD16<UInt32>, _ parity: Int, _ k: Int, _ offset: SIMD16<Float>
  ) -> SIMD16<Float> {
    let shift = C.bits == 8 ? UInt32(8 * k) : UInt32(8 * (k % 4) + 4 * (k / 4))
    var code = (words &>> shift) & SIMD16(repeating: C.bits == 8 ? 0xFF : 0x0F)
    if C.bits == 5 || C.bits == 6 {
      // Row j's bits: w · (4·parity + 2·(j / 8) + level) of byte k mod 4 of its word (w = bits − 4).
      let width = UInt32(C.bits - 4)
      let position = SIMD16<UInt32>(repeating: UInt32(8 * (k % 4)) + width * UInt32(4 * parity + k / 4))
      let bit = position &+ SIMD16<UInt32>(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2) &* width
      code |= ((plane &>> bit) & SIMD16(repeating: (1 << width) - 1)) &<< 4
    }
    return unsafeBitCast(code | SIMD16(repeating: 0x4B00_0000), to: SIMD16<Float>.self) - offset
  }

  /// Byte offset in a row block of the vector holding stored column `column` (4 columns at 8
  /// bits, 8 at 4–6), of its plane half (5, 6 bits), and the octet's parity there.
  @inline(__always)
  static func blockVectorOffsets<C: QuantizedCodes>(_: C.Type, _ column: Int) -> (codes: Int, plane: Int, parity: Int) {
    if C.bits == 8 { return (column / 4 &* 64, 0, 0) }
    let block = column / 32 &* 64 &* C.bits, octet = column % 32 / 8
    return (block &+ octet &* 64, block &+ 256 &+ octet &* (C.bits - 4) / 2 &* 32, C.bits == 5 ? octet % 2 : 0)
  }

  /// The plane half at `offset` of a row block, its eight words repeated for rows 8–15 (zero
  /// below 5 bits).
  @inline(__always)
  static func blockPlane<C: QuantizedCodes>(_: C.Type, _ codes: UnsafeRawPointer, _ offset: Int) -> SIMD16<UInt32> {
    guard C.bits == 5 || C.bits == 6 else { return SIMD16() }
    let half = codes.loadUnaligned(fromByteOffset: offset, as: SIMD8<UInt32>.self)
    return SIMD16(lowHalf: half, highHalf: half)
  }

  /// One row block (16 rows from `r`) times one token row in input order: the rows are the
  /// lanes; per column `acc += (code − zero) · x`, per group `total += scale · acc` (plus
  /// `minimum · Σ x` for the forms that add one).
  @inline(__always)
  static func quantizedRowBlock<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ zero: Int, _ r: Int, _ x: UnsafePointer<Float>
  ) -> SIMD16<Float> {
    let codes = UnsafeRawPointer(m.codes + r &* m.rowBytes)
    let parameters = m.groupParameters + r &* m.parameterRowBytes
    let offset = SIMD16<Float>(repeating: 8_388_608 + Float(zero))
    let minimum = m.form.addsMinimum
    var total = SIMD16<Float>()
    var column = 0, g = 0
    while column < m.columns {
      let end = min(column &+ m.groupSize, m.columns)
      var acc = SIMD16<Float>(), sums = SIMD4<Float>()
      while column < end {
        let (codeOffset, planeOffset, parity) = blockVectorOffsets(C.self, column)
        let words = codes.loadUnaligned(fromByteOffset: codeOffset, as: SIMD16<UInt32>.self)
        let plane = blockPlane(C.self, codes, planeOffset)
        let xs = UnsafeRawPointer(x + column).loadUnaligned(as: SIMD4<Float>.self)
        acc.addProduct(blockColumn(C.self, words, plane, parity, 0, offset), SIMD16(repeating: xs[0]))
        acc.addProduct(blockColumn(C.self, words, plane, parity, 1, offset), SIMD16(repeating: xs[1]))
        acc.addProduct(blockColumn(C.self, words, plane, parity, 2, offset), SIMD16(repeating: xs[2]))
        acc.addProduct(blockColumn(C.self, words, plane, parity, 3, offset), SIMD16(repeating: xs[3]))
        sums += xs
        if C.bits != 8 {
          let more = UnsafeRawPointer(x + (column &+ 4)).loadUnaligned(as: SIMD4<Float>.self)
          acc.addProduct(blockColumn(C.self, words, plane, parity, 4, offset), SIMD16(repeating: more[0]))
          acc.addProduct(blockColumn(C.self, words, plane, parity, 5, offset), SIMD16(repeating: more[1]))
          acc.addProduct(blockColumn(C.self, words, plane, parity, 6, offset), SIMD16(repeating: more[2]))
          acc.addProduct(blockColumn(C.self, words, plane, parity, 7, offset), SIMD16(repeating: more[3]))
          sums += more
        }
        column &+= C.bits == 8 ? 4 : 8
      }
      total.addProduct(acc, m.blockParameters(parameters, group: g, value: 0))
      if minimum { total.addProduct(m.blockParameters(parameters, group: g, value: 1), SIMD16(repeating: sums.sum())) }
      g &+= 1
    }
    return total
  }

  /// A row of a row-blocked matrix past its last whole block times one token row in input
  /// order, in scalar code: per group `total += scale · Σ (code − zero) · x` (plus `minimum · Σ x`).
  static func quantizedTailRow(_ m: QuantizedMatrix, _ zero: Int, _ r: Int, _ x: UnsafePointer<Float>) -> Float {
    var total: Float = 0
    for g in 0..<m.groups {
      var acc: Float = 0, sum: Float = 0
      for c in (g * m.groupSize)..<min((g + 1) * m.groupSize, m.columns) {
        acc.addProduct(Float(m.code(row: r, column: c) - zero), x[c])
        sum += x[c]
      }
      let (scale, second) = m.parameters(row: r, group: g)
      total.addProduct(acc, scale)
      if m.form.addsMinimum { total.addProduct(second, sum) }
    }
    return total
  }

  /// One row times one prepared token row.
  @inline(__always)
  static func quantizedDot1<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ r: Int, _ x: UnsafePointer<Float>, _ sums: UnsafePointer<Float>
  ) -> Float {
    let codes = m.codes + r * m.rowBytes
    let params = m.groupParameters + r * m.parameterRowBytes
    let pairs = m.groupSize < QuantizedMatrix.chunk
    var total = SIMD16<Float>()
    var column = 0
    for g in 0..<m.spans {
      var acc = SIMD16<Float>()
      let end = min(column + m.span, m.columns)
      while column < end {
        let (x0, x1, x2, x3) = xLoad64(x, column)
        accumulateChunk(C.self, &acc, codes, column, x0, x1, x2, x3)
        column += QuantizedMatrix.chunk
      }
      let (s, offset) = spanConstants(params, g, pairs: pairs, form: m.form)
      closeGroup(&total, acc, s, offset, sumsLoad(sums, g))
    }
    return horizontalSum(total)
  }

  /// Four rows times one prepared token row (decode): four independent chains.
  @inline(__always)
  static func quantizedRows4<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ r: Int, _ x: UnsafePointer<Float>, _ sums: UnsafePointer<Float>,
    _ y: UnsafeMutablePointer<Float>
  ) {
    let c0 = m.codes + r * m.rowBytes, c1 = c0 + m.rowBytes, c2 = c1 + m.rowBytes, c3 = c2 + m.rowBytes
    let p0 = m.groupParameters + r * m.parameterRowBytes, p1 = p0 + m.parameterRowBytes, p2 = p1 + m.parameterRowBytes, p3 = p2 + m.parameterRowBytes
    let pairs = m.groupSize < QuantizedMatrix.chunk
    var t0 = SIMD16<Float>(), t1 = SIMD16<Float>(), t2 = SIMD16<Float>(), t3 = SIMD16<Float>()
    var column = 0
    for g in 0..<m.spans {
      var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
      let end = min(column + m.span, m.columns)
      while column < end {
        bitbudget_prefetch(c0 + (column + 2048) * C.bits / 8)
        bitbudget_prefetch(c2 + (column + 2048) * C.bits / 8)
        let (x0, x1, x2, x3) = xLoad64(x, column)
        accumulateChunk(C.self, &a0, c0, column, x0, x1, x2, x3)
        accumulateChunk(C.self, &a1, c1, column, x0, x1, x2, x3)
        accumulateChunk(C.self, &a2, c2, column, x0, x1, x2, x3)
        accumulateChunk(C.self, &a3, c3, column, x0, x1, x2, x3)
        column += QuantizedMatrix.chunk
      }
      let sg = sumsLoad(sums, g)
      var (s, offset) = spanConstants(p0, g, pairs: pairs, form: m.form)
      closeGroup(&t0, a0, s, offset, sg)
      (s, offset) = spanConstants(p1, g, pairs: pairs, form: m.form)
      closeGroup(&t1, a1, s, offset, sg)
      (s, offset) = spanConstants(p2, g, pairs: pairs, form: m.form)
      closeGroup(&t2, a2, s, offset, sg)
      (s, offset) = spanConstants(p3, g, pairs: pairs, form: m.form)
      closeGroup(&t3, a3, s, offset, sg)
    }
    y[0] = horizontalSum(t0)
    y[1] = horizontalSum(t1)
    y[2] = horizontalSum(t2)
    y[3] = horizontalSum(t3)
  }

  /// Two rows times up to 4 prepared token rows (`count`; the others repeat the last row and
  /// are not stored): 16 accumulators.
  @inline(__always)
  static func quantizedRows2Tokens4<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ r: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
    _ sums: UnsafePointer<Float>, _ lds: Int, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let codes0 = m.codes + r * m.rowBytes, codes1 = codes0 + m.rowBytes
    let params0 = m.groupParameters + r * m.parameterRowBytes, params1 = params0 + m.parameterRowBytes
    let last = count - 1
    let o1 = min(1, last), o2 = min(2, last), o3 = min(3, last)
    let x0 = x, x1 = x + o1 * ldx, x2 = x + o2 * ldx, x3 = x + o3 * ldx
    // v.2t / v.2t+1: rows r / r+1 of token t, totals; a: the current group's accumulators.
    let pairs = m.groupSize < QuantizedMatrix.chunk
    var total = Accumulators16()
    var column = 0
    for g in 0..<m.spans {
      var a = Accumulators16()
      let end = min(column + m.span, m.columns)
      while column < end {
        let (f0, f1, f2, f3) = C.chunk(codes0 + column * C.bits / 8)
        let (h0, h1, h2, h3) = C.chunk(codes1 + column * C.bits / 8)
        let p0 = f0 - codeOffset, p1 = f1 - codeOffset, p2 = f2 - codeOffset, p3 = f3 - codeOffset
        let q0 = h0 - codeOffset, q1 = h1 - codeOffset, q2 = h2 - codeOffset, q3 = h3 - codeOffset
        var (u0, u1, u2, u3) = xLoad64(x0, column)
        a.v.0.addProduct(p0, u0); a.v.0.addProduct(p1, u1); a.v.0.addProduct(p2, u2); a.v.0.addProduct(p3, u3)
        a.v.1.addProduct(q0, u0); a.v.1.addProduct(q1, u1); a.v.1.addProduct(q2, u2); a.v.1.addProduct(q3, u3)
        (u0, u1, u2, u3) = xLoad64(x1, column)
        a.v.2.addProduct(p0, u0); a.v.2.addProduct(p1, u1); a.v.2.addProduct(p2, u2); a.v.2.addProduct(p3, u3)
        a.v.3.addProduct(q0, u0); a.v.3.addProduct(q1, u1); a.v.3.addProduct(q2, u2); a.v.3.addProduct(q3, u3)
        (u0, u1, u2, u3) = xLoad64(x2, column)
        a.v.4.addProduct(p0, u0); a.v.4.addProduct(p1, u1); a.v.4.addProduct(p2, u2); a.v.4.addProduct(p3, u3)
        a.v.5.addProduct(q0, u0); a.v.5.addProduct(q1, u1); a.v.5.addProduct(q2, u2); a.v.5.addProduct(q3, u3)
        (u0, u1, u2, u3) = xLoad64(x3, column)
        a.v.6.addProduct(p0, u0); a.v.6.addProduct(p1, u1); a.v.6.addProduct(p2, u2); a.v.6.addProduct(p3, u3)
        a.v.7.addProduct(q0, u0); a.v.7.addProduct(q1, u1); a.v.7.addProduct(q2, u2); a.v.7.addProduct(q3, u3)
        column += QuantizedMatrix.chunk
      }
      let (s0, z0) = spanConstants(params0, g, pairs: pairs, form: m.form)
      let (s1, z1) = spanConstants(params1, g, pairs: pairs, form: m.form)
      var sg = sumsLoad(sums, g)
      closeGroup(&total.v.0, a.v.0, s0, z0, sg); closeGroup(&total.v.1, a.v.1, s1, z1, sg)
      sg = sumsLoad(sums + o1 * lds, g)
      closeGroup(&total.v.2, a.v.2, s0, z0, sg); closeGroup(&total.v.3, a.v.3, s1, z1, sg)
      sg = sumsLoad(sums + o2 * lds, g)
      closeGroup(&total.v.4, a.v.4, s0, z0, sg); closeGroup(&total.v.5, a.v.5, s1, z1, sg)
      sg = sumsLoad(sums + o3 * lds, g)
      closeGroup(&total.v.6, a.v.6, s0, z0, sg); closeGroup(&total.v.7, a.v.7, s1, z1, sg)
    }
    withUnsafeBytes(of: &total.v) { raw in
      let acc = raw.bindMemory(to: SIMD16<Float>.self)
      for t in 0..<count {
        y[t * ldy] = horizontalSum(acc[2 * t])
        y[t * ldy + 1] = horizontalSum(acc[2 * t + 1])
      }
    }
  }

  /// Dequantizes rows `rows` (at most 32) into the tiled kernel's panel `panel[c · 32 + j]`,
  /// `c` in input order, zero-filling missing rows.
  static func pack(_ m: QuantizedMatrix, rows: Range<Int>, into panel: UnsafeMutablePointer<Float>) {
    switch m.bits {
    case 4: pack(FourBitCodes.self, m, rows, panel)
    case 5: pack(FiveBitCodes.self, m, rows, panel)
    case 6: pack(SixBitCodes.self, m, rows, panel)
    default: pack(EightBitCodes.self, m, rows, panel)
    }
    if rows.count < panelWidth {
      for c in 0..<m.columns {
        for j in rows.count..<panelWidth { panel[c * panelWidth + j] = 0 }
      }
    }
  }

  @inline(__always)
  static func pack<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ rows: Range<Int>, _ panel: UnsafeMutablePointer<Float>
  ) {
    let inverse = SIMD4<Float>(repeating: 1) / C.factors
    let pairs = m.groupSize < QuantizedMatrix.chunk
    var rowMajor = rows
    if let zero = m.rowBlockZero {
      // Whole row blocks: 16 rows' weights of a column are one vector, stored at once. Exactly
      // `dequantized(row:column:)`: (code − zero) · scale, or code · scale + minimum.
      let offset = SIMD16<Float>(repeating: 8_388_608 + Float(zero))
      let perVector = C.bits == 8 ? 4 : 8
      let minimum = m.form.addsMinimum
      var first = rows.lowerBound
      while first + QuantizedMatrix.rowBlock <= min(rows.upperBound, m.blockedRows) {
        let codes = UnsafeRawPointer(m.codes + first * m.rowBytes), parameters = m.groupParameters + first * m.parameterRowBytes
        var (g, scale, added) = (-1, SIMD16<Float>(), SIMD16<Float>())
        for column in stride(from: 0, to: m.columns, by: perVector) {
          if column / m.groupSize != g {
            g = column / m.groupSize
            scale = m.blockParameters(parameters, group: g, value: 0)
            if minimum { added = m.blockParameters(parameters, group: g, value: 1) }
          }
          let (codeOffset, planeOffset, parity) = blockVectorOffsets(C.self, column)
          let words = codes.loadUnaligned(fromByteOffset: codeOffset, as: SIMD16<UInt32>.self)
          let plane = blockPlane(C.self, codes, planeOffset)
          for k in 0..<perVector {
            let input = m.inputIndex(ofStoredColumn: column + k)
            let value = blockColumn(C.self, words, plane, parity, k, offset)
            UnsafeMutableRawPointer(panel + input * panelWidth + first - rows.lowerBound)
              .storeBytes(of: minimum ? value * scale + added : value * scale, as: SIMD16<Float>.self)
          }
        }
        first += QuantizedMatrix.rowBlock
      }
      rowMajor = first..<rows.upperBound
    }
    for r in rowMajor {
      let j = r - rows.lowerBound
      let codes = m.codes + r * m.rowBytes
      let params = m.groupParameters + r * m.parameterRowBytes
      var column = 0
      let minimum = m.form.addsMinimum
      for g in 0..<m.spans {
        // Exactly `dequantized(row:column:)`: (code − zero) · scale, or code · scale + minimum.
        let (s, second) = spanParameters(params, g, pairs: pairs, form: m.form)
        let before = minimum ? SIMD16<Float>() : -second, after = minimum ? second : SIMD16<Float>()
        let end = min(column + m.span, m.columns)
        while column < end {
          let (f0, f1, f2, f3) = C.chunk(codes + column * C.bits / 8)
          let w = (
            ((f0 - codeOffset) * inverse[0] + before) * s + after, ((f1 - codeOffset) * inverse[1] + before) * s + after,
            ((f2 - codeOffset) * inverse[2] + before) * s + after, ((f3 - codeOffset) * inverse[3] + before) * s + after
          )
          withUnsafeBytes(of: w) { raw in
            // Element 16k + l is column 4l + k of the chunk.
            let values = raw.bindMemory(to: Float.self)
            for k in 0..<4 {
              for l in 0..<16 {
                let stored = column + 4 * l + k
                let input = m.inputOrder.map { Int($0[stored]) } ?? stored
                panel[input * panelWidth + j] = values[16 * k + l]
              }
            }
          }
          column += QuantizedMatrix.chunk
        }
      }
    }
  }
}
