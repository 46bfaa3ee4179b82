/// How the next token is chosen from the logits.
public struct SamplingParameters: Sendable, Equatable, CustomStringConvertible {
  /// Logits are divided by it; 0 (or below) means greedy.
  public var temperature: Float
  /// Keep only the `topK` largest logits (ties at the boundary kept, so top-k 1 samples among
  /// tied maxima); 0 disables.
  public var topK: Int
  /// Keep the smallest set of most likely tokens whose probability reaches `topP`; 1 disables.
  public var topP: Float
  /// Drop tokens less likely than `minP` × the most likely one; 0 disables.
  public var minP: Float

  public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, minP: Float = 0) {
    self.temperature = temperature
    self.topK = topK
    self.topP = topP
    self.minP = minP
  }

  /// Argmax at every step.
  public static let greedy = SamplingParameters(temperature: 0)

  /// Qwen3's recommendation for thinking mode (its generation_config.json).
  public static let qwen3Thinking = SamplingParameters(temperature: 0.6, topK: 20, topP: 0.95, minP: 0)

  /// Whether this picks the most likely token (the first of tied ones) without drawing.
  public var isGreedy: Bool { temperature <= 0 }

  public var description: String {
    isGreedy ? "greedy" : "temperature \(temperature), top-k \(topK), top-p \(topP), min-p \(minP)"
  }
}

/// Random numbers of one sample: xoshiro256** with its state expanded from (seed, stream) by
/// SplitMix64, so that sample `i` of a run with seed `s` draws the same numbers whatever else runs
/// (other samples, thread counts, batch sizes).
public struct SampleRandom: RandomNumberGenerator, Sendable {
  private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

  public init(seed: UInt64, stream: UInt64 = 0) {
    var x = seed ^ (stream &* 0xD1B5_4A32_D192_ED03)
    func splitMix() -> UInt64 {
      x &+= 0x9E37_79B9_7F4A_7C15
      var z = x
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
  }

  public mutating func next() -> UInt64 {
    let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = s3 << 45 | s3 >> 19
    return result
  }

  /// Uniform in [0, 1) with 53 random bits.
  public mutating func unit() -> Double {
    Double(next() >> 11) * 0x1p-53
  }
}

/// Chooses tokens from logits as transformers' `generate(do_sample=True)` does: temperature, then
/// top-k, then top-p, then min-p, then a draw from the renormalized distribution, walking the kept
/// tokens from the most likely (among equal logits the higher id first, so that the filters drop
/// lower ids first, as transformers' ascending sort does).
///
/// Cost per draw: one pass over the vocabulary (the candidates, their weights, and a counting sort
/// of them into buckets of nearby logits), then only the buckets the walk reaches are sorted — a
/// few for a peaked distribution, about half the vocabulary for a flat one — instead of a full
/// sort of the vocabulary (151,936 tokens for Qwen3).
public struct Sampler {
  public let parameters: SamplingParameters
  private var candidates: [Candidate] = []
  private var heap: [Candidate] = []
  /// `exp((logit − max) / temperature)` per candidate: the most likely token weighs 1.
  private var weights: [Double] = []
  private var totalWeight = 0.0
  /// Candidate indices, bucket after bucket (bucket 0 holds the largest logits).
  private var order: [Int32] = []
  /// Where each bucket starts in `order`, and its end.
  private var bucketStarts: [Int] = []
  /// Scratch of the counting sort: each candidate's bucket, and each bucket's next free slot.
  private var bucketOf: [Int32] = []
  private var bucketFill: [Int] = []
  /// `order[..<orderedCount]` is in its final order (whole buckets).
  private var orderedCount = 0
  private var nextBucket = 0

  struct Candidate {
    var token: Int
    var logit: Float
  }

  public init(parameters: SamplingParameters) {
    self.parameters = parameters
  }

