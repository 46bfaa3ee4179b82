import BitBudgetTestSupport
import Testing

@testable import BitBudgetKernels

/// The quantized linear kernels against the scalar definition over the dequantized weights
/// (`scale · (code − zero)`, accumulated in Double), for 4 and 8 bits, symmetric and asymmetric,
/// groups that do and do not divide the width, act-order input orders, both paths and token
/// counts that exercise every kernel and remainder.
@Suite struct QuantizedLinearTests {
  /// A random dense f32 matrix and its RTN quantization.
  final class Quantized {
    let values: [Float]
    let storage: QuantizedMatrixStorage

    init(rows: Int, columns: Int, _ quantization: WeightQuantization, random: inout TestRandom, shuffled: Bool = false) {
      // Rows of different magnitudes, as real weights have.
      values = (0..<(rows * columns)).map { i in random.signedUnit() * Float(1 + (i / columns) % 5) * 0.1 }
      let dense = values.withUnsafeBytes {
        WeightQuantizer.roundToNearest(
          DenseMatrix(base: $0.baseAddress!, rows: rows, columns: columns, elementType: .f32), quantization)
      }
      guard shuffled else {
        storage = dense
        return
      }
      // The same codes with stored columns in a random input order (as act-order checkpoints).
      var order = Array(0..<columns)
      order.shuffle(using: &random)
      let m = dense.matrix
      storage = QuantizedMatrixStorage(
        rows: rows, columns: columns, bits: m.bits, groupSize: m.groupSize, reordersInput: true
      ) { codes, pairs, inputOrder in
        for j in 0..<columns { inputOrder![j] = Int32(order[j]) }
        for r in 0..<rows {
          for j in 0..<columns {
            QuantizedMatrix.setCode(m.code(row: r, column: j), column: j, bits: m.bits, in: codes + r * m.rowBytes)
          }
        }
        for i in 0..<(rows * m.groups * 2) { pairs[i] = m.groupParameters.load(fromByteOffset: 2 * i, as: UInt16.self) }
      }
    }

    var matrix: QuantizedMatrix { storage.matrix }
  }

  static let cases: [(rows: Int, columns: Int, quantization: WeightQuantization)] = [
    (37, 576, WeightQuantization(bits: 4, groupSize: 128)),
    (70, 128, WeightQuantization(bits: 8, groupSize: 64)),
    (33, 256, WeightQuantization(bits: 4, groupSize: nil, symmetric: false)),
    (64, 384, WeightQuantization(bits: 8, groupSize: 128, symmetric: false)),
  ]
  static let tokenCounts = [1, 2, 3, 4, 5, 8, 9, 13, 17, 32, 41]

  static func run(
    _ job: (UnsafeMutablePointer<Float>) -> LinearJob, rows: Int, input: [Float], stride: Int, tokens: Int,
    pool: ThreadPool, scratch: LinearScratch, path: Linear.Path?
  ) -> [Float] {
    var y = [Float](repeating: .nan, count: tokens * rows)
    input.withUnsafeBufferPointer { x in
      y.withUnsafeMutableBufferPointer { out in
        if let path {
          Linear.run([job(out.baseAddress!)], input: x.baseAddress!, inputStride: stride, tokens: tokens, pool: pool, scratch: scratch, path: path)
        } else {
          Linear.reference(job(out.baseAddress!), input: x.baseAddress!, inputStride: stride, tokens: tokens)
        }
      }
    }
    return y
  }

  @Test(arguments: [Linear.Path.streaming, .tiled], [false, true])
  func matchesReference(path: Linear.Path, shuffled: Bool) {
    var random = TestRandom(seed: 5)
    let pool = ThreadPool(threadCount: 2)
    for c in Self.cases {
      let weight = Quantized(rows: c.rows, columns: c.columns, c.quantization, random: &random, shuffled: shuffled)
      let bias = (0..<c.rows).map { _ in random.signedUnit() }
      let scratch = LinearScratch(threadCount: 2, maxColumns: c.columns, quantized: true)
      for tokens in Self.tokenCounts {
        let stride = c.columns + 5
        let input = (0..<(tokens * stride)).map { _ in random.signedUnit() }
        bias.withUnsafeBytes { b in
          let biasVector = WeightVector(base: b.baseAddress!, count: c.rows, elementType: .f32)
          let job = { (out: UnsafeMutablePointer<Float>) in
            LinearJob(weight: .quantized(weight.matrix), bias: biasVector, output: out, outputStride: c.rows)
          }
          let fast = Self.run(job, rows: c.rows, input: input, stride: stride, tokens: tokens, pool: pool, scratch: scratch, path: path)
          let slow = Self.run(job, rows: c.rows, input: input, stride: stride, tokens: tokens, pool: pool, scratch: scratch, path: nil)
          // f32 sums of ≤ 576 products of magnitude ≤ 0.5: rounding error ≲ 576 · 2⁻²⁴ · 0.5 · √576
          // ≈ 4e-4 at worst, typically 1e-5; one wrong code moves an output by ≥ one step (≥ 1e-3).
          let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? .nan
          #expect(worst < 2e-4, "\(c.quantization) \(path) shuffled \(shuffled) tokens \(tokens): max |Δ| \(worst)")
        }
      }
    }
  }

