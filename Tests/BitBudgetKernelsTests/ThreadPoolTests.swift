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

  @Test func nestedLoopsRunSerially() {
    let pool = ThreadPool(threadCount: 2)
    let total = Atomic<Int>(0)
    pool.parallelFor(4) { _ in
      pool.parallelFor(10) { _ in total.add(1, ordering: .relaxed) }
    }
    #expect(total.load(ordering: .relaxed) == 40)
  }
}