  /// The next token. Throws if the logits contain NaN.
  public mutating func sample(_ logits: UnsafeBufferPointer<Float>, random: inout SampleRandom) throws -> Int {
    if parameters.isGreedy { return try Generator.argmax(logits) }
    try prepare(logits)
    let (kept, mass) = keptPrefix()
    let target = random.unit() * mass
    var cumulative = 0.0
    var last = 0
    for position in 0..<kept {
      let index = candidateIndex(at: position)
      let weight = weights[index]
      guard weight > 0 else { break }
      cumulative += weight
      if target < cumulative { return candidates[index].token }
      last = index
    }
    // Rounding left the target at the very end: the least likely token that can be drawn.
    return candidates[last].token
  }

  /// The tokens that can be drawn and their probabilities (most likely first), after every
  /// warper; for greedy parameters the argmax with probability 1. Cost: as a draw, plus sorting
  /// every kept token.
  public mutating func distribution(_ logits: UnsafeBufferPointer<Float>) throws -> [(token: Int, probability: Double)] {
    guard !logits.isEmpty else { throw EngineError.invalidInput("no logits to sample from") }
    if parameters.isGreedy { return [(try Generator.argmax(logits), 1)] }
    try prepare(logits)
    let (kept, mass) = keptPrefix()
    return (0..<kept).map { position in
      let index = candidateIndex(at: position)
      return (candidates[index].token, weights[index] / mass)
    }
  }

  /// The candidates (top-k, or every token), their weights, and their buckets.
  private mutating func prepare(_ logits: UnsafeBufferPointer<Float>) throws {
    guard !logits.isEmpty else { throw EngineError.invalidInput("no logits to sample from") }
    guard selectCandidates(logits) else {
      throw EngineError.numericalFailure("the model produced NaN logits (corrupt weights, or an f16 overflow)")
    }
    let count = candidates.count
    var top = -Float.infinity
    for candidate in candidates { top = max(top, candidate.logit) }
    // An infinite largest logit (+inf, or −inf everywhere) would make every weight NaN: the limit
    // is then uniform over the logits equal to it, as greedy takes the first of them. A tiny
    // temperature cannot overflow, as the largest logit is subtracted first.
    let temperature = Double(parameters.temperature)
    weights.removeAll(keepingCapacity: true)
    weights.reserveCapacity(count)
    totalWeight = 0
    var lowest = top
    for candidate in candidates {
      let weight =
        top.isInfinite ? (candidate.logit == top ? 1 : 0) : Foundation.exp((Double(candidate.logit) - Double(top)) / temperature)
      weights.append(weight)
      totalWeight += weight
      if weight > 0 { lowest = min(lowest, candidate.logit) }
    }
    // Buckets by distance from the largest logit: the mapping is monotone, so bucket order is
    // logit order and only ties and near-ties are left to the sort within a bucket. Tokens that
    // cannot be drawn (weight 0) go last.
    let bucketCount = max(1, count / 16)
    let spread = Double(top) - Double(lowest)
    let scale = top.isFinite && spread > 0 && spread.isFinite ? Double(bucketCount) / spread : 0
    bucketOf.removeAll(keepingCapacity: true)
    for index in 0..<count {
      let bucket =
        !(weights[index] > 0) ? bucketCount - 1
        : scale == 0 ? 0 : min(bucketCount - 1, Int((Double(top) - Double(candidates[index].logit)) * scale))
      bucketOf.append(Int32(bucket))
    }
    bucketStarts.removeAll(keepingCapacity: true)
    bucketStarts.append(contentsOf: repeatElement(0, count: bucketCount + 1))
    for bucket in bucketOf { bucketStarts[Int(bucket) + 1] += 1 }
    for b in 0..<bucketCount { bucketStarts[b + 1] += bucketStarts[b] }
    bucketFill.removeAll(keepingCapacity: true)
    bucketFill.append(contentsOf: bucketStarts)
    order.removeAll(keepingCapacity: true)
    order.append(contentsOf: repeatElement(0, count: count))
    for (index, bucket) in bucketOf.enumerated() {
      order[bucketFill[Int(bucket)]] = Int32(index)
      bucketFill[Int(bucket)] += 1
    }
    orderedCount = 0
    nextBucket = 0
  }

