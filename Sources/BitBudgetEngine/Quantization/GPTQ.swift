import BitBudgetKernels
import Foundation

/// GPTQ (Frantar et al. 2022) for one linear layer, following AutoGPTQ's `GPTQ.fasterquant`
/// (`algorithms.md` §6.2): quantize columns left to right, spreading each column's rounding
/// error over the columns not yet quantized through the upper Cholesky factor of the inverse
/// Hessian, in lazy blocks of 128 columns.
///
/// Deviations, on purpose: group scales are rounded to f16 before the codes are chosen (the
/// stored scale is the one the error feedback used); act-order ties are broken by column index
/// (torch's `argsort` leaves them unspecified); the Hessian is accumulated as a sum and scaled
/// by `2 / sequences` once at the end (AutoGPTQ rescales after every batch: same value, other
/// rounding).
public enum GPTQ {
  /// Settings of `fasterquant`.
  public struct Options: Sendable, Equatable {
    public var quantization: WeightQuantization
    /// Dampening as a fraction of the mean Hessian diagonal (`damp_percent`).
    public var dampening: Double = 0.01
    /// Added to `dampening` and retried when the Hessian is not positive definite (GPTQModel's
    /// `damp_auto_increment`).
    public var dampeningIncrement: Double = 0.0025
    /// Quantize columns in order of decreasing Hessian diagonal (`desc_act`).
    public var actOrder = false
    public var blockSize = 128

    public init(quantization: WeightQuantization, dampening: Double = 0.01, actOrder: Bool = false) {
      self.quantization = quantization
      self.dampening = dampening
      self.actOrder = actOrder
    }
  }

  /// `Σ x xᵀ` over the input rows a layer saw, and the number of calibration sequences.
  public final class Hessian: @unchecked Sendable {
    public let dimension: Int
    /// `[dimension, dimension]`; only one triangle is summed until `matrix()`.
    private var sum: [Float]
    public private(set) var sequences = 0

    public init(dimension: Int) {
      self.dimension = dimension
      sum = [Float](repeating: 0, count: dimension * dimension)
    }

    /// Adds `count` rows (`[count, stride]`, the first `dimension` values of each). Cost: one
    /// rank-`count` update (BLAS `ssyrk`).
    public func add(_ rows: UnsafePointer<Float>, stride: Int, count: Int) throws {
      guard count > 0 else { return }
      let blas = try LinearAlgebra.shared()
      var n = Int32(dimension), k = Int32(count), lda = Int32(stride), ldc = Int32(dimension)
      var alpha: Float = 1, beta: Float = 1
      // Row-major [count, stride] is column-major [stride, count]: A·Aᵀ sums x xᵀ.
      sum.withUnsafeMutableBufferPointer { c in
        blas.ssyrk("U", "N", &n, &k, &alpha, rows, &lda, &beta, c.baseAddress!, &ldc)
      }
    }

    /// Counts one more calibration sequence.
    public func finishSequence() { sequences += 1 }

    /// `H = 2/sequences · Σ x xᵀ`, both triangles.
    public func matrix() -> [Float] {
      let n = dimension
      let scale = 2 / Float(max(1, sequences))
      var h = sum
      for i in 0..<n {
        for j in 0..<i { h[j * n + i] = h[i * n + j] }  // column-major upper = row-major lower
      }
      for i in 0..<(n * n) { h[i] *= scale }
      return h
    }
  }

  /// What quantizing one layer did.
  public struct Result {
    public let storage: QuantizedMatrixStorage
    /// `Σ (w − q)² / d²` / 2 over the layer, as AutoGPTQ logs it.
    public let loss: Double
    /// The dampening that made the Hessian positive definite.
    public let dampening: Double
  }

  /// What GPTQ derives from a Hessian alone, shared by the layers that read the same input
  /// (q, k, v; gate, up): dead inputs, the column order, and the upper Cholesky factor of the
  /// damped inverse.
  public struct PreparedHessian: Sendable {
    public let columns: Int
    /// Inputs never active in calibration (their weights are zeroed).
    let dead: [Int]
    /// Stored column `j` is input `order[j]` (the identity without act-order).
    let order: [Int]
    let actOrder: Bool
    /// Row-major `[columns, columns]` upper triangular, in `order`.
    let upper: [Float]
    /// The dampening that made the Hessian positive definite.
    public let dampening: Double
  }

