import Foundation
import Synchronization
import Testing

import BitBudgetKernels

@Suite struct ThreadPoolTests {
  @Test(arguments: [1, 2, 3])
  func everyTaskRunsExactlyOnce(threads: Int) {
    let pool = ThreadPool(threadCount: threads)
    for count in [0, 1, 2, 7, 64, 1000] {
      for _ in 0..<50 {
        let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(1, count))
        hits.initialize(repeating: 0)
        let badThread = Atomic<Int>(0)
        pool.parallelFor(count) { task, thread in
          hits[task] += 1
          if thread < 0 || thread >= threads { badThread.add(1, ordering: .relaxed) }
        }
        #expect(hits.prefix(count).allSatisfy { $0 == 1 })
        #expect(badThread.load(ordering: .relaxed) == 0)
        hits.deallocate()
      }
    }
  }

  @Test func chunksCoverTheRange() {
    let pool = ThreadPool(threadCount: 2)
    for total in [1, 5, 100, 1001] {
      let covered = UnsafeMutableBufferPointer<Int>.allocate(capacity: total)
      covered.initialize(repeating: 0)
      pool.parallelChunks(total, grain: 3) { range in
        for i in range { covered[i] += 1 }
      }
      #expect(covered.allSatisfy { $0 == 1 })
      covered.deallocate()
    }
  }

  /// A loop inside a task runs serially with the enclosing task's thread number, so per-thread
  /// scratch is never used by two threads at once.
  @Test func nestedLoopsKeepThreadNumbersExclusive() {
    let pool = ThreadPool(threadCount: 2)
    let total = Atomic<Int>(0)
    let inUse0 = Atomic<Int>(0), inUse1 = Atomic<Int>(0)
    let clashes = Atomic<Int>(0)
    pool.parallelFor(8) { (_: Int, outer: Int) in
      pool.parallelFor(10) { (_: Int, inner: Int) in
        if inner != outer { clashes.add(1, ordering: .relaxed) }
        let inUse = inner == 0 ? inUse0.add(1, ordering: .relaxed).newValue : inUse1.add(1, ordering: .relaxed).newValue
        if inUse != 1 { clashes.add(1, ordering: .relaxed) }
        total.add(1, ordering: .relaxed)
        usleep(50)
        if inner == 0 { inUse0.subtract(1, ordering: .relaxed) } else { inUse1.subtract(1, ordering: .relaxed) }
      }
    }
    #expect(total.load(ordering: .relaxed) == 80)
    #expect(clashes.load(ordering: .relaxed) == 0)
  }

  /// Loops separated by pauses longer than the spin phase wake sleeping workers each time.
  @Test func workersWakeAfterSleeping() {
    let pool = ThreadPool(threadCount: 2)
    for _ in 0..<20 {
      usleep(30_000)
      let hits = Atomic<Int>(0)
      let threadsSeen = Atomic<Int>(0)
      pool.parallelFor(64) { (_: Int, thread: Int) in
        hits.add(1, ordering: .relaxed)
        threadsSeen.bitwiseOr(1 << thread, ordering: .relaxed)
        usleep(100)
      }
      #expect(hits.load(ordering: .relaxed) == 64)
      #expect(threadsSeen.load(ordering: .relaxed) != 0)
    }
  }

  /// Loops from several outside threads take turns.
  @Test func concurrentCallersTakeTurns() {
    let pool = ThreadPool(threadCount: 2)
    let total = Atomic<Int>(0)
    let busyThreads = Atomic<Int>(0)
    let clashes = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: 4) { _ in
      for _ in 0..<50 {
        pool.parallelFor(16) { (_: Int, thread: Int) in
          if busyThreads.bitwiseOr(1 << thread, ordering: .relaxed).oldValue & (1 << thread) != 0 {
            clashes.add(1, ordering: .relaxed)
          }
          total.add(1, ordering: .relaxed)
          busyThreads.bitwiseAnd(~(1 << thread), ordering: .relaxed)
        }
      }
    }
    #expect(total.load(ordering: .relaxed) == 4 * 50 * 16)
    #expect(clashes.load(ordering: .relaxed) == 0)
  }
}
