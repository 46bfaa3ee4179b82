import Foundation

/// The accuracy–memory Pareto frontier of a set of results (one task): the points no other point
/// beats with no more memory. Cost: O(n log n) to build.
public struct ParetoFrontier: Sendable {
  /// Every point, by memory then accuracy (descending) then key.
  public let points: [ResultPoint]
  /// The frontier, by increasing memory and strictly increasing accuracy. Of points with equal
  /// memory and accuracy, the first by key stays (the others are `ties`).
  public let frontier: [ResultPoint]

  public init(_ points: [ResultPoint]) {
    let sorted = points.sorted {
      ($0.memoryBytes, -$0.accuracy.mean, $0.key) < ($1.memoryBytes, -$1.accuracy.mean, $1.key)
    }
    self.points = sorted
    var frontier: [ResultPoint] = []
    for point in sorted where point.accuracy.mean > (frontier.last?.accuracy.mean ?? -1) {
      frontier.append(point)
    }
    self.frontier = frontier
  }

  /// Points with the same memory and accuracy as a frontier point, left off the frontier.
  public var ties: [ResultPoint] {
    let keys = Set(frontier.map(\.key))
    return points.filter { p in
      !keys.contains(p.key) && frontier.contains { $0.memoryBytes == p.memoryBytes && $0.accuracy.mean == p.accuracy.mean }
    }
  }

  public func isOnFrontier(_ point: ResultPoint) -> Bool { frontier.contains { $0.key == point.key } }

  /// The most accurate point that fits `budget` bytes (the frontier's last point within it), or nil.
  public func best(within budget: Int) -> ResultPoint? {
    frontier.last { $0.memoryBytes <= budget }
  }

  /// Points within `budget` whose accuracy is not significantly below `point`'s: the choices the
  /// measurements cannot tell apart from the best.
  public func indistinguishable(from point: ResultPoint, within budget: Int) -> [ResultPoint] {
    points.filter { $0.memoryBytes <= budget && $0.key != point.key && !point.accuracy.isSignificantlyAbove($0.accuracy) }
  }

  /// What changed along each step of the frontier.
  public var steps: [FrontierStep] {
    zip(frontier, frontier.dropFirst()).map { FrontierStep(from: $0, to: $1) }
  }

  /// Memory ranges over which the frontier moves along one axis: consecutive steps of the same
  /// axis merged.
  public var segments: [FrontierSegment] {
    var segments: [FrontierSegment] = []
    for step in steps {
      if let last = segments.last, last.axis == step.axis {
        segments[segments.count - 1].toBytes = step.to.memoryBytes
        segments[segments.count - 1].steps += 1
      } else {
        segments.append(FrontierSegment(axis: step.axis, fromBytes: step.from.memoryBytes, toBytes: step.to.memoryBytes, steps: 1))
      }
    }
    return segments
  }

  /// The weights-versus-generation crossover (paper §4.2): the frontier point below which the
  /// memory the frontier adds goes mostly to bigger or more precise weights and above which mostly
  /// to longer generation or more samples. Each step counts with the memory it adds; the split
  /// explains the most of it (a step-count split would let the many short token steps of small
  /// models decide). Nil when the frontier has no step of one of the two kinds.
  public var crossover: Crossover? {
    let steps = self.steps
    let span = steps.map { Double($0.to.memoryBytes - $0.from.memoryBytes) }
    let isWeights = steps.map { $0.axis == .weights }
    let isCompute = steps.map { $0.axis == .tokens || $0.axis == .parallel }
    var best: (explained: Double, split: Int)?
    for split in 1..<max(1, steps.count) where isWeights[..<split].contains(true) && isCompute[split...].contains(true) {
      let explained = (0..<split).filter { isWeights[$0] }.reduce(0) { $0 + span[$1] }
        + (split..<steps.count).filter { isCompute[$0] }.reduce(0) { $0 + span[$1] }
      if explained > (best?.explained ?? -1) { best = (explained, split) }
    }
    guard let best else { return nil }
    let point = steps[best.split].from
    let total = span.reduce(0, +)
    return Crossover(
      point: point, memoryBytes: point.memoryBytes, effectiveSizeBytes: point.weightsBytes,
      explainedFraction: total > 0 ? best.explained / total : 0)
  }
}

/// The axis a frontier step moves along.
public enum FrontierAxis: String, Sendable, Codable {
  /// A bigger model or more weight bits (a larger effective size).
  case weights
  /// A longer token budget on the same weights.
  case tokens
  /// More parallel samples (G).
  case parallel
  /// Another KV-cache policy on the same weights.
  case kvCache = "kv_cache"
  /// The same axes: another setting (sampling, seed, token limit) made the difference.
  case other
}

/// One step along the frontier.
public struct FrontierStep: Sendable, Codable {
  public let from: ResultPoint
  public let to: ResultPoint
  public let axis: FrontierAxis
  /// Whether the accuracy gain exceeds the noise of both points.
  public let significant: Bool

  public init(from: ResultPoint, to: ResultPoint) {
    self.from = from
    self.to = to
    if from.model != to.model || from.weightBits != to.weightBits {
      axis = .weights
    } else if from.parallel != to.parallel {
      axis = .parallel
    } else if from.kv != to.kv {
      axis = .kvCache
    } else if from.tokenBudget != to.tokenBudget {
      axis = .tokens
    } else {
      axis = .other
    }
    significant = to.accuracy.isSignificantlyAbove(from.accuracy)
  }

  /// `+tokens`, or `+tokens (within noise)` when the gain is not significant.
  public var label: String { "+\(axis.rawValue)\(significant ? "" : " (within noise)")" }
}

/// A memory range in which the frontier moves along one axis.
public struct FrontierSegment: Sendable, Codable, Equatable {
  public var axis: FrontierAxis
  public var fromBytes: Int
  public var toBytes: Int
  public var steps: Int
}

/// Where the frontier turns from weights to generation.
public struct Crossover: Sendable, Codable {
  /// The frontier point at the turn (the last reached by weights).
  public let point: ResultPoint
  public let memoryBytes: Int
  /// Its weight bytes: the paper states the threshold as an effective size (8-bit 4B ≈ 4.2 GB).
  public let effectiveSizeBytes: Int?
  /// The share of the frontier's memory span whose steps agree with one turn here (1: every
  /// step below is by weights and every step above by tokens or G).
  public let explainedFraction: Double
}