  /// Factorizes the Hessian `h` (`[columns, columns]`). Cost: three O(columns³) LAPACK calls
  /// (more if dampening must be raised); memory: three copies of `h`.
  public static func prepare(hessian h: [Float], columns: Int, options: Options) throws -> PreparedHessian {
    guard h.count == columns * columns else { throw EngineError.invalidInput("GPTQ: the Hessian is not [\(columns), \(columns)]") }
    let blas = try LinearAlgebra.shared()
    var hessian = h
    var dead: [Int] = []
    for i in 0..<columns where hessian[i * columns + i] == 0 {
      hessian[i * columns + i] = 1
      dead.append(i)
    }
    // Act-order: columns by decreasing Hessian diagonal.
    var order = Array(0..<columns)
    if options.actOrder {
      order.sort { hessian[$0 * columns + $0] > hessian[$1 * columns + $1] || (hessian[$0 * columns + $0] == hessian[$1 * columns + $1] && $0 < $1) }
      let original = hessian
      for i in 0..<columns { for j in 0..<columns { hessian[i * columns + j] = original[order[i] * columns + order[j]] } }
    }
    var diagonalMean = 0.0
    for i in 0..<columns { diagonalMean += Double(hessian[i * columns + i]) }
    diagonalMean /= Double(columns)
    var dampening = options.dampening
    while true {
      if let upper = inverseCholeskyUpper(hessian, columns, damp: Float(dampening * diagonalMean), blas) {
        return PreparedHessian(columns: columns, dead: dead, order: order, actOrder: options.actOrder, upper: upper, dampening: dampening)
      }
      dampening += options.dampeningIncrement
      guard dampening < 1 else {
        throw EngineError.numericalFailure("GPTQ: the Hessian stays singular with dampening up to 1 (too little calibration data for this layer?)")
      }
    }
  }

  /// Quantizes `weight` (`[rows, columns]`, f32 row-major) with the Hessian `h` (`[columns,
  /// columns]`). Cost: O(columns³) for the factorizations (LAPACK), O(rows · columns²) for the
  /// error feedback (BLAS); memory: a few copies of `h` and one of the weight.
  public static func quantize(
    weight original: UnsafePointer<Float>, rows: Int, columns: Int, hessian h: [Float], options: Options
  ) throws -> Result {
    try quantize(weight: original, rows: rows, prepared: prepare(hessian: h, columns: columns, options: options), options: options)
  }

