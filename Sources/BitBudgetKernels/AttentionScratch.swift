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
