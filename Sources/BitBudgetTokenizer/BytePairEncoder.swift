/// Byte-level BPE over token ids: a piece's UTF-8 bytes start as their single-byte tokens, and the
/// adjacent pair with the lowest merge rank is merged (the leftmost one on ties) until no adjacent
/// pair has a merge — the `tokenizers` library's `BPE` model with `ignore_merges = false`.
///
/// Cost: O(n log n) in the piece's bytes (a binary heap of candidate merges over a linked list of
/// symbols, as `tokenizers` does), so a 15 kB run of letters without spaces stays fast. Results are
/// cached per piece (most words repeat).
struct BytePairEncoder {
  /// The token of each byte; −1 for a byte the vocabulary lacks, which is dropped (as
  /// `tokenizers` does without an unknown token, and llama.cpp does).
  let byteTokens: [Int32]
  /// `(left << 32 | right)` → `(rank << 32 | merged)`.
  let merges: [UInt64: UInt64]

  /// Pieces at most this long (in bytes) are cached.
  static let cacheablePieceBytes = 64
  /// Entries kept before the cache is cleared.
  static let cacheLimit = 200_000

  @inline(__always)
  static func key(_ left: Int32, _ right: Int32) -> UInt64 {
    UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
  }

  @inline(__always)
  func merge(_ left: Int32, _ right: Int32) -> (rank: UInt32, token: Int32)? {
    guard let value = merges[Self.key(left, right)] else { return nil }
    return (UInt32(truncatingIfNeeded: value >> 32), Int32(truncatingIfNeeded: value & 0xFFFF_FFFF))
  }

  /// Appends the tokens of one piece (its UTF-8 bytes) to `output`.
  func encode(_ bytes: UnsafeBufferPointer<UInt8>, into output: inout [Int32], work: inout Workspace) {
    work.reset(bytes.count)
    var n = 0
    for byte in bytes {
      let token = byteTokens[Int(byte)]
      if token >= 0 {
        work.tokens[n] = token
        n += 1
      }
    }
    if n == 0 { return }
    if n == 1 {
      output.append(work.tokens[0])
      return
    }
    if n == 2 {
      let a = work.tokens[0], b = work.tokens[1]
      if let m = merge(a, b) { output.append(m.token) } else { output.append(a); output.append(b) }
      return
    }
    for i in 0..<n {
      work.previous[i] = i - 1
      work.next[i] = i + 1 < n ? i + 1 : -1
    }
    for i in 0..<(n - 1) {
      if let m = merge(work.tokens[i], work.tokens[i + 1]) {
        work.heap.push(Candidate(rank: m.rank, position: Int32(i), left: work.tokens[i], right: work.tokens[i + 1], merged: m.token))
      }
    }
    while let candidate = work.heap.pop() {
      let i = Int(candidate.position)
      let j = work.next[i]
      // Stale: the left symbol was merged away or changed, or its right neighbour changed.
      guard work.alive[i], j >= 0, work.tokens[i] == candidate.left, work.tokens[j] == candidate.right else { continue }
      work.tokens[i] = candidate.merged
      work.alive[j] = false
      let after = work.next[j]
      work.next[i] = after
      if after >= 0 { work.previous[after] = i }
      let before = work.previous[i]
      if before >= 0, let m = merge(work.tokens[before], work.tokens[i]) {
        work.heap.push(Candidate(rank: m.rank, position: Int32(before), left: work.tokens[before], right: work.tokens[i], merged: m.token))
      }
      if after >= 0, let m = merge(work.tokens[i], work.tokens[after]) {
        work.heap.push(Candidate(rank: m.rank, position: Int32(i), left: work.tokens[i], right: work.tokens[after], merged: m.token))
      }
    }
    var i = 0
    while i >= 0 {
      output.append(work.tokens[i])
      i = work.next[i]
    }
  }

  /// A possible merge of the symbol at `position` with its right neighbour; ordered by rank, then
  /// position (leftmost first).
  struct Candidate {
    var rank: UInt32
    var position: Int32
    var left: Int32
    var right: Int32
    var merged: Int32

    @inline(__always)
    static func < (a: Candidate, b: Candidate) -> Bool {
      a.rank != b.rank ? a.rank < b.rank : a.position < b.position
    }
  }

  /// Reusable arrays for `encode`, so that encoding allocates only when a piece is longer than
  /// any before.
  struct Workspace {
    var tokens: [Int32] = []
    var previous: [Int] = []
    var next: [Int] = []
    var alive: [Bool] = []
    var heap = MinHeap()

    mutating func reset(_ n: Int) {
      if n <= 2 && tokens.count >= 2 { return }
      if tokens.count < n {
        tokens = Array(repeating: 0, count: n)
        previous = Array(repeating: 0, count: n)
        next = Array(repeating: 0, count: n)
        alive = Array(repeating: true, count: n)
      } else {
        for i in 0..<n { alive[i] = true }
      }
      heap.removeAll()
    }
  }

  /// A binary min-heap of candidates.
  struct MinHeap {
    private var items: [Candidate] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ item: Candidate) {
      items.append(item)
      var child = items.count - 1
      while child > 0 {
        let parent = (child - 1) / 2
        guard items[child] < items[parent] else { break }
        items.swapAt(child, parent)
        child = parent
      }
    }

    mutating func pop() -> Candidate? {
      guard let first = items.first else { return nil }
      let last = items.removeLast()
      if !items.isEmpty {
        items[0] = last
        var parent = 0
        while true {
          let left = 2 * parent + 1, right = left + 1
          var smallest = parent
          if left < items.count && items[left] < items[smallest] { smallest = left }
          if right < items.count && items[right] < items[smallest] { smallest = right }
          if smallest == parent { break }
          items.swapAt(parent, smallest)
          parent = smallest
        }
      }
      return first
    }
  }
}
