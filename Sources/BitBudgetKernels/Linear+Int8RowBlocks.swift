// The AVX2 int8 kernels: for x86-64 CPUs without AVX-512 VNNI (which take the kernels of
// `Linear+Int8.swift` instead). `canImport(CAVX2)` is the gate; the module itself is never
// imported.
#if canImport(CAVX2) && !canImport(CAVX512VNNI)
internal import _Builtin_intrinsics.intel
import CPrefetch

/// Row-blocked 4-, 5- and 8-bit weights (`QuantizedMatrix.rowBlocked`) times int8 activations
/// (`Int8Input.prepareRowBlocks`), for decode, batches and prompts (`Linear.streamsPrompts`). A
/// row block's 16 rows are the lanes of two 8-lane accumulators. Per input block of 32 columns
/// and 8 rows, integer products are exact:
/// - 4 bits: per 8 columns one 32-byte load split into low and high nibbles, each multiplied
///   with the input's 4 codes broadcast by `vpmaddubsw` (code ≤ 15, |x| ≤ 127: a pair sums to at
///   most 3,810, so the block's eight products add up in 16 bits without saturating); one
///   `vpmaddwd` by ones per block widens them, and the accumulator starts at `−zero · Σ x`.
/// - 5 bits: the same nibbles, each OR-ed with its bit 4 from the block's plane (one shift and
///   one mask per 32 bytes: byte `i` of the plane sits under byte `i` of the nibbles); codes ≤ 31
///   make a pair up to 7,874, so `vpmaddwd` widens every two octets.
/// - 8 bits: per 4 columns one load; the codes minus 128 are the signed weights (`code ^ 0x80`),
///   multiplied as `|w| · (x · sign w)` — `vpmaddubsw` takes one unsigned operand; `|w| ≤ 128`
///   and `|x| ≤ 127` keep each pair below 2^15 — then `vpmaddwd` by ones.
/// Then `group += float(acc) · input scale` per block and `total += group · scales` per weight
/// group (the 16 rows' f16 scales). Codes with a scale and a minimum per group (GGUF Q4_1,
/// Q5_1: `W = scale · code + minimum`) start the accumulator at 0 and add `minimum · Σ x` per
/// group, `Σ x` being `Σ input scale · Σ code` over its blocks. Per 64 weights that is ~9
/// instructions at 4 bits, ~15 at 5 and 8 bits, where the f32 kernels take 32 (at 5 bits ~40).
///
/// Every token of a batch runs the same instructions alone, so G samples decode each exactly as
/// alone. Rows past the last whole block (`blockedRows ..< rows`) take `int8TailRow`, the same
/// sums in scalar code.
extension Linear {
  /// Prefetch distance of a thread's stream, in bytes: about 1 µs of reading ahead.
  static let rowBlockPrefetchDistance = 4096

  /// Rows `rows` (starting at a row block) of `m` times `tokens` prepared token rows.
  static func streamInt8RowBlocks(
    _ m: QuantizedMatrix, _ rows: Range<Int>, _ x: Int8Input, _ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int
  ) {
    precondition(m.rowBlocked && rows.lowerBound % QuantizedMatrix.rowBlock == 0, "row ranges of a row-blocked matrix start at a block")
    var r = rows.lowerBound
    while r + QuantizedMatrix.rowBlock <= min(rows.upperBound, m.blockedRows) {
      for t in 0..<tokens {
        let (low, high) =
          switch m.bits {
          case 8: int8RowBlock(EightBitCodes.self, m, r, x, t)
          case 5: int8RowBlock(FiveBitCodes.self, m, r, x, t)
          default: int8RowBlock(FourBitCodes.self, m, r, x, t)
          }
        let out = UnsafeMutableRawPointer(y + (t * ldy + r))
        out.storeBytes(of: low, as: SIMD8<Float>.self)
        out.storeBytes(of: high, toByteOffset: 32, as: SIMD8<Float>.self)
      }
      r += QuantizedMatrix.rowBlock
    }
    while r < rows.upperBound {
      for t in 0..<tokens { y[t * ldy + r] = int8TailRow(m, r, x, t) }
      r += 1
    }
  }

