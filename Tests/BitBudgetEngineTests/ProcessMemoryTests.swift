import BitBudgetEngine
import Foundation
import Testing

@Suite struct ProcessMemoryTests {
  /// After touching and freeing 256 MiB, the peak includes them; a reset brings it back to the
  /// current resident set (Linux), so a sweep can measure each scenario alone.
  @Test func peakResetsToTheCurrentResidentSet() throws {
    let bytes = 256 << 20
    let before = ProcessMemory.peakResidentBytes
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
    for offset in stride(from: 0, to: bytes, by: 4096) { buffer.storeBytes(of: UInt8(offset & 0xFF), toByteOffset: offset, as: UInt8.self) }
    let touched = ProcessMemory.peakResidentBytes
    buffer.deallocate()
    #expect(touched >= before && touched >= bytes)
    #if os(Linux)
      #expect(ProcessMemory.resetPeak())
      // Other tests run in this process at the same time: allow them 128 MiB.
      #expect(ProcessMemory.peakResidentBytes < touched - bytes / 2)
    #endif
  }
}
