// The AVX2 int8 kernels: for x86-64 CPUs without AVX-512 VNNI (which take the kernels of
// `Linear+Int8.swift` instead). `canImport(CAVX2)` is the gate; the module itself is never
// imported.
#if canImport(CAVX2) && !canImport(CAVX512VNNI)
internal import _Builtin_intrinsics.intel
import CPrefetch

/// Tokens per pass of `Linear.int8RowBlockTile` over a row block, as a type so that each count
/// is its own specialization (constant loops over tokens, accumulators in registers).
protocol RowBlockTokens { static var count: Int { get } }
enum OneToken: RowBlockTokens { static var count: Int { 1 } }
enum TwoTokens: RowBlockTokens { static var count: Int { 2 } }
enum FourTokens: RowBlockTokens { static var count: Int { 4 } }

/// Row-blocked weights (`QuantizedMatrix.rowBlocked`) times int8 activations
/// (`Int8Input.prepareRowBlocks`), for decode, batches and prompts (`Linear.streamsPrompts`). A
/// row block's 16 rows are the lanes of two 8-lane accumulators. Per input block of 32 columns
/// and 8 rows, integer products are exact:
/// - 4 bits: per 8 columns one 32-byte load split into low and high nibbles, each multiplied
///   with the input's 4 codes broadcast by `vpmaddubsw` (code ≤ 15, |x| ≤ 127: a pair sums to at
///   most 3,810, so the block's eight products add up in 16 bits without saturating); one
///   `vpmaddwd` by ones per block widens them, and the accumulator starts at `−zero · Σ x`.
/// - 5 and 6 bits: the same nibbles, each OR-ed with its high bits from the block's planes
///   (one shift and one mask per 32 bytes: byte `i` of a plane half sits under byte `i` of the
///   nibbles); codes ≤ 31 make a pair up to 7,874 and codes ≤ 63 up to 16,002, so `vpmaddwd`
///   widens every octet (at 5 bits every two would do, but pair sums held across octets for 4
///   tokens spill registers: widening every octet ran 4–9% faster).
/// - 8 bits: per 4 columns one load; the codes minus 128 are the signed weights (`code ^ 0x80`),
///   multiplied as `|w| · (x · sign w)` — `vpmaddubsw` takes one unsigned operand; `|w| ≤ 128`
///   and `|x| ≤ 127` keep each pair below 2^15 — then `vpmaddwd` by ones.
/// Then `group += float(acc) · input scale` per block and `total += group · scales` per weight
/// group (the 16 rows' f16 scales, or Q4_K/Q5_K's `d · scale` from their 6-bit fields). Codes
/// with a minimum (GGUF Q4_1, Q5_1, Q4_K, Q5_K: `W = scale · code + minimum`) start the
/// accumulator at 0 and add `minimum · Σ x` per group, `Σ x` being `Σ input scale · Σ code`
/// over its blocks. Q6_K's groups of 16 have int8 scales: they are the `vpmaddwd` multiplier
/// (in place of ones), the zero 32 enters as `−32 · scale · Σ x` per group from the input's
/// half-block sums, and the f16 `d` scales the super-block. Per 64 weights that is ~9
/// instructions at 4 bits, ~15–16 at 5 and 8 bits and ~20 at 6, where the f32 kernels take 32
/// (40–48 at 5 and 6 bits).
///
/// Prompts and batches take 4 (then 2, then 1) tokens per pass over a row block: the codes are
/// loaded and unpacked once per pass, the group parameters read once. Each token's integer
/// sums and float steps are the same as alone, so G samples decode each exactly as alone.
/// Rows past the last whole block (`blockedRows ..< rows`) take `int8TailRow`, the same sums in
/// scalar code.
extension Linear {
  /// Prefetch distance of a thread's stream, in bytes: about 1 µs of reading ahead.
  static let rowBlockPrefetchDistance = 4096

