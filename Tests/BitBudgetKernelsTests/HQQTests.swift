import BitBudgetKernels
import BitBudgetTestSupport
import Foundation
import Testing

/// HQQ quantization against the `hqq` package's own outputs (Tests/Fixtures/kv, copied from
/// ../shared/fixtures/kv): codes, scales, zeros and dequantized values for 2/4/8 bits, axes 0 and 1.
@Suite struct HQQTests {
  struct Case: Decodable {
    let nbits: Int
    let axis: Int
    let group_size: Int
    let shape: [Int]
    let input: [Float]
    let codes: [Int]
    let scale: [Float]
    let zero: [Float]
    let dequantized: [Float]
  }

  @Test(arguments: ["hqq-2bit-axis1", "hqq-4bit-axis0", "hqq-4bit-axis1", "hqq-8bit-axis1"])
  func reproducesTheHQQPackage(_ name: String) throws {
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/kv/\(name).json")
    let reference = try JSONDecoder().decode(Case.self, from: Data(contentsOf: url))
    let count = reference.input.count
    #expect(count == reference.shape.reduce(1, *))
    var codes = [UInt8](repeating: 0, count: count)
    var scales = [Float](repeating: 0, count: count / reference.group_size)
    var zeros = scales
    HQQ.quantize(
      reference.input, count: count, bits: reference.nbits, groupSize: reference.group_size, axis: reference.axis,
      codes: &codes, scales: &scales, zeros: &zeros)
    // Codes are integers: equal. Scales and zeros: the same f32 operations in the same order,
    // equal up to the fixture's printing (7 decimals: ±5e-8) and f32 rounding (1e-6 relative).
    #expect(codes.map(Int.init) == reference.codes)
    for (ours, theirs) in zip(scales, reference.scale) { #expect(abs(ours - theirs) <= 1e-6 * abs(theirs) + 6e-8, "scale") }
    for (ours, theirs) in zip(zeros, reference.zero) { #expect(abs(ours - theirs) <= 1e-6 * abs(theirs) + 6e-8, "zero") }
    var values = [Float](repeating: 0, count: count)
    HQQ.dequantize(
      codes: codes, count: count, groupSize: reference.group_size, axis: reference.axis, scales: scales, zeros: zeros,
      into: &values)
    let worst = zip(values, reference.dequantized).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst <= 1e-5, "dequantized |Δ| \(worst)")
  }

  /// A constant group (max = min) does not divide by zero into NaN: the inverse scale is clamped
  /// to 2e4 as torch clamps it, and every value comes back.
  @Test func constantGroup() {
    let input = [Float](repeating: 0.75, count: 64)
    var codes = [UInt8](repeating: 9, count: 64)
    var scale: Float = 0, zero: Float = 0
    HQQ.quantize(input, count: 64, bits: 4, groupSize: 64, axis: 1, codes: &codes, scales: &scale, zeros: &zero)
    var values = [Float](repeating: 0, count: 64)
    HQQ.dequantize(codes: codes, count: 64, groupSize: 64, axis: 1, scales: &scale, zeros: &zero, into: &values)
    #expect(values.allSatisfy { abs($0 - 0.75) < 1e-6 })
  }
}
