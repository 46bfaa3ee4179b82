import BitBudgetTestSupport
import Foundation
import Testing

import BitBudgetKernels

@Suite struct ElementwiseTests {
  @Test func expIsWithinTwoUlp() {
    var x: Float = -87
    var worst: Float = 0
    while x < 88.5 {
      var lanes = SIMD16<Float>()
      for i in 0..<16 { lanes[i] = x + Float(i) * 0.0013 }
      let result = Elementwise.exp(lanes)
      for i in 0..<16 {
        let exact = Foundation.exp(Double(lanes[i]))
        let ulp = Double(Float(exact).ulp)
        worst = max(worst, Float(abs(Double(result[i]) - exact) / ulp))
      }
      x += 0.0173
    }
    #expect(worst <= 2, "worst error \(worst) ulp")
  }

  @Test func expSpecialValues() {
    var lanes = SIMD16<Float>(repeating: 0)
    lanes[1] = -.infinity
    lanes[2] = .infinity
    lanes[3] = .nan
    lanes[4] = -100
    lanes[5] = 100
    lanes[6] = 88.72
    let result = Elementwise.exp(lanes)
    #expect(result[0] == 1)
    #expect(result[1] == 0)
    #expect(result[2] == .infinity)
    #expect(result[3].isNaN)
    #expect(result[4] == 0)
    #expect(result[5] == .infinity)
    let large = Foundation.exp(Double(Float(88.72)))
    #expect(abs(Double(result[6]) - large) / large < 3e-7)
  }

  @Test(arguments: [7, 64, 72, 1024])
  func rmsNormMatchesDefinition(count: Int) {
    var random = TestRandom(seed: UInt64(count))
    let x = (0..<count).map { _ in random.signedUnit() * 3 }
    let weight = (0..<count).map { _ in 1 + random.signedUnit() * 0.2 }
    var y = [Float](repeating: 0, count: count)
    weight.withUnsafeBytes { w in
      x.withUnsafeBufferPointer { xb in
        y.withUnsafeMutableBufferPointer {
          Elementwise.rmsNorm(xb.baseAddress!, count: count, weight: WeightVector(base: w.baseAddress!, count: count, elementType: .f32), epsilon: 1e-6, into: $0.baseAddress!)
        }
      }
    }
    let meanSquare = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(count)
    let scale = 1 / (meanSquare + 1e-6).squareRoot()
    for i in 0..<count {
      let expected = Double(x[i]) * scale * Double(weight[i])
      #expect(abs(Double(y[i]) - expected) <= 1e-6 * max(1, abs(expected)))
    }
  }

  @Test func siluMultiplyMatchesDefinition() {
    var random = TestRandom(seed: 5)
    let count = 203
    var gate = (0..<count).map { _ in random.signedUnit() * 20 }
    let up = (0..<count).map { _ in random.signedUnit() * 4 }
    let original = gate
    gate.withUnsafeMutableBufferPointer { g in
      up.withUnsafeBufferPointer { Elementwise.siluMultiply(g.baseAddress!, $0.baseAddress!, count: count) }
    }
    for i in 0..<count {
      let z = Double(original[i])
      let expected = z / (1 + Foundation.exp(-z)) * Double(up[i])
      #expect(abs(Double(gate[i]) - expected) <= 1e-6 * max(1, abs(expected)))
    }
  }

  @Test func rotaryMatchesDefinition() {
    let dim = 48
    let rotary = RotaryEmbedding(headDim: dim, theta: 1_000_000)
    var random = TestRandom(seed: 9)
    for position in [0, 1, 17, 4095, 30000] {
      var cosines = [Float](repeating: 0, count: dim / 2)
      var sines = cosines
      cosines.withUnsafeMutableBufferPointer { c in
        sines.withUnsafeMutableBufferPointer { s in rotary.fill(position: position, cos: c.baseAddress!, sin: s.baseAddress!) }
      }
      let x = (0..<(2 * dim)).map { _ in random.signedUnit() }
      var y = x
      y.withUnsafeMutableBufferPointer { v in
        RotaryEmbedding.rotate(v.baseAddress!, heads: 2, headDim: dim, cos: cosines, sin: sines)
      }
      for head in 0..<2 {
        for j in 0..<(dim / 2) {
          // transformers: inv_freq in f32, angle = f32(position · inv_freq).
          let inverse = 1 / Float(pow(1_000_000.0, Double(Float(2 * j) / Float(dim))))
          let angle = Double(Float(position) * inverse)
          let a = Double(x[head * dim + j]), b = Double(x[head * dim + j + dim / 2])
          #expect(abs(Double(y[head * dim + j]) - (a * cos(angle) - b * sin(angle))) < 1e-5)
          #expect(abs(Double(y[head * dim + j + dim / 2]) - (b * cos(angle) + a * sin(angle))) < 1e-5)
        }
      }
    }
  }
}