  /// Rows `rows` (starting at a row block) of `m` times `tokens` prepared token rows: a row
  /// block at a time, and within it 4, then 2, then 1 tokens per pass (prompts and batches).
  static func streamInt8RowBlocks(
    _ m: QuantizedMatrix, _ rows: Range<Int>, _ x: Int8Input, _ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    precondition(m.rowBlocked && rows.lowerBound % QuantizedMatrix.rowBlock == 0, "row ranges of a row-blocked matrix start at a block")
    var r = rows.lowerBound
    while r + QuantizedMatrix.rowBlock <= min(rows.upperBound, m.blockedRows) {
      var t = 0
      while t + 4 <= tokens {
        int8RowBlockTokens(m, r, x, t, y, ldy, count: 4)
        t += 4
      }
      if t + 2 <= tokens {
        int8RowBlockTokens(m, r, x, t, y, ldy, count: 2)
        t += 2
      }
      if t < tokens { int8RowBlockTokens(m, r, x, t, y, ldy, count: 1) }
      r += QuantizedMatrix.rowBlock
    }
    while r < rows.upperBound {
      for t in 0..<tokens { y[t * ldy + r] = int8TailRow(m, r, x, t) }
      r += 1
    }
  }

  /// One row block (16 rows from `r`) times `count` (1, 2 or 4) prepared token rows from `first`.
  @inline(__always)
  static func int8RowBlockTokens(
    _ m: QuantizedMatrix, _ r: Int, _ x: Int8Input, _ first: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, count: Int
  ) {
    @inline(__always) func run<C: QuantizedCodes>(_ codes: C.Type) {
      switch count {
      case 4: int8RowBlockTile(C.self, FourTokens.self, m, r, x, first, y, ldy)
      case 2: int8RowBlockTile(C.self, TwoTokens.self, m, r, x, first, y, ldy)
      default: int8RowBlockTile(C.self, OneToken.self, m, r, x, first, y, ldy)
      }
    }
    switch m.bits {
    case 8: run(EightBitCodes.self)
    case 5: run(FiveBitCodes.self)
    case 6: run(SixBitCodes.self)
    default: run(FourBitCodes.self)
    }
  }

