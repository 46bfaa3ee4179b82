import BitBudgetKernels
import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// GPTQ against a torch transcription of AutoGPTQ's `fasterquant` (scripts/make-gptq-fixtures.py)
/// on random layers with correlated, outlier-bearing calibration inputs: 4-bit groups of 64,
/// 8-bit asymmetric act-order groups of 128, 4-bit act-order groups of 128 (two lazy blocks).
@Suite struct GPTQTests {
  struct Case: Decodable {
    let rows: Int, columns: Int, bits: Int, group_size: Int, symmetric: Bool, act_order: Bool
    let weight: [Float], hessian: [Float], codes: [Int], scales: [Float], zeros: [Float], order: [Int]
  }

  static func cases() throws -> [Case] {
    let path = (Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/gptq/gptq-layers.json")
    struct File: Decodable { let cases: [Case] }
    return try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path))).cases
  }

  /// `Σ_r (w_r − q_r)ᵀ H (w_r − q_r)`: the layer's output error on the calibration inputs.
  static func outputError(_ c: Case, _ dequantized: (Int, Int) -> Float) -> Double {
    var total = 0.0
    for r in 0..<c.rows {
      let e = (0..<c.columns).map { Double(c.weight[r * c.columns + $0] - dequantized(r, $0)) }
      for i in 0..<c.columns {
        var s = 0.0
        for j in 0..<c.columns { s += Double(c.hessian[i * c.columns + j]) * e[j] }
        total += e[i] * s
      }
    }
    return total
  }

  @Test func matchesTheReferenceAlgorithm() throws {
    for c in try Self.cases() {
      let q = WeightQuantization(bits: c.bits, groupSize: c.group_size, symmetric: c.symmetric)
      let result = try c.weight.withUnsafeBufferPointer {
        try GPTQ.quantize(weight: $0.baseAddress!, rows: c.rows, columns: c.columns, hessian: c.hessian, options: .init(quantization: q, actOrder: c.act_order))
      }
      let m = result.storage.matrix
      let label = "\(c.bits)-bit g\(c.group_size) act-order \(c.act_order)"
      // The column order (ties aside) and every group's scale and zero: the scales come from
      // the error-updated weights, so they also check the error feedback of earlier blocks.
      #expect((0..<c.columns).map { m.inputIndex(ofStoredColumn: $0) } == c.order, "\(label): column order")
      var scaleMismatches = 0
      for r in 0..<c.rows {
        for g in 0..<m.groups {
          let (scale, zero) = m.parameters(row: r, group: g)
          if scale != c.scales[r * m.groups + g] || zero != c.zeros[r * m.groups + g] { scaleMismatches += 1 }
        }
      }
      // Codes: f32 rounding differences (BLAS vs torch order of sums) flip a code that sits
      // on a rounding boundary, and the flip propagates through the error feedback; the
      // reference run agrees on all but a few percent, and on the resulting output error.
      var codeMismatches = 0
      for r in 0..<c.rows {
        for j in 0..<c.columns where m.code(row: r, column: j) != c.codes[r * c.columns + j] { codeMismatches += 1 }
      }
      let total = c.rows * c.columns
      #expect(Double(codeMismatches) < 0.03 * Double(total), "\(label): \(codeMismatches) of \(total) codes differ")
      #expect(Double(scaleMismatches) < 0.03 * Double(c.rows * m.groups), "\(label): \(scaleMismatches) group parameters differ")

      var position = [Int](repeating: 0, count: c.columns)
      for j in 0..<c.columns { position[m.inputIndex(ofStoredColumn: j)] = j }
      let ours = Self.outputError(c) { r, i in m.dequantized(row: r, column: position[i]) }
      let reference = Self.outputError(c) { r, i in
        let j = c.order.firstIndex(of: i)!
        let g = j / c.group_size
        return c.scales[r * m.groups + g] * (Float(c.codes[r * c.columns + j]) - c.zeros[r * m.groups + g])
      }
      let rtnStorage = c.weight.withUnsafeBytes {
        WeightQuantizer.roundToNearest(DenseMatrix(base: $0.baseAddress!, rows: c.rows, columns: c.columns, elementType: .f32), q)
      }
      let rtn = Self.outputError(c) { r, i in rtnStorage.matrix.dequantized(row: r, column: i) }
      #expect(abs(ours - reference) <= 0.02 * reference, "\(label): output error \(ours) vs reference \(reference)")
      #expect(ours < 0.6 * rtn, "\(label): GPTQ \(ours) should beat RTN \(rtn)")
    }
  }

  /// Dead inputs (zero Hessian diagonal) are zeroed and the layer still quantizes; a Hessian
  /// that is not positive definite is retried with more dampening.
  @Test func handlesDeadInputsAndSingularHessians() throws {
    let rows = 8, columns = 64
    var random = TestRandom(seed: 3)
    let weight = (0..<(rows * columns)).map { _ in random.signedUnit() }
    var hessian = [Float](repeating: 0, count: columns * columns)
    for i in 0..<(columns - 4) { hessian[i * columns + i] = 1 + Float(i % 3) }  // last 4 inputs dead
    hessian[0 * columns + 1] = 3; hessian[1 * columns + 0] = 3  // indefinite 2×2 block: needs damping
    let result = try weight.withUnsafeBufferPointer {
      try GPTQ.quantize(weight: $0.baseAddress!, rows: rows, columns: columns, hessian: hessian, options: .init(quantization: WeightQuantization(bits: 4, groupSize: 64)))
    }
    #expect(result.dampening > 0.01)
    #expect(result.storage.matrix.rows == rows)
  }
}
