/// How linear weights are quantized: bits, group size along the input dimension, symmetric or
/// not. The paper's setting is 4 or 8 bits, groups of 128, symmetric.
public struct WeightQuantization: Sendable, Equatable, CustomStringConvertible {
  public var bits: Int
  /// Columns per group; nil means one group per row (GPTQ's `group_size: -1`).
  public var groupSize: Int?
  public var symmetric: Bool

  public init(bits: Int, groupSize: Int? = 128, symmetric: Bool = true) {
    self.bits = bits
    self.groupSize = groupSize
    self.symmetric = symmetric
  }

  /// The group size for a matrix `columns` wide.
  public func groupSize(columns: Int) -> Int { groupSize ?? columns }

  /// How a matrix quantized this way is held: symmetric groups all have the zero `2^(bits−1)`,
  /// so only their f16 scales are kept (2 bytes per group, as GGUF's Q8_0 and Q4_0 keep them),
  /// else an f16 (scale, zero) pair per group.
  public var heldForm: QuantizedMatrix.GroupParameters {
    symmetric ? .scale(zero: 1 << (bits - 1)) : .scaleAndZero
  }

  /// Stores group `index`'s parameters (`parameters` of `heldForm`, as f16).
  @inline(__always)
  public func store(scale: Float, zero: Float, group index: Int, in parameters: UnsafeMutablePointer<UInt16>) {
    if symmetric {
      assert(zero == Float(1 << (bits - 1)), "a symmetric group's zero is 2^(bits-1)")
      parameters[index] = floatToF16(scale)
    } else {
      parameters[index * 2] = floatToF16(scale)
      parameters[index * 2 + 1] = floatToF16(zero)
    }
  }

  /// Why a `[rows, columns]` matrix cannot be quantized this way, or nil.
  public func layoutError(columns: Int) -> String? {
    QuantizedMatrix.layoutError(columns: columns, bits: bits, groupSize: groupSize(columns: columns))
  }

  public var description: String {
    "\(bits)-bit, " + (groupSize.map { "group \($0)" } ?? "per-channel") + (symmetric ? ", symmetric" : ", asymmetric")
  }
}

/// GPTQ's quantizer (`Quantizer.find_params` / `quantize` of AutoGPTQ) and round-to-nearest
/// (RTN) quantization of whole matrices.
///
/// One deviation from AutoGPTQ, on purpose: the scale is rounded to f16 *before* codes are made
/// (AutoGPTQ makes codes with the f32 scale and stores it as f16), so the stored (scale, code)
/// pairs dequantize to exactly the values the quantizer chose.
public enum WeightQuantizer {
  /// Scale (f16-representable) and zero of one group: `xmin = min(0, min x)`, `xmax = max(0,
  /// max x)`; symmetric: `xmax = max(|xmin|, xmax)`, `xmin = −xmax` if `xmin < 0`, zero
  /// `(maxq + 1) / 2`; asymmetric: zero `round(−xmin / scale)`; an all-zero group gets the range
  /// [−1, 1]. `scale = (xmax − xmin) / maxq`. Cost: one pass over `count` values.
  public static func parameters(
    _ values: UnsafePointer<Float>, count: Int, bits: Int, symmetric: Bool
  ) -> (scale: Float, zero: Float) {
    let maxq = Float((1 << bits) - 1)
    var low: Float = 0, high: Float = 0
    for i in 0..<count {
      low = min(low, values[i])
      high = max(high, values[i])
    }
    if symmetric {
      high = max(abs(low), high)
      if low < 0 { low = -high }
    }
    if low == 0 && high == 0 {
      low = -1
      high = 1
    }
    let scale = representableScale((high - low) / maxq)
    let zero = symmetric ? (maxq + 1) / 2 : (-low / scale).rounded(.toNearestOrEven)
    return (scale, min(max(zero, 0), maxq))
  }

  /// `scale` rounded to f16 (never to zero: a range too small for f16 gets its smallest step).
  @inline(__always)
  public static func representableScale(_ scale: Float) -> Float {
    let half = Float(Float16(scale))
    return half > 0 ? half : Float(Float16.leastNonzeroMagnitude)
  }

  /// `clamp(round(w / scale) + zero, 0, maxq)`, rounding half to even as torch does.
  @inline(__always)
  public static func code(_ w: Float, scale: Float, zero: Float, maxq: Float) -> Int {
    Int(min(max((w / scale).rounded(.toNearestOrEven) + zero, 0), maxq))
  }

  /// Round-to-nearest quantization of a whole matrix (per row, per group). Cost: two passes
  /// over the matrix; memory: the quantized result only.
  public static func roundToNearest(
    _ weight: DenseMatrix, _ quantization: WeightQuantization
  ) -> QuantizedMatrixStorage {
    let columns = weight.columns
    let groupSize = quantization.groupSize(columns: columns)
    let bits = quantization.bits
    let maxq = Float((1 << bits) - 1)
    let row = UnsafeMutablePointer<Float>.allocate(capacity: columns)
    defer { row.deallocate() }
    return QuantizedMatrixStorage(
      rows: weight.rows, columns: columns, bits: bits, groupSize: groupSize, form: quantization.heldForm, reordersInput: false
    ) { codes, groupParameters, _ in
      let groups = (columns + groupSize - 1) / groupSize
      let rowBytes = columns * bits / 8
      for r in 0..<weight.rows {
        weight.copyRow(r, into: row)
        for g in 0..<groups {
          let start = g * groupSize, count = min(groupSize, columns - start)
          let (scale, zero) = parameters(row + start, count: count, bits: bits, symmetric: quantization.symmetric)
          quantization.store(scale: scale, zero: zero, group: r * groups + g, in: groupParameters)
          for c in start..<(start + count) {
            QuantizedMatrix.setCode(
              code(row[c], scale: scale, zero: zero, maxq: maxq), column: c, bits: bits, in: codes + r * rowBytes)
          }
        }
      }
    }
  }
}
