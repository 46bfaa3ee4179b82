import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed set of worker threads that run the tasks of one `parallelFor` at a time, together with
/// the calling thread.
///
/// A decode step of a 28-layer model issues about 150 parallel loops, so dispatch must cost
/// microseconds, not tens of them: workers spin on an atomic generation counter for a short while
/// after each loop and only then sleep on a condition variable. Tasks are claimed one at a time
/// from an atomic counter, so a core slowed by another tenant simply takes fewer tasks.
///
/// A `parallelFor` made from inside a task runs its tasks serially on that thread, with that
/// thread's number (correct, just not parallel). Calls from several outside threads take turns.
public final class ThreadPool: @unchecked Sendable {
  /// Threads that execute tasks, the caller included.
  public let threadCount: Int
  private let shared: Shared
  private let workers: [Thread]

  /// Creates a pool that runs loops on `threadCount` threads (the calling thread and
  /// `threadCount - 1` workers). `threadCount` is clamped to at least 1.
  public init(threadCount: Int = ThreadPool.defaultThreadCount) {
    let count = max(1, threadCount)
    self.threadCount = count
    let shared = Shared(workerCount: count - 1)
    self.shared = shared
    var workers: [Thread] = []
    for index in 0..<(count - 1) {
      let thread = Thread { shared.workerLoop(index: index) }
      thread.name = "bitbudget-worker-\(index)"
      thread.stackSize = 1 << 20
      thread.start()
      workers.append(thread)
    }
    self.workers = workers
  }

  deinit {
    shared.stop()
  }

  /// The number of processors the system makes available to this process.
  public static var defaultThreadCount: Int { ProcessInfo.processInfo.activeProcessorCount }

  /// Runs `body(i)` for every `i` in `0..<count`, spread over the pool's threads, and returns when
  /// all have finished. Tasks run in no particular order; each index runs exactly once.
  public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    parallelFor(count) { task, _ in body(task) }
  }

  /// Like `parallelFor(_:_:)`, and also tells each task which thread runs it: a number in
  /// `0..<threadCount` (0 is the calling thread), so that tasks can use per-thread scratch memory.
  /// Two tasks with the same thread number never run at the same time.
  public func parallelFor(_ count: Int, _ body: (_ task: Int, _ thread: Int) -> Void) {
    if count <= 0 { return }
    if let current = shared.currentThreadNumber() {
      // Nested inside one of this pool's tasks.
      for index in 0..<count { body(index, current) }
      return
    }
    shared.dispatchLock.lock()
    shared.setCurrentThreadNumber(0)
    defer {
      shared.setCurrentThreadNumber(nil)
      shared.dispatchLock.unlock()
    }
    if workers.isEmpty || count == 1 {
      for index in 0..<count { body(index, 0) }
      return
    }
    withoutActuallyEscaping(body) { escapable in
      shared.dispatch(count: count, body: escapable)
    }
  }

  /// Splits `0..<total` into contiguous chunks of at least `grain` items (and at most a few chunks
  /// per thread) and runs `body(range)` for each chunk in parallel.
  public func parallelChunks(_ total: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    if total <= 0 { return }
    let chunksWanted = threadCount == 1 ? 1 : threadCount * 4
    let chunkSize = max(max(1, grain), (total + chunksWanted - 1) / chunksWanted)
    let chunkCount = (total + chunkSize - 1) / chunkSize
    parallelFor(chunkCount) { chunk in
      let start = chunk * chunkSize
      body(start..<min(total, start + chunkSize))
    }
  }
}

extension ThreadPool {
  /// State shared between the pool and its worker threads (the workers must not keep the pool
  /// itself alive, or it could never be deinitialized).
  final class Shared: @unchecked Sendable {
    let workerCount: Int
    /// Bumped once per loop; workers wait for it to change.
    let generation = Atomic<Int>(0)
    let nextTask = Atomic<Int>(0)
    let workersStillRunning = Atomic<Int>(0)
    let sleepingWorkers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let condition = NSCondition()
    /// Serializes dispatches from different outside threads.
    let dispatchLock = NSLock()
    /// This pool's thread number of the current thread (+1; 0 = none), per thread.
    private var threadKey = pthread_key_t()
    // Written by the dispatching thread before `generation` is bumped (release) and read by workers
    // after they observe the new generation (acquire).
    var taskCount = 0
    var body: ((Int, Int) -> Void)?

    /// Spin iterations before a waiting worker goes to sleep: roughly 100 µs, longer than the gaps
    /// between the loops of one forward pass. After the first few thousand each spin yields the
    /// core, so that spinning does not starve other work when threads outnumber free cores.
    static let spinLimit = 30_000

    init(workerCount: Int) {
      self.workerCount = workerCount
      pthread_key_create(&threadKey, nil)
    }

    deinit {
      pthread_key_delete(threadKey)
    }

    /// The current thread's number in this pool while it runs a loop, or nil.
    func currentThreadNumber() -> Int? {
      let value = Int(bitPattern: pthread_getspecific(threadKey))
      return value == 0 ? nil : value - 1
    }

    func setCurrentThreadNumber(_ number: Int?) {
      pthread_setspecific(threadKey, UnsafeRawPointer(bitPattern: (number ?? -1) + 1))
    }

    func dispatch(count: Int, body: @escaping (Int, Int) -> Void) {
      self.body = body
      taskCount = count
      nextTask.store(0, ordering: .relaxed)
      workersStillRunning.store(workerCount, ordering: .relaxed)
      generation.add(1, ordering: .sequentiallyConsistent)
      if sleepingWorkers.load(ordering: .sequentiallyConsistent) > 0 {
        condition.lock()
        condition.broadcast()
        condition.unlock()
      }
      runTasks(body, count: count, thread: 0)
      var spins = 0
      while workersStillRunning.load(ordering: .acquiring) > 0 {
        // A worker may not be running (more threads than free cores): let it have the core.
        spins += 1
        if spins > 20_000 { sched_yield() }
      }
      // Workers dropped their copies of `body` before checking in, so this is the last reference
      // and `withoutActuallyEscaping` sees it unescaped.
      self.body = nil
    }

    @inline(__always)
    func runTasks(_ body: (Int, Int) -> Void, count: Int, thread: Int) {
      while true {
        let task = nextTask.add(1, ordering: .relaxed).oldValue
        if task >= count { return }
        body(task, thread)
      }
    }

    func workerLoop(index: Int) {
      setCurrentThreadNumber(index + 1)
      var seen = 0
      while true {
        var current = generation.load(ordering: .acquiring)
        var spins = 0
        while current == seen {
          spins += 1
          if spins < Self.spinLimit {
            if spins > 5_000 { sched_yield() }
            current = generation.load(ordering: .acquiring)
            continue
          }
          condition.lock()
          sleepingWorkers.add(1, ordering: .sequentiallyConsistent)
          current = generation.load(ordering: .sequentiallyConsistent)
          while current == seen {
            condition.wait()
            current = generation.load(ordering: .sequentiallyConsistent)
          }
          sleepingWorkers.subtract(1, ordering: .sequentiallyConsistent)
          condition.unlock()
        }
        seen = current
        if stopping.load(ordering: .acquiring) { return }
        if let body { runTasks(body, count: taskCount, thread: index + 1) }
        workersStillRunning.subtract(1, ordering: .releasing)
      }
    }

    func stop() {
      stopping.store(true, ordering: .releasing)
      generation.add(1, ordering: .sequentiallyConsistent)
      condition.lock()
      condition.broadcast()
      condition.unlock()
    }
  }
}
