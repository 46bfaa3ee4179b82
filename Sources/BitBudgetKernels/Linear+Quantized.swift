import CPrefetch

/// Unpacks one 64-column chunk of codes (`QuantizedMatrix`'s layout) into four vectors of
/// `code + 2²³` as f32: OR-ing the code into the mantissa of 2²³ converts it without a
/// conversion instruction; subtracting `2²³ + zero` afterwards is exact.
@usableFromInline
protocol QuantizedCodes {
  static var bits: Int { get }
  static func chunk(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)
}

@usableFromInline
enum FourBitCodes: QuantizedCodes {
  @usableFromInline static var bits: Int { 4 }

  @inline(__always) @usableFromInline
  static func chunk(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    let words = p.loadUnaligned(as: SIMD8<UInt32>.self)
    let v = SIMD16<UInt32>(lowHalf: words, highHalf: words &>> 16)
    let magic = SIMD16<UInt32>(repeating: 0x4B00_0000)
    return (
      unsafeBitCast((v & 0xF) | magic, to: SIMD16<Float>.self),
      unsafeBitCast(((v &>> 4) & 0xF) | magic, to: SIMD16<Float>.self),
      unsafeBitCast(((v &>> 8) & 0xF) | magic, to: SIMD16<Float>.self),
      unsafeBitCast(((v &>> 12) & 0xF) | magic, to: SIMD16<Float>.self)
    )
  }
}

@usableFromInline
enum EightBitCodes: QuantizedCodes {
  @usableFromInline static var bits: Int { 8 }

  @inline(__always) @usableFromInline
  static func chunk(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    let v = p.loadUnaligned(as: SIMD16<UInt32>.self)
    let magic = SIMD16<UInt32>(repeating: 0x4B00_0000)
    return (
      unsafeBitCast((v & 0xFF) | magic, to: SIMD16<Float>.self),
      unsafeBitCast(((v &>> 8) & 0xFF) | magic, to: SIMD16<Float>.self),
      unsafeBitCast(((v &>> 16) & 0xFF) | magic, to: SIMD16<Float>.self),
      unsafeBitCast((v &>> 24) | magic, to: SIMD16<Float>.self)
    )
  }
}

/// Kernels for group-quantized weights. Every output is computed the same way by every kernel:
/// per chunk, `w_k = (code_k − zero) · scale` (exact subtraction, one rounding), then two
/// accumulators take `w_0·x_0, w_2·x_2` and `w_1·x_1, w_3·x_3` in order, and the result is the
/// tree sum of their sum — so batched decoding of G samples gives each exactly its tokens alone.
/// Codes are dequantized in registers; no dequantized copy of a matrix is made (prefill widens
/// 32 rows at a time into the tiled kernel's panel, as for 16-bit weights).
extension Linear {
  /// Rows `rows` of a quantized job for `tokens` token rows of `x` (natural order, or the input
  /// order of an act-order matrix). Pairs of rows are the outer loop so that their codes stay in
  /// L1 while blocks of up to 4 tokens read them.
  static func streamQuantizedRows(
    _ m: QuantizedMatrix, bias: WeightVector?, _ rows: Range<Int>, _ x: UnsafePointer<Float>, _ ldx: Int,
    _ tokens: Int, _ output: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    switch m.bits {
    case 4: streamQuantizedRows(FourBitCodes.self, m, rows, x, ldx, tokens, output, ldy)
    default: streamQuantizedRows(EightBitCodes.self, m, rows, x, ldx, tokens, output, ldy)
    }
    if let bias {
      for t in 0..<tokens {
        let y = output + t * ldy
        for r in rows { y[r] += bias[r] }
      }
    }
  }

