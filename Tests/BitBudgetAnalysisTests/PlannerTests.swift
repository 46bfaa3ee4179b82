import BitBudgetAnalysis
import Foundation
import Testing

/// The paper-guideline planner on the cases the paper states (paper.md §4.2–4.4).
@Suite struct PlannerTests {
  static let gib = Double(1 << 30)
  static func plan(_ gib: Double, _ task: PlanTask) throws -> Plan {
    try PaperGuidelines().plan(memory: Int(gib * Self.gib), task: task)
  }

  @Test func smallBudgetsBuyWeightsBeforeTokens() throws {
    // ~2.6 GiB: Qwen3-1.7B 8-bit at 6k tokens beats 0.6B 8-bit at 18k.
    let small = try Self.plan(2.6, .math)
    #expect(small.choice.model == "qwen3-1.7b" && small.choice.weightBits == 8 && small.choice.tokenBudget == 6000)
    #expect(small.choice.parallel == 1 && small.choice.kv == "full")
    #expect(small.rejected.contains { $0.model == "qwen3-0.6b" && $0.weightBits == 8 && $0.tokenBudget >= 17000 })
    // ~3.86 GiB: 4B 4-bit at 10k beats 1.7B 8-bit at 18k.
    let medium = try Self.plan(3.86, .math)
    #expect(medium.choice.model == "qwen3-4b" && medium.choice.weightBits == 4 && medium.choice.tokenBudget == 10000)
  }

  @Test func mathNeverTakesLarge4BitWeights() throws {
    // 8B 8-bit over 14B 4-bit; 32B 4-bit (dominated by 14B 8-bit and 8B 16-bit) never.
    for gib in stride(from: 1.0, through: 200, by: 1.5) {
      let plan = try Self.plan(gib, .math)
      #expect(!(plan.choice.weightBits == 4 && ["qwen3-8b", "qwen3-14b", "qwen3-32b"].contains(plan.choice.model)), "\(gib) GiB: \(plan.choice)")
      #expect(plan.choice.totalBytes <= Int(gib * Self.gib))
      #expect(plan.choice.tokenBudget >= 2000 && plan.choice.tokenBudget <= 30000)
    }
    #expect(try Self.plan(21.4, .math).choice.model != "qwen3-32b")
  }

  @Test func knowledgeTasksUse4BitWeights() throws {
    for gib in [1.0, 3, 6, 10, 20, 40, 80] {
      #expect(try Self.plan(gib, .knowledge).choice.weightBits == 4)
    }
    // The same memory buys a bigger 4-bit model for knowledge than maths gets.
    #expect(try Self.plan(10, .knowledge).choice.model == "qwen3-8b")
    #expect(try Self.plan(10, .math).choice.model == "qwen3-4b")
  }

  @Test func parallelSamplesOnlyAboveTheThresholdAndGrowWithTheBudget() throws {
    for gib in [2.0, 6, 12, 16] { #expect(try Self.plan(gib, .math).choice.parallel == 1) }
    for gib in [17.0, 20, 28] { #expect((4..<8).contains(try Self.plan(gib, .math).choice.parallel)) }
    for gib in [30.0, 40, 80, 200] { #expect(try Self.plan(gib, .math).choice.parallel >= 8) }
    // Above the threshold the budget goes to generation: ≥ 20k tokens once it fits.
    #expect(try Self.plan(12, .math).choice.tokenBudget >= 20000)
  }

  @Test func compressionIsOfferedAsAnAlternative() throws {
    // Small model short of 30k tokens: R-KV eviction keeps the memory and lifts the budget.
    let small = try Self.plan(2.6, .math)
    let eviction = try #require(small.alternatives.first)
    #expect(eviction.kv.hasPrefix("rkv:") && eviction.tokenBudget == 30000 && eviction.totalBytes <= small.budgetBytes)
    // Large weights: 8-bit KV quantization.
    let large = try Self.plan(12, .math)
    #expect(large.alternatives.first?.kv.hasPrefix("hqq:8") == true)
  }

  @Test func impossibleBudgetsSayWhatTheSmallestNeeds() {
    #expect(throws: (any Error).self) { try Self.plan(0.3, .math) }
    do {
      _ = try Self.plan(0.3, .math)
    } catch {
      #expect("\(error)".contains("needs 0.72 GiB"), "\(error)")
    }
  }
}
