/// Per-thread f32 scratch of the attention kernel: for one query group, its scores against every
/// visible token plus its outputs. Grows on demand (before a parallel loop) to the need rounded up
/// to `granule` floats, never shrinks, so what it holds depends only on the largest need seen;
/// `byteCount` reports it.
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

  /// Growth step in floats (256 KiB): a buffer is reallocated at most once per ~65k tokens of
  /// context per query head.
  public static let granule = 1 << 16

  /// Bytes held by `threadCount` buffers after the largest need was `floats`.
  public static func byteCount(threadCount: Int, floats: Int) -> Int {
    max(1, threadCount) * (floats > 1 ? (floats + granule - 1) / granule * granule : 1) * 4
  }

  /// Makes every thread's buffer hold at least `floats` values.
  public func reserve(_ floats: Int) {
    guard floats > capacity else { return }
    let newCapacity = (floats + Self.granule - 1) / Self.granule * Self.granule
    for i in buffers.indices {
      buffers[i].deallocate()
      buffers[i] = .allocate(capacity: newCapacity)
    }
    capacity = newCapacity
  }

  func buffer(thread: Int) -> UnsafeMutablePointer<Float> { buffers[thread] }
}