  /// One row block (16 rows from `r`: the lanes of two 8-lane vectors) times `tokens` prepared
  /// token rows from `first`, written to `y`. Each 32 bytes of codes are loaded and unpacked once
  /// and multiplied with every token's input; the group parameters are read once per group.
  @inline(__always)
  static func int8RowBlockTile<C: QuantizedCodes, N: RowBlockTokens>(
    _: C.Type, _: N.Type, _ m: QuantizedMatrix, _ r: Int, _ x: Int8Input, _ first: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    let n = N.count
    let codes = UnsafeRawPointer(m.codes + r &* m.rowBytes)
    let parameters = UnsafeRawPointer(m.groupParameters + r &* m.parameterRowBytes)
    let input = UnsafeRawPointer(x.codes + first &* x.codeStride), codeStride = x.codeStride
    let laneStride = x.laneStride
    let inputScales = x.scales + first &* laneStride
    let inputSums = UnsafeRawPointer(x.sums + first &* laneStride)
    let blocks = m.columns / Int8Input.block
    let zero = _mm256_setzero_si256()
    let ones = _mm256_set1_epi16(1), nibbles = _mm256_set1_epi8(0x0F), signBit = _mm256_set1_epi8(-128)
    @inline(__always) func load(_ offset: Int) -> __m256i {
      unsafeBitCast((codes + offset).loadUnaligned(as: SIMD32<UInt8>.self), to: __m256i.self)
    }
    @inline(__always) func broadcast(_ t: Int, _ column: Int) -> __m256i {
      _mm256_set1_epi32(input.loadUnaligned(fromByteOffset: t &* codeStride &+ column, as: Int32.self))
    }
    // Input block sum (of codes) of token `t`; Q6_K's half-block sums follow the block sums.
    @inline(__always) func inputSum(_ t: Int, _ index: Int) -> Int32 {
      inputSums.load(fromByteOffset: (t &* laneStride &+ index) &* 4, as: Int32.self)
    }
    // The high bits of nibble load `position` of a plane half (bits `w·p ..< w·p + w` of every
    // byte, p = position, w = bits − 4) moved to bit 4 and up. 16-bit shifts keep each byte's
    // bits in that byte: the mask drops what crossed.
    let width = C.bits == 8 ? 0 : C.bits - 4
    let highMask = _mm256_set1_epi8(C.bits == 6 ? 0x30 : 0x10)
    @inline(__always) func highBits(_ half: __m256i, _ position: Int) -> __m256i {
      let from = width &* position
      return _mm256_and_si256(from <= 4 ? _mm256_slli_epi16(half, Int32(4 &- from)) : _mm256_srli_epi16(half, Int32(from &- 4)), highMask)
    }
    @inline(__always) func float(_ v: __m256i) -> SIMD8<Float> { unsafeBitCast(_mm256_cvtepi32_ps(v), to: SIMD8<Float>.self) }
    @inline(__always) func halves(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>) {
      let half = unsafeBitCast(p.loadUnaligned(as: SIMD16<UInt16>.self), to: (__m128i, __m128i).self)
      return (unsafeBitCast(_mm256_cvtph_ps(half.0), to: SIMD8<Float>.self), unsafeBitCast(_mm256_cvtph_ps(half.1), to: SIMD8<Float>.self))
    }
    // Columns per float scale: a group, or for Q6_K a super-block (its groups' int8 scales
    // multiply inside the integer sums, `d` outside).
    let form = m.form, minimum = form.addsMinimum
    let span = form == .superBlockScale ? QuantizedMatrix.GroupParameters.superBlock : m.groupSize
    // Scales (and minima, else zero) of float group `g` for rows 0–7 and 8–15.
    @inline(__always) func groupParameters(_ g: Int) -> (scale: (SIMD8<Float>, SIMD8<Float>), minimum: (SIMD8<Float>, SIMD8<Float>)) {
      switch form {
      case .superBlockScale:
        return (halves(parameters + g &* 16 &* form.byteCount), (SIMD8(), SIMD8()))
      case .superBlockScaleAndMinimum:
        // As `QuantizedMatrix.superBlockParameters`: d · scale and −(dmin · minimum).
        let base = parameters + g / 8 &* 16 &* form.byteCount, k = g % 8
        let (d0, d1) = halves(base), (dmin0, dmin1) = halves(base + 32)
        @inline(__always) func fields(_ h: Int) -> (__m256i, __m256i) {
          @inline(__always) func word(_ offset: Int) -> __m256i {
            unsafeBitCast((base + (offset &+ 32 &* h)).loadUnaligned(as: SIMD8<UInt32>.self), to: __m256i.self)
          }
          let a = word(64), b = word(128)
          if k < 4 {
            let six = _mm256_set1_epi32(63), shift = Int32(8 &* k)
            return (_mm256_and_si256(_mm256_srli_epi32(a, shift), six), _mm256_and_si256(_mm256_srli_epi32(b, shift), six))
          }
          let c = word(192), four = _mm256_set1_epi32(15), three = _mm256_set1_epi32(3), shift = Int32(8 &* (k &- 4))
          let low = (_mm256_and_si256(_mm256_srli_epi32(c, shift), four), _mm256_and_si256(_mm256_srli_epi32(c, shift &+ 4), four))
          let high = (_mm256_and_si256(_mm256_srli_epi32(a, shift &+ 6), three), _mm256_and_si256(_mm256_srli_epi32(b, shift &+ 6), three))
          return (_mm256_or_si256(low.0, _mm256_slli_epi32(high.0, 4)), _mm256_or_si256(low.1, _mm256_slli_epi32(high.1, 4)))
        }
        let (scale0, minimum0) = fields(0), (scale1, minimum1) = fields(1)
        return ((d0 * float(scale0), d1 * float(scale1)), (-(dmin0 * float(minimum0)), -(dmin1 * float(minimum1))))
      default:
        let perGroup = form.byteCount / 2
        let scale = halves(parameters + g &* perGroup &* 32)
        return (scale, minimum ? halves(parameters + (g &* perGroup &+ 1) &* 32) : (SIMD8(), SIMD8()))
      }
    }
    // Q6_K: the int8 scales of group `g` (of 16 columns) of the super-block at `base`, rows 0–7
    // and 8–15, each as a 16-bit pair per 32-bit lane (the multiplier of `vpmaddwd`).
    @inline(__always) func scalePairs(_ base: UnsafeRawPointer, _ g: Int) -> (__m256i, __m256i) {
      let low16 = _mm256_set1_epi32(0xFFFF)
      @inline(__always) func pairs(_ offset: Int) -> __m256i {
        let v = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128((base + offset).loadUnaligned(as: Int64.self)))
        return _mm256_or_si256(_mm256_and_si256(v, low16), _mm256_slli_epi32(v, 16))
      }
      return (pairs(32 &+ 16 &* g), pairs(40 &+ 16 &* g))
    }
    // Per token: the two halves' running totals, and within a group and block the float group
    // sums, the sums of the inputs (forms with a minimum), the 16-bit pair sums and the 32-bit
    // block sums.
    var total0 = InlineArray<4, SIMD8<Float>>(repeating: SIMD8()), total1 = total0
    let perGroup = span / Int8Input.block
    var block = 0, offset = 0, g = 0
    while block < blocks {
      let groupEnd = min(block &+ perGroup, blocks)
      var group0 = InlineArray<4, SIMD8<Float>>(repeating: SIMD8()), group1 = group0
      var sum = InlineArray<4, Float>(repeating: 0)
      while block < groupEnd {
        let column = block &* Int8Input.block
        var acc0 = InlineArray<4, __m256i>(repeating: zero), acc1 = acc0
        if C.bits != 8 {
          for t in 0..<n {
            let codeSum = inputSum(t, block)
            if minimum { sum[t].addProduct(inputScales[t &* laneStride &+ block], Float(codeSum)) }
            if !minimum && C.bits != 6 {
              acc0[t] = _mm256_set1_epi32(-Int32(1 << (C.bits - 1)) &* codeSum)
              acc1[t] = acc0[t]
            }
          }
          // 5 and 6 bits: the block's planes (the codes' high bits), after its nibbles.
          var plane = (zero, zero, zero, zero)
          if width > 0 {
            bitbudget_prefetch(codes + (offset &+ 256 &+ rowBlockPrefetchDistance))
            plane.0 = load(offset &+ 256)
            plane.1 = load(offset &+ 288)
            if width == 2 {
              bitbudget_prefetch(codes + (offset &+ 320 &+ rowBlockPrefetchDistance))
              plane.2 = load(offset &+ 320)
              plane.3 = load(offset &+ 352)
            }
          }
          // Q6_K: the super-block's parameters (its groups' int8 scales, loaded per group below).
          let superBlock = parameters + block / 8 &* 16 &* m.form.byteCount
          var scales = (zero, zero)
          var pairs0 = InlineArray<4, __m256i>(repeating: zero), pairs1 = pairs0
          for octet in 0..<4 {
            bitbudget_prefetch(codes + (offset &+ rowBlockPrefetchDistance))
            let v0 = load(offset), v1 = load(offset &+ 32)
            offset &+= 64
            var low0 = _mm256_and_si256(v0, nibbles), high0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nibbles)
            var low1 = _mm256_and_si256(v1, nibbles), high1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nibbles)
            if width > 0 {
              // Plane half of this octet, and the position of its first nibble load there.
              let half: __m256i
              switch width == 1 ? octet / 2 : octet {
              case 0: half = plane.0
              case 1: half = plane.1
              case 2: half = plane.2
              default: half = plane.3
              }
              let position = width == 1 ? 4 &* (octet % 2) : 0
              low0 = _mm256_or_si256(low0, highBits(half, position))
              high0 = _mm256_or_si256(high0, highBits(half, position &+ 1))
              low1 = _mm256_or_si256(low1, highBits(half, position &+ 2))
              high1 = _mm256_or_si256(high1, highBits(half, position &+ 3))
            }
            for t in 0..<n {
              let low = broadcast(t, column &+ 8 &* octet), high = broadcast(t, column &+ 8 &* octet &+ 4)
              pairs0[t] = _mm256_add_epi16(pairs0[t], _mm256_add_epi16(_mm256_maddubs_epi16(low0, low), _mm256_maddubs_epi16(high0, high)))
              pairs1[t] = _mm256_add_epi16(pairs1[t], _mm256_add_epi16(_mm256_maddubs_epi16(low1, low), _mm256_maddubs_epi16(high1, high)))
            }
            // Widen before 16 bits could overflow: after 8 products of codes ≤ 15, 2 of codes ≤ 63
            // (Q6_K: times its group's scale); 5-bit codes after 2 too (see the type's comment).
            if C.bits == 6 {
              if octet % 2 == 0 {
                // A new group of 16: its scale pairs, and `−32 · scale · Σ x` (madd by −Σx gives
                // −2 · scale · Σx per lane; |Σx| ≤ 16 · 127 fits 16 bits).
                let half = octet / 2
                scales = scalePairs(superBlock, block % 8 &* 2 &+ half)
                for t in 0..<n {
                  let negated = _mm256_set1_epi16(Int16(truncatingIfNeeded: -inputSum(t, blocks &+ 2 &* block &+ half)))
                  acc0[t] = _mm256_add_epi32(acc0[t], _mm256_slli_epi32(_mm256_madd_epi16(scales.0, negated), 4))
                  acc1[t] = _mm256_add_epi32(acc1[t], _mm256_slli_epi32(_mm256_madd_epi16(scales.1, negated), 4))
                }
              }
              for t in 0..<n {
                acc0[t] = _mm256_add_epi32(acc0[t], _mm256_madd_epi16(pairs0[t], scales.0))
                acc1[t] = _mm256_add_epi32(acc1[t], _mm256_madd_epi16(pairs1[t], scales.1))
                pairs0[t] = zero
                pairs1[t] = zero
              }
            } else if octet == 3 || C.bits == 5 {
              for t in 0..<n {
                acc0[t] = _mm256_add_epi32(acc0[t], _mm256_madd_epi16(pairs0[t], ones))
                acc1[t] = _mm256_add_epi32(acc1[t], _mm256_madd_epi16(pairs1[t], ones))
                pairs0[t] = zero
                pairs1[t] = zero
              }
            }
          }
          offset &+= 64 &* width
        } else {
          for quad in 0..<8 {
            bitbudget_prefetch(codes + (offset &+ rowBlockPrefetchDistance))
            let w0 = _mm256_xor_si256(load(offset), signBit), w1 = _mm256_xor_si256(load(offset &+ 32), signBit)
            let magnitude0 = _mm256_abs_epi8(w0), magnitude1 = _mm256_abs_epi8(w1)
            offset &+= 64
            for t in 0..<n {
              let b = broadcast(t, column &+ 4 &* quad)
              acc0[t] = _mm256_add_epi32(acc0[t], _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude0, _mm256_sign_epi8(b, w0)), ones))
              acc1[t] = _mm256_add_epi32(acc1[t], _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude1, _mm256_sign_epi8(b, w1)), ones))
            }
          }
        }
        for t in 0..<n {
          let scale = SIMD8<Float>(repeating: inputScales[t &* laneStride &+ block])
          group0[t].addProduct(float(acc0[t]), scale)
          group1[t].addProduct(float(acc1[t]), scale)
        }
        block &+= 1
      }
      let (scale, added) = groupParameters(g)
      for t in 0..<n {
        total0[t].addProduct(group0[t], scale.0)
        total1[t].addProduct(group1[t], scale.1)
        if minimum {
          total0[t].addProduct(added.0, SIMD8(repeating: sum[t]))
          total1[t].addProduct(added.1, SIMD8(repeating: sum[t]))
        }
      }
      g &+= 1
    }
    for t in 0..<n {
      let out = UnsafeMutableRawPointer(y + ((first &+ t) &* ldy &+ r))
      out.storeBytes(of: total0[t], as: SIMD8<Float>.self)
      out.storeBytes(of: total1[t], toByteOffset: 32, as: SIMD8<Float>.self)
    }
  }

  /// A row past the last whole row block (row-major) times prepared token row `t`: the same
  /// products as `int8RowBlockTile` in scalar code, per group and block of 32 (a Q6_K group is half
  /// a block).
  static func int8TailRow(_ m: QuantizedMatrix, _ r: Int, _ x: Int8Input, _ t: Int) -> Float {
    let input = x.codes + t * x.codeStride, inputScales = x.scales + t * x.laneStride
    let zero = Int32(m.rowBlockZero ?? 0)
    var total: Float = 0
    for g in 0..<m.groups {
      var group: Float = 0, sum: Float = 0
      var column = g * m.groupSize
      let end = min(column + m.groupSize, m.columns)
      while column < end {
        let block = column / Int8Input.block, pieceEnd = min(end, (block + 1) * Int8Input.block)
        var acc: Int32 = 0, codeSum: Int32 = 0
        for c in column..<pieceEnd {
          acc += Int32(m.code(row: r, column: c)) * Int32(input[c])
          codeSum += Int32(input[c])
        }
        group.addProduct(Float(acc - zero * codeSum), inputScales[block])
        sum.addProduct(inputScales[block], Float(codeSum))
        column = pieceEnd
      }
      let (scale, second) = m.parameters(row: r, group: g)
      total.addProduct(group, scale)
      if m.form.addsMinimum { total.addProduct(second, sum) }
    }
    return total
  }
}
#endif