  /// Quantizes `weight` (`[rows, prepared.columns]`) with a factorized Hessian. Cost:
  /// O(rows · columns²) (BLAS); memory: two copies of the weight.
  public static func quantize(
    weight original: UnsafePointer<Float>, rows: Int, prepared: PreparedHessian, options: Options
  ) throws -> Result {
    let columns = prepared.columns
    let q = options.quantization
    let groupSize = q.groupSize(columns: columns)
    let blas = try LinearAlgebra.shared()
    if let problem = q.layoutError(columns: columns) { throw EngineError.unsupported("GPTQ: \(problem)") }
    let maxq = Float((1 << q.bits) - 1)
    let order = prepared.order, upper = prepared.upper, dampening = prepared.dampening
    var w = [Float](repeating: 0, count: rows * columns)
    for r in 0..<rows { for j in 0..<columns { w[r * columns + j] = original[r * columns + order[j]] } }
    if !prepared.dead.isEmpty {
      var position = [Int](repeating: 0, count: columns)
      for j in 0..<columns { position[order[j]] = j }
      for i in prepared.dead { for r in 0..<rows { w[r * columns + position[i]] = 0 } }
    }

    var scales = [Float](repeating: 0, count: rows * ((columns + groupSize - 1) / groupSize))
    var zeros = scales
    var codes = [UInt8](repeating: 0, count: rows * columns)
    let groups = (columns + groupSize - 1) / groupSize
    var loss = 0.0
    let block = options.blockSize
    var i1 = 0
    var w1 = [Float](repeating: 0, count: rows * block)
    var errors = [Float](repeating: 0, count: rows * block)
    var column = [Float](repeating: 0, count: rows)
    while i1 < columns {
      let i2 = min(i1 + block, columns), count = i2 - i1
      for r in 0..<rows { for i in 0..<count { w1[r * block + i] = w[r * columns + i1 + i] } }
      for i in 0..<count {
        let col = i1 + i
        let d = upper[col * columns + col]
        if col % groupSize == 0 {
          // Parameters from W as of the block start (AutoGPTQ reads W, not the updated W1).
          let g = col / groupSize, width = min(groupSize, columns - col)
          w.withUnsafeBufferPointer { wp in
            for r in 0..<rows {
              let (scale, zero) = WeightQuantizer.parameters(wp.baseAddress! + r * columns + col, count: width, bits: q.bits, symmetric: q.symmetric)
              scales[r * groups + g] = scale
              zeros[r * groups + g] = zero
            }
          }
        }
        let g = col / groupSize
        for r in 0..<rows {
          let value = w1[r * block + i]
          let scale = scales[r * groups + g], zero = zeros[r * groups + g]
          let code = WeightQuantizer.code(value, scale: scale, zero: zero, maxq: maxq)
          codes[r * columns + col] = UInt8(code)
          let quantized = scale * (Float(code) - zero)
          let error = (value - quantized) / d
          loss += Double((value - quantized) * (value - quantized) / (d * d)) / 2
          column[r] = error
          errors[r * block + i] = error
        }
        // Spread the error over the rest of the block.
        upper.withUnsafeBufferPointer { u in
          let hrow = u.baseAddress! + col * columns + i1
          w1.withUnsafeMutableBufferPointer { wb in
            for r in 0..<rows {
              let e = column[r]
              let row = wb.baseAddress! + r * block
              for j in (i + 1)..<max(i + 1, count) { row[j] -= e * hrow[j] }
            }
          }
        }
      }
      // Lazy batch update of every later column: W[:, i2:] -= Err · U[i1:i2, i2:].
      if i2 < columns {
        var m = Int32(columns - i2), n = Int32(rows), k = Int32(count)
        var lda = Int32(columns), ldb = Int32(block), ldc = Int32(columns)
        var alpha: Float = -1, beta: Float = 1
        upper.withUnsafeBufferPointer { u in
          errors.withUnsafeBufferPointer { e in
            w.withUnsafeMutableBufferPointer { wp in
              blas.sgemm("N", "N", &m, &n, &k, &alpha, u.baseAddress! + i1 * columns + i2, &lda, e.baseAddress!, &ldb, &beta, wp.baseAddress! + i2, &ldc)
            }
          }
        }
      }
      i1 = i2
    }

    let storage = QuantizedMatrixStorage(
      rows: rows, columns: columns, bits: q.bits, groupSize: groupSize, form: q.heldForm, reordersInput: prepared.actOrder
    ) { packed, parameters, inputOrder in
      if let inputOrder { for j in 0..<columns { inputOrder[j] = Int32(order[j]) } }
      let rowBytes = columns * q.bits / 8
      for r in 0..<rows {
        for j in 0..<columns { QuantizedMatrix.setCode(Int(codes[r * columns + j]), column: j, bits: q.bits, in: packed + r * rowBytes) }
        for g in 0..<groups {
          q.store(scale: scales[r * groups + g], zero: zeros[r * groups + g], group: r * groups + g, in: parameters)
        }
      }
    }
    return Result(storage: storage, loss: loss, dampening: dampening)
  }

  /// The upper triangular `U` with `(H + damp·I)⁻¹ = Uᵀ U`, row-major, as AutoGPTQ computes it
  /// (`cholesky` → `cholesky_inverse` → `cholesky(upper=True)`), or nil when `H + damp·I` is not
  /// positive definite.
  static func inverseCholeskyUpper(_ h: [Float], _ n: Int, damp: Float, _ lapack: LinearAlgebra) -> [Float]? {
    var a = h
    for i in 0..<n { a[i * n + i] += damp }
    var size = Int32(n), lda = Int32(n), info: Int32 = 0
    // Symmetric, so row- and column-major agree; LAPACK's lower triangle is the row-major upper.
    lapack.spotrf("L", &size, &a, &lda, &info)
    guard info == 0 else { return nil }
    lapack.spotri("L", &size, &a, &lda, &info)
    guard info == 0 else { return nil }
    lapack.spotrf("L", &size, &a, &lda, &info)
    guard info == 0 else { return nil }
    // Column-major lower L (H⁻¹ = L Lᵀ) read row-major is Lᵀ = U; clear the other triangle.
    for i in 0..<n { for j in 0..<i { a[i * n + j] = 0 } }
    return a
  }
}
