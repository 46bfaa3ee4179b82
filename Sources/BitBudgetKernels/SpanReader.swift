/// A quantized row's group parameters read span by span (`QuantizedMatrix.span`: one group of
/// 64 or more columns, or one 64-column chunk of groups of 32 or 16), spread over the 16 lanes
/// of the dot-product accumulators: lane `l` holds columns `4l ..< 4l + 4`.
///
/// One type per parameter form (and per span shape where the form allows both), so that a
/// kernel specialized for a reader has no branch on the form in its loop. The int8 kernels use
/// them; `Linear.spanConstants` reads the same parameters behind one switch for the f32 kernels.
protocol SpanReader {
  /// Whether each span is one 64-column chunk.
  static var spanIsChunk: Bool { get }
  /// Adds span `s` of the row whose parameters start at `params`, given `acc = Σ code·x` and
  /// `sums = Σ x` over the span, lane by lane: `scaled += scale · (acc − zero · sums)`, or for
  /// the forms with a minimum `scaled += scale · acc` and `offsets += minimum · sums`.
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>)
}

/// `.scale(zero:)` in groups of 64 or more.
struct OneZeroGroups: SpanReader {
  let negativeZero: SIMD16<Float>
  init(zero: Int) { negativeZero = SIMD16(repeating: -Float(zero)) }
  static var spanIsChunk: Bool { false }
  @inline(__always)
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>
  ) {
    scaled.addProduct(SpanParameters.group(params, s), acc.addingProduct(negativeZero, sums))
  }
}

/// `.scale(zero:)` in groups of 32 (GGUF Q8_0, Q4_0, Q5_0).
struct OneZeroPairs: SpanReader {
  let negativeZero: SIMD16<Float>
  init(zero: Int) { negativeZero = SIMD16(repeating: -Float(zero)) }
  static var spanIsChunk: Bool { true }
  @inline(__always)
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>
  ) {
    scaled.addProduct(SpanParameters.pair(params, s), acc.addingProduct(negativeZero, sums))
  }
}

/// `.scaleAndZero` in groups of 64 or more.
struct ScaleAndZeroGroups: SpanReader {
  static var spanIsChunk: Bool { false }
  @inline(__always)
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>
  ) {
    let (scale, zero) = SpanParameters.groupPairs(params, s)
    scaled.addProduct(scale, acc.addingProduct(-zero, sums))
  }
}

/// `.scaleAndZero` in groups of 32.
struct ScaleAndZeroPairs: SpanReader {
  static var spanIsChunk: Bool { true }
  @inline(__always)
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>
  ) {
    let (scale, zero) = SpanParameters.pairOfPairs(params, s)
    scaled.addProduct(scale, acc.addingProduct(-zero, sums))
  }
}

/// `.scaleAndMinimum` in groups of 64 or more.
struct ScaleAndMinimumGroups: SpanReader {
  static var spanIsChunk: Bool { false }
  @inline(__always)
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>
  ) {
    let (scale, minimum) = SpanParameters.groupPairs(params, s)
    scaled.addProduct(scale, acc)
    offsets.addProduct(minimum, sums)
  }
}

/// `.scaleAndMinimum` in groups of 32 (GGUF Q4_1, Q5_1).
struct ScaleAndMinimumPairs: SpanReader {
  static var spanIsChunk: Bool { true }
  @inline(__always)
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>
  ) {
    let (scale, minimum) = SpanParameters.pairOfPairs(params, s)
    scaled.addProduct(scale, acc)
    offsets.addProduct(minimum, sums)
  }
}

/// `.superBlockScaleAndMinimum` (GGUF Q4_K, Q5_K).
struct SuperBlockScaleAndMinimum: SpanReader {
  static var spanIsChunk: Bool { true }
  @inline(__always)
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>
  ) {
    let (scale, minimum) = SpanParameters.superBlockScaleAndMinimum(params, s)
    scaled.addProduct(scale, acc)
    offsets.addProduct(minimum, sums)
  }
}

/// `.superBlockScale` (GGUF Q6_K, zero 32).
struct SuperBlockScale: SpanReader {
  static var spanIsChunk: Bool { true }
  @inline(__always)
  func close(
    _ params: UnsafeRawPointer, _ s: Int, _ acc: SIMD16<Float>, _ sums: SIMD16<Float>,
    _ scaled: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>
  ) {
    scaled.addProduct(SpanParameters.superBlockScale(params, s), acc.addingProduct(SIMD16(repeating: -32), sums))
  }
}

/// The parameter layouts, read into lanes. Each returns `(scale, second)` with `second` the zero,
/// or the (negated, for k-quants: `−dmin·minimum`) minimum.
enum SpanParameters {
  /// One f16 per group, broadcast.
  @inline(__always)
  static func group(_ params: UnsafeRawPointer, _ s: Int) -> SIMD16<Float> {
    SIMD16(repeating: f16ToFloat(params.loadUnaligned(fromByteOffset: s &* 2, as: UInt16.self)))
  }