  /// Row t of a T-row streaming run equals, bit for bit, a run on row t alone.
  @Test(arguments: [false, true])
  func streamingOutputsDoNotDependOnTheBatch(shuffled: Bool) {
    var random = TestRandom(seed: 8)
    let pool = ThreadPool(threadCount: 2)
    for c in Self.cases {
      let weight = Quantized(rows: c.rows, columns: c.columns, c.quantization, random: &random, shuffled: shuffled)
      let scratch = LinearScratch(threadCount: 2, maxColumns: c.columns, quantized: true)
      let tokens = 17
      let input = (0..<(tokens * c.columns)).map { _ in random.signedUnit() }
      let job = { (out: UnsafeMutablePointer<Float>) in
        LinearJob(weight: .quantized(weight.matrix), output: out, outputStride: c.rows)
      }
      let alone = (0..<tokens).flatMap { t in
        Self.run(job, rows: c.rows, input: Array(input[(t * c.columns)..<((t + 1) * c.columns)]), stride: c.columns, tokens: 1, pool: pool, scratch: scratch, path: .streaming)
      }
      for count in 1...tokens {
        let together = Self.run(job, rows: c.rows, input: Array(input.prefix(count * c.columns)), stride: c.columns, tokens: count, pool: pool, scratch: scratch, path: .streaming)
        #expect(together.map(\.bitPattern) == alone.prefix(count * c.rows).map(\.bitPattern), "\(c.quantization) \(count) rows")
      }
    }
  }

  /// Codes and parameters of the documented formulas: every stored value is within half a step
  /// of the original (inside the range), and the layout round-trips codes.
  @Test func roundToNearestFollowsGPTQsQuantizer() {
    // One row, two groups of 64: hand-checked parameters.
    var values = [Float](repeating: 0, count: 128)
    for i in 0..<64 { values[i] = Float(i - 32) / 32 }  // [−1, 0.97]
    for i in 64..<128 { values[i] = Float(i - 64) / 64 * 0.5 }  // [0, 0.49]: all non-negative
    let symStorage = values.withUnsafeBytes {
      WeightQuantizer.roundToNearest(DenseMatrix(base: $0.baseAddress!, rows: 1, columns: 128, elementType: .f32), WeightQuantization(bits: 4, groupSize: 64))
    }
    let sym = symStorage.matrix
    // Group 0: xmax = max(|−1|, 0.97) = 1, xmin = −1, scale = 2/15 (to f16), zero 8.
    #expect(sym.parameters(row: 0, group: 0).scale == Float(Float16(Float(2) / 15)))
    #expect(sym.parameters(row: 0, group: 0).zero == 8)
    // Group 1: xmin = 0 stays 0 (no negative values), scale = 0.4921875 / 15, zero still 8 —
    // AutoGPTQ's quirk, which clamps the top half of the range to code 15.
    #expect(sym.parameters(row: 0, group: 1).scale == Float(Float16(Float(0.4921875) / 15)))
    #expect(sym.code(row: 0, column: 127) == 15)
    #expect(sym.code(row: 0, column: 0) == 0)  // −1 / (2/15) = −7.5 → −8 (half to even) + 8
    let asymStorage = values.withUnsafeBytes {
      WeightQuantizer.roundToNearest(DenseMatrix(base: $0.baseAddress!, rows: 1, columns: 128, elementType: .f32), WeightQuantization(bits: 8, groupSize: 64, symmetric: false))
    }
    let asym = asymStorage.matrix
    for c in 0..<128 {
      let (scale, _) = asym.parameters(row: 0, group: c / 64)
      #expect(abs(asym.dequantized(row: 0, column: c) - values[c]) <= scale / 2 * 1.001, "column \(c)")
    }
    withExtendedLifetime((symStorage, asymStorage)) {}
    // Layout: setCode/code round-trip every position of both widths.
    for bits in [4, 8] {
      let bytes = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 64)
      defer { bytes.deallocate() }
      bytes.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
      let codes = (0..<256).map { ($0 * 7 + 3) % (1 << bits) }
      for c in 0..<256 { QuantizedMatrix.setCode(codes[c], column: c, bits: bits, in: bytes) }
      let m = QuantizedMatrix(rows: 1, columns: 256, bits: bits, groupSize: 64, codes: bytes, groupParameters: bytes, inputOrder: nil)
      #expect((0..<256).map { m.code(row: 0, column: $0) } == codes)
    }
  }
}
