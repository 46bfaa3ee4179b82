import BitBudgetKernels

/// Which experts each token row goes to, and the rows of each expert: the routing step of a
/// mixture-of-experts layer (transformers' `Qwen3MoeTopKRouter`), on buffers the session owns.
/// Cost per forward pass: `rows × count` for the softmax and top-k, `rows × perToken` to group.
enum ExpertRouting {
  /// Softmax of one row's router logits `logits[0..<count]` (overwritten by the probabilities),
  /// its `k` most probable experts into `experts` (most probable first, the lower index on a tie),
  /// and their weights into `weights`: the probabilities, renormalized to sum to 1 when
  /// `normalizes` (`norm_topk_prob`).
  static func route(
    logits: UnsafeMutablePointer<Float>, count: Int, k: Int, normalizes: Bool,
    experts: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>
  ) {
    let sum = Elementwise.softmaxNumerators(logits, count: count)
    // Insertion into a sorted list of k: k is small (8 of 128 in Qwen3-30B-A3B).
    var chosen = 0
    for e in 0..<count {
      let p = logits[e]
      guard chosen < k || p > weights[k - 1] else { continue }
      var slot = min(chosen, k - 1)
      while slot > 0 && weights[slot - 1] < p {
        weights[slot] = weights[slot - 1]
        experts[slot] = experts[slot - 1]
        slot -= 1
      }
      weights[slot] = p
      experts[slot] = Int32(e)
      chosen = min(chosen + 1, k)
    }
    var total: Float = 0
    for slot in 0..<k { total += weights[slot] }
    let scale = normalizes ? 1 / total : 1 / sum
    for slot in 0..<k { weights[slot] *= scale }
  }

  /// Groups the `rows × k` choices by expert (a counting sort): afterwards expert `e`'s choices are
  /// `order[starts[e]..<starts[e + 1]]`, each the index `row × k + slot` into `experts`/`weights`,
  /// rows ascending. `starts` holds `count + 1` values.
  static func group(
    experts: UnsafePointer<Int32>, choices: Int, count: Int, starts: UnsafeMutablePointer<Int32>,
    order: UnsafeMutablePointer<Int32>
  ) {
    starts.update(repeating: 0, count: count + 1)
    for i in 0..<choices { starts[Int(experts[i]) + 1] += 1 }
    for e in 0..<count { starts[e + 1] += starts[e] }
    // starts[e] is now where e's choices begin; filling advances it to where they end.
    for i in 0..<choices {
      let e = Int(experts[i])
      order[Int(starts[e])] = Int32(i)
      starts[e] += 1
    }
    for e in stride(from: count, to: 0, by: -1) { starts[e] = starts[e - 1] }
    starts[0] = 0
  }
}