  @inline(__always)
  static func streamQuantizedRows<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ rows: Range<Int>, _ x: UnsafePointer<Float>, _ ldx: Int,
    _ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    if tokens == 1 {
      for r in rows { y[r] = quantizedDot1(C.self, m, r, x) }
      return
    }
    var r = rows.lowerBound
    while r < rows.upperBound {
      let pair = r + 1 < rows.upperBound
      var t = 0
      while t < tokens {
        let count = min(tokens - t, 4)
        if pair {
          quantizedRows2Tokens4(C.self, m, r, x + t * ldx, ldx, count, y + t * ldy + r, ldy)
        } else if count == 1 {
          y[t * ldy + r] = quantizedDot1(C.self, m, r, x + t * ldx)
        } else {
          quantizedTokens4(C.self, m, r, x + t * ldx, ldx, count, y + t * ldy + r, ldy)
        }
        t += count
      }
      r += pair ? 2 : 1
    }
  }

  /// Broadcast scale and `2²³ + zero` of one group.
  @inline(__always)
  static func groupConstants(_ m: QuantizedMatrix, _ params: UnsafeRawPointer, _ g: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    let pair = params.loadUnaligned(fromByteOffset: g * 4, as: SIMD2<UInt16>.self)
    return (SIMD16(repeating: f16ToFloat(pair[0])), SIMD16(repeating: f16ToFloat(pair[1]) + 8_388_608))
  }

  /// Dequantized weights of the chunk at `column` of a row.
  @inline(__always)
  static func chunkWeights<C: QuantizedCodes>(
    _: C.Type, _ codes: UnsafeRawPointer, _ column: Int, _ s: SIMD16<Float>, _ c: SIMD16<Float>
  ) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    let (f0, f1, f2, f3) = C.chunk(codes + column * C.bits / 8)
    return ((f0 - c) * s, (f1 - c) * s, (f2 - c) * s, (f3 - c) * s)
  }

  @inline(__always)
  static func xLoad64(_ x: UnsafePointer<Float>, _ i: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    let raw = UnsafeRawPointer(x + i)
    return (
      raw.loadUnaligned(as: SIMD16<Float>.self), raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self),
      raw.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self), raw.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self)
    )
  }

  /// One row times one token row (decode).
  @inline(__always)
  static func quantizedDot1<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ r: Int, _ x: UnsafePointer<Float>
  ) -> Float {
    let codes = m.codes + r * m.rowBytes
    let params = m.groupParameters + r * m.groups * 4
    var a = SIMD16<Float>(), b = SIMD16<Float>()
    var column = 0
    for g in 0..<m.groups {
      let (s, c) = groupConstants(m, params, g)
      let end = min(column + m.groupSize, m.columns)
      while column < end {
        bitbudget_prefetch(codes + (column + 1024) * C.bits / 8)
        let (w0, w1, w2, w3) = chunkWeights(C.self, codes, column, s, c)
        let (x0, x1, x2, x3) = xLoad64(x, column)
        a.addProduct(w0, x0); b.addProduct(w1, x1)
        a.addProduct(w2, x2); b.addProduct(w3, x3)
        column += QuantizedMatrix.chunk
      }
    }
    return horizontalSum(a + b)
  }

  /// One row times up to 4 token rows (`count`; the others repeat the last row and are not
  /// stored): 8 accumulators.
  @inline(__always)
  static func quantizedTokens4<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ r: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ count: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let codes = m.codes + r * m.rowBytes
    let params = m.groupParameters + r * m.groups * 4
    let x0 = x, x1 = x + min(1, count - 1) * ldx, x2 = x + min(2, count - 1) * ldx, x3 = x + min(3, count - 1) * ldx
    var a = Accumulators16()
    var column = 0
    for g in 0..<m.groups {
      let (s, c) = groupConstants(m, params, g)
      let end = min(column + m.groupSize, m.columns)
      while column < end {
        let (w0, w1, w2, w3) = chunkWeights(C.self, codes, column, s, c)
        var (u0, u1, u2, u3) = xLoad64(x0, column)
        a.v.0.addProduct(w0, u0); a.v.1.addProduct(w1, u1); a.v.0.addProduct(w2, u2); a.v.1.addProduct(w3, u3)
        (u0, u1, u2, u3) = xLoad64(x1, column)
        a.v.2.addProduct(w0, u0); a.v.3.addProduct(w1, u1); a.v.2.addProduct(w2, u2); a.v.3.addProduct(w3, u3)
        (u0, u1, u2, u3) = xLoad64(x2, column)
        a.v.4.addProduct(w0, u0); a.v.5.addProduct(w1, u1); a.v.4.addProduct(w2, u2); a.v.5.addProduct(w3, u3)
        (u0, u1, u2, u3) = xLoad64(x3, column)
        a.v.6.addProduct(w0, u0); a.v.7.addProduct(w1, u1); a.v.6.addProduct(w2, u2); a.v.7.addProduct(w3, u3)
        column += QuantizedMatrix.chunk
      }
    }
    a.storePairs(tokens: count, y, ldy)
  }

  /// Two rows times up to 4 token rows (batched decode of G samples, short prompts): 16
  /// accumulators; each x load feeds two FMAs.
  @inline(__always)
  static func quantizedRows2Tokens4<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ r: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ count: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let codes0 = m.codes + r * m.rowBytes, codes1 = codes0 + m.rowBytes
    let params0 = m.groupParameters + r * m.groups * 4, params1 = params0 + m.groups * 4
    let last = count - 1
    let x0 = x, x1 = x + min(1, last) * ldx, x2 = x + min(2, last) * ldx, x3 = x + min(3, last) * ldx
    var a = Accumulators16()
    var column = 0
    for g in 0..<m.groups {
      let (s0, c0) = groupConstants(m, params0, g)
      let (s1, c1) = groupConstants(m, params1, g)
      let end = min(column + m.groupSize, m.columns)
      while column < end {
        let (p0, p1, p2, p3) = chunkWeights(C.self, codes0, column, s0, c0)
        let (q0, q1, q2, q3) = chunkWeights(C.self, codes1, column, s1, c1)
        var (u0, u1, u2, u3) = xLoad64(x0, column)
        a.v.0.addProduct(p0, u0); a.v.1.addProduct(p1, u1); a.v.0.addProduct(p2, u2); a.v.1.addProduct(p3, u3)
        a.v.2.addProduct(q0, u0); a.v.3.addProduct(q1, u1); a.v.2.addProduct(q2, u2); a.v.3.addProduct(q3, u3)
        (u0, u1, u2, u3) = xLoad64(x1, column)
        a.v.4.addProduct(p0, u0); a.v.5.addProduct(p1, u1); a.v.4.addProduct(p2, u2); a.v.5.addProduct(p3, u3)
        a.v.6.addProduct(q0, u0); a.v.7.addProduct(q1, u1); a.v.6.addProduct(q2, u2); a.v.7.addProduct(q3, u3)
        (u0, u1, u2, u3) = xLoad64(x2, column)
        a.v.8.addProduct(p0, u0); a.v.9.addProduct(p1, u1); a.v.8.addProduct(p2, u2); a.v.9.addProduct(p3, u3)
        a.v.10.addProduct(q0, u0); a.v.11.addProduct(q1, u1); a.v.10.addProduct(q2, u2); a.v.11.addProduct(q3, u3)
        (u0, u1, u2, u3) = xLoad64(x3, column)
        a.v.12.addProduct(p0, u0); a.v.13.addProduct(p1, u1); a.v.12.addProduct(p2, u2); a.v.13.addProduct(p3, u3)
        a.v.14.addProduct(q0, u0); a.v.15.addProduct(q1, u1); a.v.14.addProduct(q2, u2); a.v.15.addProduct(q3, u3)
        column += QuantizedMatrix.chunk
      }
    }
    withUnsafeBytes(of: &a.v) { raw in
      let acc = raw.bindMemory(to: SIMD16<Float>.self)
      for t in 0..<count {
        y[t * ldy] = horizontalSum(acc[4 * t] + acc[4 * t + 1])
        y[t * ldy + 1] = horizontalSum(acc[4 * t + 2] + acc[4 * t + 3])
      }
    }
  }

  /// Dequantizes rows `rows` (at most 32) into the tiled kernel's panel `panel[c · 32 + j]`,
  /// `c` in input order, zero-filling missing rows.
  static func pack(_ m: QuantizedMatrix, rows: Range<Int>, into panel: UnsafeMutablePointer<Float>) {
    switch m.bits {
    case 4: pack(FourBitCodes.self, m, rows, panel)
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
    for (j, r) in rows.enumerated() {
      let codes = m.codes + r * m.rowBytes
      let params = m.groupParameters + r * m.groups * 4
      var column = 0
      for g in 0..<m.groups {
        let (s, c) = groupConstants(m, params, g)
        let end = min(column + m.groupSize, m.columns)
        while column < end {
          let (w0, w1, w2, w3) = chunkWeights(C.self, codes, column, s, c)
          withUnsafeBytes(of: (w0, w1, w2, w3)) { raw in
            let w = raw.bindMemory(to: Float.self)
            if let order = m.inputOrder {
              for i in 0..<QuantizedMatrix.chunk { panel[Int(order[column + i]) * panelWidth + j] = w[i] }
            } else {
              for i in 0..<QuantizedMatrix.chunk { panel[(column + i) * panelWidth + j] = w[i] }
            }
          }
          column += QuantizedMatrix.chunk
        }
      }
    }
  }
}

extension Accumulators16 {
  /// Writes `y[t · ldy] = Σ(v[2t] + v[2t+1])` for the first `tokens` tokens (one row).
  @inline(__always)
  mutating func storePairs(tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
    withUnsafeBytes(of: &v) { raw in
      let acc = raw.bindMemory(to: SIMD16<Float>.self)
      for t in 0..<tokens { y[t * ldy] = horizontalSum(acc[2 * t] + acc[2 * t + 1]) }
    }
  }
}
