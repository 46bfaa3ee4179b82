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
/// top-k, then top-p, then min-p, then a draw from the renormalized distribution.
///
/// Cost per draw: one pass over the vocabulary (top-k selection with a small heap, or a full
/// sort when top-k is off and top-p is on), then work over the surviving candidates only.
public struct Sampler {
  public let parameters: SamplingParameters
  private var candidates: [Candidate] = []
  private var heap: [Candidate] = []

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
    let kept = try distribution(logits)
    let u = random.unit()
    var cumulative = 0.0
    for (token, probability) in kept {
      cumulative += probability
      if u < cumulative { return token }
    }
    return kept[kept.count - 1].token
  }

  /// The tokens that can be drawn and their probabilities (most likely first), after every
  /// warper; for greedy parameters the argmax with probability 1.
  public mutating func distribution(_ logits: UnsafeBufferPointer<Float>) throws -> [(token: Int, probability: Double)] {
    guard !logits.isEmpty else { throw EngineError.invalidInput("no logits to sample from") }
    if parameters.isGreedy { return [(try Generator.argmax(logits), 1)] }
    guard selectCandidates(logits) else {
      throw EngineError.numericalFailure("the model produced NaN logits (corrupt weights, or an f16 overflow)")
    }
    // Most likely first; among equal logits the higher id first, so that the filters drop lower
    // ids first, as transformers' ascending sort does.
    candidates.sort { $0.logit != $1.logit ? $0.logit > $1.logit : $0.token > $1.token }
    var probabilities = softmax(candidates.count)

    // Top-p: drop tokens whose ascending cumulative probability is at most 1 − p (transformers'
    // TopPLogitsWarper), always keeping the most likely.
    if parameters.topP < 1 {
      var suffix = 0.0
      var keep = candidates.count
      for i in stride(from: candidates.count - 1, through: 1, by: -1) {
        suffix += probabilities[i]
        if suffix <= 1 - Double(parameters.topP) { keep = i } else { break }
      }
      candidates.removeSubrange(keep...)
      probabilities = softmax(candidates.count)
    }
    // Min-p: drop tokens below min-p × the top probability.
    if parameters.minP > 0 {
      let threshold = Double(parameters.minP) * probabilities[0]
      var keep = candidates.count
      while keep > 1 && probabilities[keep - 1] < threshold { keep -= 1 }
      candidates.removeSubrange(keep...)
      probabilities = softmax(candidates.count)
    }
    return zip(candidates, probabilities).map { ($0.token, $1) }
  }

  /// Softmax of the first `count` candidates' logits divided by the temperature, in Double with
  /// the largest logit subtracted first (so a tiny temperature cannot overflow). An infinite
  /// largest logit (+inf, or −inf everywhere) would make every term NaN: the limit is then uniform
  /// over the logits equal to it, as greedy takes the first of them.
  private func softmax(_ count: Int) -> [Double] {
    let top = Double(candidates[0].logit)
    let temperature = Double(parameters.temperature)
    var values = (0..<count).map {
      top.isInfinite ? (Double(candidates[$0].logit) == top ? 1 : 0) : Foundation.exp((Double(candidates[$0].logit) - top) / temperature)
    }
    let total = values.reduce(0, +)
    for i in values.indices { values[i] /= total }
    return values
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
