import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetKernels

@Suite struct ConversionTests {
  @Test func bf16RoundsHalfToEven() {
    // 1 + 2⁻⁸ lies halfway between bf16 1.0 and 1.0078125: ties go to the even mantissa (1.0);
    // 1 + 3·2⁻⁸ lies halfway between 1.0078125 and 1.015625 and goes up to the even one.
    #expect(floatToBF16(1.00390625) == 0x3F80)
    #expect(floatToBF16(1.01171875) == 0x3F82)
    #expect(floatToBF16(-2.5) == 0xC020)
    #expect(bf16ToFloat(floatToBF16(.infinity)) == .infinity)
    #expect(bf16ToFloat(floatToBF16(.nan)).isNaN)
    // The largest finite float rounds up to infinity, as torch does.
    #expect(bf16ToFloat(floatToBF16(.greatestFiniteMagnitude)) == .infinity)
  }

  @Test func bulkConversionsMatchScalar() {
    var random = TestRandom(seed: 3)
    var values = (0..<1000).map { _ in random.signedUnit() * 1000 }
    values += [0, -0.0, .infinity, -.infinity, .nan, 65504, 65520, 1e-8, -1e-30]
    for type in ElementType.allCases {
      let storage = UnsafeMutableRawPointer.allocate(byteCount: values.count * 4 + 8, alignment: 8)
      defer { storage.deallocate() }
      var back = [Float](repeating: 0, count: values.count)
      values.withUnsafeBufferPointer { storeConverted($0.baseAddress!, count: values.count, to: storage + 2, at: 0, as: type) }
      back.withUnsafeMutableBufferPointer { loadConverted(from: storage + 2, at: 0, count: values.count, as: type, into: $0.baseAddress!) }
      for (value, result) in zip(values, back) {
        let expected: Float
        switch type {
        case .f32: expected = value
        case .bf16: expected = bf16ToFloat(floatToBF16(value))
        case .f16: expected = Float(Float16(value))
        }
        #expect(result.bitPattern == expected.bitPattern || (result.isNaN && expected.isNaN), "\(type) \(value) → \(result), expected \(expected)")
      }
    }
  }

  /// Every one of the 65,536 half bit patterns, widened by the kernels' pair-order loads.
  @Test func pairOrderWideningIsExactForEveryBitPattern() {
    let patterns = (0..<65536).map { UInt16($0) }
    patterns.withUnsafeBytes { raw in
      var index = 0
      while index < patterns.count {
        let (f16Even, f16Odd) = F16Widening.load32(raw.baseAddress!, index)
        let (bf16Even, bf16Odd) = BF16Widening.load32(raw.baseAddress!, index)
        for lane in 0..<16 {
          for (offset, f16, bf16) in [(0, f16Even[lane], bf16Even[lane]), (1, f16Odd[lane], bf16Odd[lane])] {
            let bits = patterns[index + 2 * lane + offset]
            let expectedHalf = Float(Float16(bitPattern: bits))
            #expect(f16.bitPattern == expectedHalf.bitPattern || (f16.isNaN && expectedHalf.isNaN), "f16 \(bits)")
            #expect(bf16.bitPattern == UInt32(bits) << 16, "bf16 \(bits)")
          }
        }
        index += 32
      }
    }
  }

  @Test func pairOrderPermutationRoundTrips() {
    for count in [0, 5, 32, 45, 64, 100] {
      let values = (0..<count).map { Float($0) }
      var permuted = [Float](repeating: -1, count: count)
      var restored = [Float](repeating: -1, count: count)
      values.withUnsafeBufferPointer { v in
        permuted.withUnsafeMutableBufferPointer { PairOrder.permute(v.baseAddress!, count: count, into: $0.baseAddress!) }
      }
      if count >= 32 {
        #expect(Array(permuted[0..<4]) == [0, 2, 4, 6])
        #expect(permuted[16] == 1)
      }
      permuted.withUnsafeBufferPointer { p in
        restored.withUnsafeMutableBufferPointer { PairOrder.restore(p.baseAddress!, count: count, into: $0.baseAddress!) }
      }
      #expect(restored == values)
    }
  }
}
