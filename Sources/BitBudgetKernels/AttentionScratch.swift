/// Per-thread f32 scratch of the attention kernel: for one query group, its scores against every
/// visible token plus its outputs. Grows on demand (before a parallel loop), never shrinks;
/// `byteCount` reports what it holds.
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

  /// Makes every thread's buffer hold at least `floats` values.
  public func reserve(_ floats: Int) {
    guard floats > capacity else { return }
    let newCapacity = max(floats, capacity * 2)
    for i in buffers.indices {
      buffers[i].deallocate()
      buffers[i] = .allocate(capacity: newCapacity)
    }
    capacity = newCapacity
  }

  func buffer(thread: Int) -> UnsafeMutablePointer<Float> { buffers[thread] }
}