  /// The candidate at `position` of the most-likely-first order, sorting buckets as the walk
  /// reaches them.
  private mutating func candidateIndex(at position: Int) -> Int {
    while position >= orderedCount {
      let (start, end) = (bucketStarts[nextBucket], bucketStarts[nextBucket + 1])
      if end - start > 1 {
        let candidates = self.candidates
        order[start..<end].sort { a, b in
          let (x, y) = (candidates[Int(a)], candidates[Int(b)])
          return x.logit != y.logit ? x.logit > y.logit : x.token > y.token
        }
      }
      orderedCount = end
      nextBucket += 1
    }
    return Int(order[position])
  }

  /// How many of the most likely candidates top-p and min-p keep, and their total weight.
  private mutating func keptPrefix() -> (count: Int, mass: Double) {
    var kept = candidates.count
    var mass = totalWeight
    // Top-p: drop tokens whose ascending cumulative probability is at most 1 − p (transformers'
    // TopPLogitsWarper), always keeping the most likely: walk from the top until what is left
    // weighs at most 1 − p.
    if parameters.topP < 1 {
      let tail = (1 - Double(parameters.topP)) * totalWeight
      var cumulative = 0.0
      var position = 0
      repeat {
        cumulative += weights[candidateIndex(at: position)]
        position += 1
      } while position < candidates.count && totalWeight - cumulative > tail
      kept = position
      mass = cumulative
    }
    // Min-p: drop tokens below min-p × the top probability. The most likely token weighs 1 (or
    // is among the infinite logits, weighing 1), so min-p drops the weights below min-p: the end
    // of the order.
    if parameters.minP > 0 {
      let threshold = Double(parameters.minP)
      if parameters.topP < 1 {
        while kept > 1 && weights[candidateIndex(at: kept - 1)] < threshold { kept -= 1 }
        mass = (0..<kept).reduce(0) { $0 + weights[Int(order[$1])] }
      } else {
        kept = 0
        mass = 0
        for weight in weights where weight >= threshold {
          kept += 1
          mass += weight
        }
        kept = max(kept, 1)
        if mass == 0 { mass = weights[candidateIndex(at: 0)] }
      }
    }
    return (kept, mass)
  }

  /// Logits of the top-k tokens (every token tied with the k-th kept), or of all tokens; the
  /// order of logits is that of the temperature-scaled ones. Returns false if a logit is NaN.
  private mutating func selectCandidates(_ logits: UnsafeBufferPointer<Float>) -> Bool {
    candidates.removeAll(keepingCapacity: true)
    var sawNaN = false
    let k = parameters.topK
    guard k > 0 && k < logits.count else {
      candidates.reserveCapacity(logits.count)
      for (token, logit) in logits.enumerated() {
        sawNaN = sawNaN || logit.isNaN
        candidates.append(Candidate(token: token, logit: logit))
      }
      return !sawNaN
    }
    // A min-heap of the k largest scaled logits; its root is the k-th largest.
    heap.removeAll(keepingCapacity: true)
    for (token, logit) in logits.enumerated() {
      let value = logit
      sawNaN = sawNaN || value.isNaN
      if heap.count < k {
        heap.append(Candidate(token: token, logit: value))
        siftUp(heap.count - 1)
      } else if value > heap[0].logit {
        heap[0] = Candidate(token: token, logit: value)
        siftDown(0)
      }
    }
    let threshold = heap[0].logit
    for (token, logit) in logits.enumerated() where logit >= threshold {
      candidates.append(Candidate(token: token, logit: logit))
    }
    return !sawNaN
  }

  private mutating func siftUp(_ start: Int) {
    var child = start
    while child > 0 {
      let parent = (child - 1) / 2
      guard heap[child].logit < heap[parent].logit else { return }
      heap.swapAt(child, parent)
      child = parent
    }
  }

  private mutating func siftDown(_ start: Int) {
    var parent = start
    while true {
      let left = 2 * parent + 1, right = left + 1
      var smallest = parent
      if left < heap.count && heap[left].logit < heap[smallest].logit { smallest = left }
      if right < heap.count && heap[right].logit < heap[smallest].logit { smallest = right }
      if smallest == parent { return }
      heap.swapAt(parent, smallest)
      parent = smallest
    }
  }
}

import Foundation
