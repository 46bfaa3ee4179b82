import BitBudgetAnalysis
import BitBudgetEngine
import BitBudgetMemory
import Foundation
import Testing

/// The paper-guideline planner on the cases the paper states (paper.md §4.2–4.5, §5), and its
/// plans over 0.5–80 GiB. Cases stated by the paper, each checked below:
///
/// 1. ~2.6 GiB: Qwen3-1.7B 8-bit at 6k tokens beats 0.6B 8-bit at 18k (§4.2).
/// 2. ~3.86 GiB: 4B 4-bit at 10k beats 1.7B 8-bit at 18k (§4.2).
/// 3. Maths: 8B 8-bit beats 14B 4-bit; 32B 4-bit is dominated by 14B 8-bit and 8B 16-bit — no
///    4-bit weights for large maths models (§4.2–4.3).
/// 4. Maths: 8-bit is optimal for small models — no 16-bit below the threshold (Finding 2).
/// 5. Knowledge (GPQA-Diamond): 4-bit weights are broadly memory-optimal (§4.3).
/// 6. Below the threshold, weights before tokens; above, tokens — ≥ 20k per sample above ~10 GB
///    (Finding 1, §4.2).
/// 7. G = 1 below 16.4 GB; 4 ≤ G < 8 for 16.4–28.9 GB; G ≥ 8 above (Finding 3); maths only.
/// 8. KV compression helps at every precision (Finding 4); eviction below the effective size of
///    8-bit 8B, 8-bit quantization at or above it (Finding 5).
@Suite struct PlannerTests {
  static let gib = Double(1 << 30)

  static func plan(
    _ gib: Double, _ task: PlanTask, kv: PlanKV = .fixed(.full), convention: MemoryConvention = .paper, reserve: Int = 0
  ) throws -> Plan {
    var guidelines = PaperGuidelines()
    guidelines.convention = convention
    return try guidelines.plan(memory: Int(gib * Self.gib), task: task, kv: kv, reserve: reserve)
  }

  static func effectiveBytes(_ option: PlanOption) throws -> Int {
    try MemoryModel.load(option.model).estimate(weightsBits: option.weightBits, tokens: 0, convention: .paper).weightsBytes
  }

  @Test func smallBudgetsBuyWeightsBeforeTokens() throws {
    // Case 1.
    let small = try Self.plan(2.6, .math)
    #expect(small.choice.model == "qwen3-1.7b" && small.choice.weightBits == 8 && small.choice.tokenBudget == 6000)
    #expect(small.choice.parallel == 1 && small.choice.kv == "full")
    #expect(small.rejected.contains { $0.model == "qwen3-0.6b" && $0.weightBits == 8 && $0.tokenBudget >= 17000 })
    // Case 2.
    let medium = try Self.plan(3.86, .math)
    #expect(medium.choice.model == "qwen3-4b" && medium.choice.weightBits == 4 && medium.choice.tokenBudget == 10000)
  }

  @Test func mathWeightPrecisionFollowsTheFindings() throws {
    let threshold = try MemoryModel.load("qwen3-4b").estimate(weightsBits: 8, tokens: 0, convention: .paper).weightsBytes
    for gib in stride(from: 0.75, through: 120, by: 1.25) {
      for kv in [PlanKV.fixed(.full), .auto] {
        let plan = try Self.plan(gib, .math, kv: kv)
        let c = plan.choice
        // Case 3.
        #expect(!(c.weightBits == 4 && ["qwen3-8b", "qwen3-14b", "qwen3-32b"].contains(c.model)), "\(gib) GiB: \(c)")
        // Case 4.
        let effective = try Self.effectiveBytes(c)
        #expect(!(c.weightBits == 16 && effective < threshold), "\(gib) GiB: \(c)")
        #expect(c.totalBytes <= Int(gib * Self.gib))
        #expect(c.tokenBudget >= 2000 && c.tokenBudget <= 30000)
      }
    }
    // The motivating choice: 32B 4-bit at 14k vs 8B 16-bit at 30k (21.4 vs 19.4 GiB).
    #expect(try Self.plan(21.4, .math).choice.model != "qwen3-32b")
    // 2 GiB used to plan 0.6B 16-bit: a larger model at fewer bits now.
    let two = try Self.plan(2, .math)
    #expect(two.choice.model == "qwen3-1.7b" && two.choice.weightBits == 4)
  }

  @Test func knowledgeTasksUse4BitWeightsAndOneSample() throws {
    for gib in [1.0, 3, 6, 10, 20, 40, 80] {
      for kv in [PlanKV.fixed(.full), .auto] {
        let plan = try Self.plan(gib, .knowledge, kv: kv)
        #expect(plan.choice.weightBits == 4 && plan.choice.parallel == 1, "\(gib) GiB: \(plan.choice)")
      }
    }
    // Case 5: the same memory buys a bigger 4-bit model for knowledge than maths gets.
    #expect(try Self.plan(10, .knowledge).choice.model == "qwen3-8b")
    #expect(try Self.plan(10, .math).choice.model == "qwen3-4b")
  }

