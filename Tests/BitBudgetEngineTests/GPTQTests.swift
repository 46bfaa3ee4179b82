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
    /// Round-to-nearest codes of the reference quantizer (natural column order).
    let rtn_codes: [Int]
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
      // RTN is exact: every code equals the reference quantizer's.
      let rtnCodes = (0..<c.rows).flatMap { r in (0..<c.columns).map { rtnStorage.matrix.code(row: r, column: $0) } }
      #expect(rtnCodes == c.rtn_codes, "\(label): RTN codes")
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

/// The calibration pipeline: layer-by-layer passes see exactly what the forward pass sees, and
/// whole-model GPTQ beats round-to-nearest on the calibration data.
@Suite struct ModelQuantizerTests {
  static let tokens = [[3, 17, 42, 99, 5, 8, 61, 2, 77, 31], [9, 4, 120, 33, 18, 6, 250, 71]]

  @Test func layerByLayerPassesSeeTheForwardPassInputs() throws {
    let model = try DecoderModel.load(path: Fixtures.modelPath("qwen3-mha-untied-bf16"))
    let session = try InferenceSession(model: model, threads: 2, maxRows: 4)  // chunks of 4 rows
    var seen: [String: [Float]] = [:]
    session.linearInputObserver = { layer, site, rows, stride, count in
      let width = [model.config.hiddenSize, model.config.queryWidth, model.config.hiddenSize, model.config.intermediateSize][site.rawValue]
      for r in 0..<count { seen["\(layer) \(site)", default: []] += Array(UnsafeBufferPointer(start: rows + r * stride, count: width)) }
    }
    let sequence = Self.tokens[0]
    _ = try session.prefill(sequence, cache: session.makeCache(elementType: .f32), logits: .none)
    let whole = seen
    seen = [:]
    let hidden = UnsafeMutablePointer<Float>.allocate(capacity: sequence.count * model.config.hiddenSize)
    defer { hidden.deallocate() }
    try session.embed(sequence, into: hidden)
    for l in 0..<model.config.layerCount {
      try session.forwardLayer(l, hidden: hidden, count: sequence.count, cache: session.makeCache(elementType: .f32))
    }
    #expect(whole.count == model.config.layerCount * 4)
    for (key, values) in whole { #expect(seen[key]?.map(\.bitPattern) == values.map(\.bitPattern), "\(key)") }
  }

  @Test func gptqBeatsRoundToNearestOnTheCalibrationData() throws {
    let model = try DecoderModel.load(path: Fixtures.modelPath("qwen3-mha-untied-bf16"))
    let q = WeightQuantization(bits: 4, groupSize: 64)
    var progress: [String] = []
    let gptq = try ModelQuantizer.gptq(model, calibration: Self.tokens, options: .init(quantization: q, actOrder: true), threads: 2) { progress.append($0.message) }
    let rtn = try ModelQuantizer.roundToNearest(model, q)
    #expect(progress.count == model.config.layerCount)
    #expect(gptq.layers.allSatisfy { $0.count == 7 } && gptq.layers.count == model.config.layerCount)
    // Next-token log-likelihood distance to the 16-bit model on the calibration text.
    func logits(_ weights: [[QuantizedMatrixStorage]]?) throws -> [[Float]] {
      let session = try InferenceSession(model: model, threads: 2)
      if let weights {
        for (l, layer) in weights.enumerated() {
          for site in LinearSite.allCases {
            try session.replaceLinears(layer: l, site: site, with: ModelQuantizer.linearIndices(site).map { .quantized(layer[$0].matrix) })
          }
        }
      }
      var rows: [[Float]] = []
      _ = try session.prefill(Self.tokens[0], cache: session.makeCache(), logits: .all) { view in
        for r in 0..<view.rows { rows.append(Array(view.row(r))) }
      }
      return rows
    }
    let reference = try logits(nil)
    func distance(_ other: [[Float]]) -> Double {
      var sum = 0.0
      for (a, b) in zip(reference, other) {
        for (x, y) in zip(a, b) { sum += Double(x - y) * Double(x - y) }
      }
      return sum
    }
    let dGPTQ = distance(try logits(gptq.layers)), dRTN = distance(try logits(rtn.layers))
    #expect(dGPTQ < dRTN, "GPTQ \(dGPTQ) vs RTN \(dRTN)")
  }
}
