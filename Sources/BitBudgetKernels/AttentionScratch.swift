/// Per-thread f32 scratch of the attention kernel: one tile's queries, outputs and block of scores
/// (`Attention.scratchFloats`, independent of the context length). Allocated at the first
/// attention call (before its parallel loop) and kept; `byteCount` reports it.
public final class AttentionScratch: @unchecked Sendable {
  private var buffers: [UnsafeMutablePointer<Float>]
  private var capacity = 0

  public init(threadCount: Int) {
    buffers = (0..<max(1, threadCount)).map { _ in .allocate(capacity: 1) }
    capacity = 1
  }

  deinit {
    for buffer in buffers { buffer.deallocate() }
  }

  /// Whether dense bf16 keys and values are multiplied as bf16 (`vdpbf16ps`, where the build has
  /// AVX512-BF16 and the head dimension is a multiple of 32; `Attention+BF16.swift`): each query
  /// is rounded to bf16 once per tile (quantized segments then multiply the rounded query too),
  /// and each block's softmax weights after their f32 exponentials and sums, so a weight moves by
  /// at most 2⁻⁸ of itself and an output by at most 2⁻⁸ of the largest |value| beyond what the
  /// rounded query moves. Twice the multiply-adds per instruction of f32 FMAs. Sessions set it
  /// from their activations (`.rounded`); off, every product is f32.
  public var roundsToBF16 = false

  /// Threads the scratch serves.
  public var threadCount: Int { buffers.count }

  /// Bytes held by all threads' buffers.
  public var byteCount: Int { buffers.count * capacity * 4 }

  /// Bytes held by `threadCount` buffers after the largest need was `floats` (one float each
  /// before any attention).
  public static func byteCount(threadCount: Int, floats: Int) -> Int {
    max(1, threadCount) * max(1, floats) * 4
  }

  /// Makes every thread's buffer hold at least `floats` values.
  public func reserve(_ floats: Int) {
    guard floats > capacity else { return }
    for i in buffers.indices {
      buffers[i].deallocate()
      buffers[i] = .allocate(capacity: floats)
    }
    capacity = floats
  }

  func buffer(thread: Int) -> UnsafeMutablePointer<Float> { buffers[thread] }
}