  @Test func tokensAboveTheThresholdAndParallelSamplesByMemory() throws {
    // Case 6.
    for gib in [10.5, 12, 14, 16] {
      #expect(try Self.plan(gib, .math).choice.tokenBudget >= 20000, "\(gib) GiB")
    }
    // Case 7.
    for gib in [2.0, 6, 12, 16] { #expect(try Self.plan(gib, .math).choice.parallel == 1) }
    for gib in [16.5, 17, 20, 28] { #expect((4..<8).contains(try Self.plan(gib, .math).choice.parallel), "\(gib) GiB") }
    for gib in [29.0, 40, 80, 200] { #expect(try Self.plan(gib, .math).choice.parallel >= 8, "\(gib) GiB") }
  }

  @Test func compressionIsAFirstClassChoice() throws {
    // Case 8: a small model short of 30k tokens — R-KV keeps the weights and lifts the budget.
    let small = try Self.plan(2.6, .math, kv: .auto)
    #expect(small.choice.model == "qwen3-1.7b" && small.choice.weightBits == 8)
    #expect(small.choice.kv.hasPrefix("rkv:") && small.choice.tokenBudget == 30000 && small.choice.totalBytes <= small.budgetBytes)
    // The same weights without compression are shown beside it.
    #expect(small.alternatives.first?.kv == "full" && small.alternatives.first?.tokenBudget == 6000)
    // At or above 8-bit 8B: 8-bit HQQ.
    let large = try Self.plan(12, .math, kv: .auto)
    #expect(large.choice.model == "qwen3-8b" && large.choice.kv.hasPrefix("hqq:8"))
    for gib in stride(from: 1.0, through: 80, by: 1.5) {
      let c = try Self.plan(gib, .math, kv: .auto).choice
      let effective = try Self.effectiveBytes(c)
      let eviction = try MemoryModel.load("qwen3-8b").estimate(weightsBits: 8, tokens: 0, convention: .paper).weightsBytes
      if c.kv.hasPrefix("rkv:") { #expect(effective < eviction, "\(gib) GiB: \(c)") }
      if c.kv.hasPrefix("hqq:") { #expect(effective >= eviction, "\(gib) GiB: \(c)") }
    }
    // A budget already at 30k with a full cache stays uncompressed.
    #expect(try Self.plan(14, .math, kv: .auto).choice.kv == "full")
  }

  /// More memory never buys a smaller model, fewer samples, or (at the same weights and samples)
  /// a shorter budget; and the choice never jumps back (3.9 → 4.0 GiB used to swap 4B 4-bit for
  /// 1.7B 16-bit).
  @Test(arguments: [PlanTask.math, .knowledge])
  func plansAreMonotoneFrom0_5To80GiB(task: PlanTask) throws {
    for kv in [PlanKV.fixed(.full), .auto] {
      var previous: (gib: Double, option: PlanOption, effective: Int)?
      for gib in stride(from: 0.75, through: 80, by: 0.25) {
        let c = try Self.plan(gib, task, kv: kv).choice
        let effective = try Self.effectiveBytes(c)
        if let p = previous {
          #expect(effective >= p.effective, "\(task) \(kv): \(p.gib) GiB \(p.option.model) \(p.option.weightBits)-bit → \(gib) GiB \(c.model) \(c.weightBits)-bit")
          #expect(c.parallel >= p.option.parallel, "\(task) \(kv): G \(p.option.parallel) at \(p.gib) GiB → \(c.parallel) at \(gib)")
          if effective == p.effective && c.parallel == p.option.parallel && c.kv == p.option.kv {
            #expect(c.tokenBudget >= p.option.tokenBudget, "\(task) \(kv): \(p.gib) → \(gib) GiB")
          }
        }
        previous = (gib, c, effective)
      }
    }
  }

  /// The engine convention with a reserve: the plan leaves the reserve free and is one the
  /// engine's `--memory-limit` (the same estimate) accepts; it is monotone too.
  @Test func engineConventionPlansFitWithTheReserve() throws {
    let reserve = PaperGuidelines.runtimeOverheadBytes
    var previous = 0
    for gib in stride(from: 1.0, through: 40, by: 1.0) {
      let plan = try Self.plan(gib, .math, convention: .engine, reserve: reserve)
      #expect(plan.choice.totalBytes <= Int(gib * Self.gib) - reserve && plan.convention == .engine)
      let effective = try Self.effectiveBytes(plan.choice)
      #expect(effective >= previous, "\(gib) GiB")
      previous = effective
      // What the engine would check for `eval` with 512 prompt tokens and the answer allowance.
      let estimate = try MemoryModel.load(plan.choice.model).estimate(
        weightsBits: plan.choice.weightBits, tokens: plan.choice.tokenBudget + 256 + 16, promptTokens: 512,
        samples: plan.choice.parallel, kv: try KVCacheSpec.parse(plan.choice.kv), convention: .engine)
      #expect(estimate.totalBytes == plan.choice.totalBytes)
    }
    // R-KV in the engine convention, at a few sizes (its cache is simulated token by token).
    for gib in [2.6, 6.0] {
      let plan = try Self.plan(gib, .math, kv: .auto, convention: .engine, reserve: reserve)
      #expect(plan.choice.kv.hasPrefix("rkv:") && plan.choice.totalBytes <= Int(gib * Self.gib) - reserve)
    }
  }

  @Test func impossibleBudgetsSayWhatTheSmallestNeeds() {
    do {
      _ = try Self.plan(0.3, .math)
      Issue.record("0.3 GiB was planned")
    } catch {
      #expect("\(error)".contains("needs 0.72 GiB"), "\(error)")
    }
    #expect(throws: (any Error).self) { try Self.plan(1, .math, reserve: 2 << 30) }
  }
}
