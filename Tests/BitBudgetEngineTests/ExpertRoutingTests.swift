import Foundation
import Testing

@testable import BitBudgetEngine

/// The routing step on its own (the fixtures check it end to end against transformers).
@Suite struct ExpertRoutingTests {
  /// Top-k by probability, most probable first, the lower index on a tie, weights the softmax
  /// probabilities or their renormalization (as torch.topk over `softmax` then `/ sum`).
  @Test(arguments: [false, true])
  func routeTakesTheMostProbable(normalizes: Bool) {
    var logits: [Float] = [0.5, 2.0, -1.0, 2.0, 1.5, 0.25]
    let probabilities = logits.map { Float(exp(Double($0))) }.map { $0 / logits.map { Float(exp(Double($0))) }.reduce(0, +) }
    var experts = [Int32](repeating: -1, count: 3)
    var weights = [Float](repeating: 0, count: 3)
    logits.withUnsafeMutableBufferPointer { l in
      experts.withUnsafeMutableBufferPointer { e in
        weights.withUnsafeMutableBufferPointer { w in
          ExpertRouting.route(logits: l.baseAddress!, count: 6, k: 3, normalizes: normalizes, experts: e.baseAddress!, weights: w.baseAddress!)
        }
      }
    }
    #expect(experts == [1, 3, 4])
    let chosen = [probabilities[1], probabilities[3], probabilities[4]]
    let expected = normalizes ? chosen.map { $0 / chosen.reduce(0, +) } : chosen
    for (ours, theirs) in zip(weights, expected) { #expect(abs(ours - theirs) <= 1e-6) }
  }

  /// Grouping lists each expert's choices in row order, every choice once.
  @Test func groupIsACountingSort() {
    let k = 2, count = 5
    let chosen: [Int32] = [3, 0, 4, 3, 0, 1, 3, 4]  // rows 0…3, two experts each
    var starts = [Int32](repeating: -1, count: count + 1)
    var order = [Int32](repeating: -1, count: chosen.count)
    chosen.withUnsafeBufferPointer { c in
      starts.withUnsafeMutableBufferPointer { s in
        order.withUnsafeMutableBufferPointer { o in
          ExpertRouting.group(experts: c.baseAddress!, choices: chosen.count, count: count, starts: s.baseAddress!, order: o.baseAddress!)
        }
      }
    }
    #expect(starts == [0, 2, 3, 3, 6, 8])
    #expect(order == [1, 4, 5, 0, 3, 6, 2, 7])
    #expect(order.map { Int($0) / k } == [0, 2, 2, 0, 1, 3, 1, 3])
  }
}