  /// One row block (16 rows from `r`) times prepared token row `t`: rows 0–7 and 8–15.
  @inline(__always)
  static func int8RowBlock<C: QuantizedCodes>(
    _: C.Type, _ m: QuantizedMatrix, _ r: Int, _ x: Int8Input, _ t: Int
  ) -> (SIMD8<Float>, SIMD8<Float>) {
    let codes = UnsafeRawPointer(m.codes + r &* m.rowBytes)
    let scales = UnsafeRawPointer(m.groupParameters + r &* m.parameterRowBytes)  // per group: 16 scales (then 16 minima)
    let input = UnsafeRawPointer(x.codes + t &* x.codeStride)
    let inputScales = x.scales + t &* x.laneStride
    let inputSums = UnsafeRawPointer(x.sums + t &* x.laneStride)
    let ones = _mm256_set1_epi16(1), nibbles = _mm256_set1_epi8(0x0F), signBit = _mm256_set1_epi8(-128)
    @inline(__always) func load(_ offset: Int) -> __m256i {
      unsafeBitCast((codes + offset).loadUnaligned(as: SIMD32<UInt8>.self), to: __m256i.self)
    }
    @inline(__always) func broadcast(_ column: Int) -> __m256i {
      _mm256_set1_epi32(input.loadUnaligned(fromByteOffset: column, as: Int32.self))
    }
    // Bit `n` of every byte of a plane half moved to bit 4 (16-bit shifts keep each byte's bits
    // in that byte: the mask drops what crossed).
    let bitFourMask = _mm256_set1_epi8(0x10)
    @inline(__always) func bitFour(_ half: __m256i, _ n: Int) -> __m256i {
      _mm256_and_si256(n <= 4 ? _mm256_slli_epi16(half, Int32(4 &- n)) : _mm256_srli_epi16(half, Int32(n &- 4)), bitFourMask)
    }
    @inline(__always) func float(_ v: __m256i) -> SIMD8<Float> { unsafeBitCast(_mm256_cvtepi32_ps(v), to: SIMD8<Float>.self) }
    // f16 parameter vector `index` (per group: scales, then minima) of the 16 rows, as f32.
    let minimum = m.form.addsMinimum, perParameter = m.form.byteCount / 2
    @inline(__always) func parameters(_ index: Int) -> (SIMD8<Float>, SIMD8<Float>) {
      let half = unsafeBitCast(scales.loadUnaligned(fromByteOffset: index &* 32, as: SIMD16<UInt16>.self), to: (__m128i, __m128i).self)
      return (unsafeBitCast(_mm256_cvtph_ps(half.0), to: SIMD8<Float>.self), unsafeBitCast(_mm256_cvtph_ps(half.1), to: SIMD8<Float>.self))
    }
    var total0 = SIMD8<Float>(), total1 = SIMD8<Float>()
    let blocks = m.columns / Int8Input.block, perGroup = m.groupSize / Int8Input.block
    var block = 0, offset = 0, g = 0
    while block < blocks {
      let groupEnd = min(block &+ perGroup, blocks)
      var group0 = SIMD8<Float>(), group1 = SIMD8<Float>()
      var sum: Float = 0
      while block < groupEnd {
        let column = block &* Int8Input.block
        var acc0: __m256i, acc1: __m256i
        if C.bits != 8 {
          let codeSum = inputSums.load(fromByteOffset: block &* 4, as: Int32.self)
          if minimum { sum.addProduct(inputScales[block], Float(codeSum)) }
          acc0 = _mm256_set1_epi32(minimum ? 0 : -Int32(1 << (C.bits - 1)) &* codeSum)
          acc1 = acc0
          // 5 bits: the block's plane (bit 4 of every code), two halves of 32 bytes after its nibbles.
          var plane = (_mm256_setzero_si256(), _mm256_setzero_si256())
          if C.bits == 5 {
            bitbudget_prefetch(codes + (offset &+ 256 &+ rowBlockPrefetchDistance))
            plane = (load(offset &+ 256), load(offset &+ 288))
          }
          var pairs0 = _mm256_setzero_si256(), pairs1 = pairs0
          for octet in 0..<4 {
            bitbudget_prefetch(codes + (offset &+ rowBlockPrefetchDistance))
            let v0 = load(offset), v1 = load(offset &+ 32)
            offset &+= 64
            let low = broadcast(column &+ 8 &* octet), high = broadcast(column &+ 8 &* octet &+ 4)
            var low0 = _mm256_and_si256(v0, nibbles), high0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nibbles)
            var low1 = _mm256_and_si256(v1, nibbles), high1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nibbles)
            if C.bits == 5 {
              let half = octet < 2 ? plane.0 : plane.1, n = 4 &* (octet % 2)
              low0 = _mm256_or_si256(low0, bitFour(half, n))
              high0 = _mm256_or_si256(high0, bitFour(half, n &+ 1))
              low1 = _mm256_or_si256(low1, bitFour(half, n &+ 2))
              high1 = _mm256_or_si256(high1, bitFour(half, n &+ 3))
            }
            pairs0 = _mm256_add_epi16(pairs0, _mm256_maddubs_epi16(low0, low))
            pairs0 = _mm256_add_epi16(pairs0, _mm256_maddubs_epi16(high0, high))
            pairs1 = _mm256_add_epi16(pairs1, _mm256_maddubs_epi16(low1, low))
            pairs1 = _mm256_add_epi16(pairs1, _mm256_maddubs_epi16(high1, high))
            // Widen before 16 bits could overflow: 8 products of codes ≤ 15, 4 of codes ≤ 31.
            if octet == 3 || (C.bits == 5 && octet == 1) {
              acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(pairs0, ones))
              acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(pairs1, ones))
              pairs0 = _mm256_setzero_si256()
              pairs1 = pairs0
            }
          }
          if C.bits == 5 { offset &+= 64 }
        } else {
          acc0 = _mm256_setzero_si256()
          acc1 = acc0
          for quad in 0..<8 {
            bitbudget_prefetch(codes + (offset &+ rowBlockPrefetchDistance))
            let w0 = _mm256_xor_si256(load(offset), signBit), w1 = _mm256_xor_si256(load(offset &+ 32), signBit)
            offset &+= 64
            let b = broadcast(column &+ 4 &* quad)
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w0), _mm256_sign_epi8(b, w0)), ones))
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w1), _mm256_sign_epi8(b, w1)), ones))
          }
        }
        let scale = SIMD8<Float>(repeating: inputScales[block])
        group0.addProduct(float(acc0), scale)
        group1.addProduct(float(acc1), scale)
        block &+= 1
      }
      let (scale0, scale1) = parameters(g &* perParameter)
      total0.addProduct(group0, scale0)
      total1.addProduct(group1, scale1)
      if minimum {
        let (minimum0, minimum1) = parameters(g &* perParameter &+ 1)
        total0.addProduct(minimum0, SIMD8(repeating: sum))
        total1.addProduct(minimum1, SIMD8(repeating: sum))
      }
      g &+= 1
    }
    return (total0, total1)
  }

  /// A row past the last whole row block (row-major) times prepared token row `t`: the same
  /// products as `int8RowBlock`, in scalar code.
  static func int8TailRow(_ m: QuantizedMatrix, _ r: Int, _ x: Int8Input, _ t: Int) -> Float {
    let input = x.codes + t * x.codeStride, inputScales = x.scales + t * x.laneStride
    let inputSums = UnsafeRawPointer(x.sums + t * x.laneStride).assumingMemoryBound(to: Int32.self)
    let zero = Int32(m.rowBlockZero ?? 0)
    var total: Float = 0
    var block = 0
    let blocks = m.columns / Int8Input.block, perGroup = m.groupSize / Int8Input.block
    for g in 0..<m.groups {
      var group: Float = 0, sum: Float = 0
      while block < min((g + 1) * perGroup, blocks) {
        var acc = -zero * inputSums[block]
        for c in (block * Int8Input.block)..<((block + 1) * Int8Input.block) { acc += Int32(m.code(row: r, column: c)) * Int32(input[c]) }
        group.addProduct(Float(acc), inputScales[block])
        sum.addProduct(inputScales[block], Float(inputSums[block]))
        block += 1
      }
      let (scale, second) = m.parameters(row: r, group: g)
      total.addProduct(group, scale)
      if m.form.addsMinimum { total.addProduct(second, sum) }
    }
    return total
  }
}
#endif