  /// One f16 per group of 32: the chunk's two in lanes 0–7 and 8–15.
  @inline(__always)
  static func pair(_ params: UnsafeRawPointer, _ s: Int) -> SIMD16<Float> {
    let two = params.loadUnaligned(fromByteOffset: s &* 4, as: SIMD2<UInt16>.self)
    return SIMD16(lowHalf: SIMD8(repeating: f16ToFloat(two[0])), highHalf: SIMD8(repeating: f16ToFloat(two[1])))
  }

  /// Two f16 per group, each broadcast.
  @inline(__always)
  static func groupPairs(_ params: UnsafeRawPointer, _ s: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    let pair = params.loadUnaligned(fromByteOffset: s &* 4, as: SIMD2<UInt16>.self)
    return (SIMD16(repeating: f16ToFloat(pair[0])), SIMD16(repeating: f16ToFloat(pair[1])))
  }

  /// Two f16 per group of 32: the chunk's two groups' in lanes 0–7 and 8–15.
  @inline(__always)
  static func pairOfPairs(_ params: UnsafeRawPointer, _ s: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    let two = params.loadUnaligned(fromByteOffset: s &* 8, as: SIMD4<UInt16>.self)
    return (
      SIMD16(lowHalf: SIMD8(repeating: f16ToFloat(two[0])), highHalf: SIMD8(repeating: f16ToFloat(two[2]))),
      SIMD16(lowHalf: SIMD8(repeating: f16ToFloat(two[1])), highHalf: SIMD8(repeating: f16ToFloat(two[3])))
    )
  }

  /// The chunk's groups 2k and 2k + 1 of its super-block: 12 bits of scales, 12 of minima;
  /// second is `−dmin · minimum`.
  @inline(__always)
  static func superBlockScaleAndMinimum(_ params: UnsafeRawPointer, _ s: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    let header = params + s / 4 &* 16, shift = UInt64(12 &* (s % 4))
    let d = f16ToFloat(header.loadUnaligned(as: UInt16.self)), dmin = f16ToFloat(header.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
    let scales = header.loadUnaligned(fromByteOffset: 4, as: UInt64.self) >> shift
    let minima = header.loadUnaligned(fromByteOffset: 8, as: UInt64.self) >> (16 + shift)
    return (
      SIMD16(lowHalf: SIMD8(repeating: d * Float(scales & 63)), highHalf: SIMD8(repeating: d * Float(scales >> 6 & 63))),
      SIMD16(lowHalf: SIMD8(repeating: -(dmin * Float(minima & 63))), highHalf: SIMD8(repeating: -(dmin * Float(minima >> 6 & 63))))
    )
  }

  /// The chunk's groups 4k ..< 4k + 4 of its super-block, four lanes each (the zero is 32).
  @inline(__always)
  static func superBlockScale(_ params: UnsafeRawPointer, _ s: Int) -> SIMD16<Float> {
    let header = params + s / 4 &* 18
    let d = f16ToFloat(header.loadUnaligned(as: UInt16.self))
    let four = SIMD4<Float>(header.loadUnaligned(fromByteOffset: 2 &+ 4 &* (s % 4), as: SIMD4<Int8>.self)) * d
    return SIMD16<Float>(
      four[0], four[0], four[0], four[0], four[1], four[1], four[1], four[1],
      four[2], four[2], four[2], four[2], four[3], four[3], four[3], four[3])
  }
}

extension Linear {
  /// `SpanReader.constants` for a matrix's form, behind one switch (`pairs`: groups of 32).
  @inline(__always)
  static func spanConstants(
    _ params: UnsafeRawPointer, _ s: Int, pairs: Bool, form: QuantizedMatrix.GroupParameters
  ) -> (SIMD16<Float>, SIMD16<Float>) {
    let (scale, second) = spanParameters(params, s, pairs: pairs, form: form)
    return (scale, form.addsMinimum ? second : -(scale * second))
  }

  /// Scale and zero (or minimum) of span `s` of one row, as `spanConstants` spreads them;
  /// `pairs`: groups of 32 (ignored by the super-block forms, whose group size is fixed).
  @inline(__always)
  static func spanParameters(
    _ params: UnsafeRawPointer, _ s: Int, pairs: Bool, form: QuantizedMatrix.GroupParameters
  ) -> (SIMD16<Float>, SIMD16<Float>) {
    switch form {
    case .scale(let zero):
      return (pairs ? SpanParameters.pair(params, s) : SpanParameters.group(params, s), SIMD16(repeating: Float(zero)))
    case .scaleAndZero, .scaleAndMinimum:
      return pairs ? SpanParameters.pairOfPairs(params, s) : SpanParameters.groupPairs(params, s)
    case .superBlockScaleAndMinimum:
      return SpanParameters.superBlockScaleAndMinimum(params, s)
    case .superBlockScale:
      return (SpanParameters.superBlockScale(params, s), SIMD16(repeating: 32))
    }
  }
}
