import BitBudgetEngine
import BitBudgetMemory
import Foundation

/// The task families whose memory-optimal precision differs (paper §4.3): maths and code need
/// 8/16-bit weights once models are large; knowledge tasks (GPQA-Diamond) are fine at 4 bits.
public enum PlanTask: String, Sendable, Codable, CaseIterable {
  case math
  case knowledge
}

/// The paper's findings (*Not All Bits Are Equal*, §4–5; ../shared/docs/paper.md) encoded as
/// data. No per-configuration accuracies of the paper are public, so the planner follows its
/// stated thresholds and orderings, with the memory model deciding what fits.
public struct PaperGuidelines: Sendable {
  /// Qwen3 sizes the paper sweeps.
  public var models = ["qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b"]
  public var weightBits = [4, 8, 16]
  /// The scale threshold (Finding 1): the effective size of 8-bit Qwen3-4B (Table 1: 4.19 GB,
  /// GiB in fact). Below it memory goes to weights; at or above it to generation, then samples.
  public var threshold = (model: "qwen3-4b", bits: 8)
  /// Eviction beats KV quantization below the effective size of 8-bit Qwen3-8B (Finding 5, §5 of
  /// the paper; the introduction says 8-bit 4B).
  public var evictionThreshold = (model: "qwen3-8b", bits: 8)
  /// The paper's shortest token budget: a configuration must afford at least this.
  public var minimumTokens = 2000
  /// Weights at or above the threshold are chosen only with at least this many tokens (the
  /// paper's 3.8 GiB case picks 4B 4-bit at 10k tokens; below it, capacity wins at any budget).
  public var transitionTokens = 10000
  /// Frontier configurations above ~10 GB use at least 20k tokens (§4.2): above the threshold,
  /// weights grow only while this many tokens still fit.
  public var saturationTokens = 20000
  /// The paper's longest budget (30k); more is not planned.
  public var maximumTokens = 30000
  /// G by total memory (Finding 3, §4.4): 4 ≤ G < 8 for 16.4–28.9 GB, G ≥ 8 above (GiB, as Table 1).
  public var parallelFrom: [(gib: Double, samples: Int)] = [(16.4, 4), (28.9, 8)]
  /// Budgets are rounded down to this many tokens.
  public var tokenStep = 1000

  public init() {}

  /// The plan for `budget` bytes (paper convention: weights + KV of G samples; the prompt is not
  /// counted) on `task`.
  public func plan(memory budget: Int, task: PlanTask) throws -> Plan {
    let thresholdBytes = try weightBytes(threshold.model, threshold.bits)
    let evictionBytes = try weightBytes(evictionThreshold.model, evictionThreshold.bits)
    var candidates: [Candidate] = []
    for name in models {
      let memory = try MemoryModel.load(name)
      for bits in weightBits {
        let weights = try memory.estimate(weightsBits: bits, tokens: 0, convention: .paper).weightsBytes
        // Maths: 4-bit weights only while capacity dominates (below the threshold); large 4-bit
        // models lose to 8/16-bit ones of similar size (8B 8-bit > 14B 4-bit; 32B 4-bit dominated).
        // Knowledge: 4-bit is broadly memory-optimal, so only 4-bit (more parameters per byte).
        switch task {
        case .math where bits == 4 && weights >= thresholdBytes: continue
        case .knowledge where bits != 4: continue
        default: break
        }
        candidates.append(Candidate(model: name, bits: bits, weightsBytes: weights, memory: memory))
      }
    }
    let feasible = try candidates.filter { try $0.tokens(fitting: budget, samples: 1, limit: maximumTokens) >= minimumTokens }
    guard !feasible.isEmpty else {
      let smallest = try candidates.map { try ($0, $0.totalBytes(tokens: minimumTokens, samples: 1)) }.min { $0.1 < $1.1 }
      let needed = smallest.map { " (the smallest, \($0.0.model) \($0.0.bits)-bit with \(minimumTokens) tokens, needs \(Self.gib($0.1)))" } ?? ""
      throw EngineError.invalidInput("\(Self.gib(budget)) fits no \(task.rawValue) configuration of the paper's models\(needed)")
    }
    var reasons: [String] = []
    // Largest effective size first; at equal size, more bits (8B 8-bit over 14B 4-bit).
    let byCapacity = feasible.sorted { ($0.weightsBytes, $0.bits) > ($1.weightsBytes, $1.bits) }
    // Weights at or above the threshold pay only with a real generation budget behind them.
    let large = try byCapacity.filter {
      try $0.weightsBytes >= thresholdBytes && $0.tokens(fitting: budget, samples: 1, limit: maximumTokens) >= transitionTokens
    }
    var chosen: (Candidate, samples: Int, tokens: Int)
    if large.isEmpty {
      let top = byCapacity.first { $0.weightsBytes < thresholdBytes } ?? byCapacity[0]
      chosen = (top, 1, try top.tokens(fitting: budget, samples: 1, limit: maximumTokens))
      reasons.append(
        "Below the paper's scale threshold (effective size of 8-bit Qwen3-4B, \(Self.gib(thresholdBytes))) memory is better spent on weights than on tokens (Finding 1): the largest weights that still allow \(minimumTokens) tokens are \(top.model) \(top.bits)-bit (\(Self.gib(top.weightsBytes))).")
      reasons.append("Parallel samples do not pay below the threshold (Finding 3): G = 1.")
    } else {
      let wanted = parallelFrom.last { Double(budget) >= $0.gib * Double(1 << 30) }?.samples ?? 1
      var pick: (Candidate, Int, Int)?
      for samples in [wanted, 4, 1] where samples <= wanted {
        if let c = try large.first(where: { try $0.tokens(fitting: budget, samples: samples, limit: maximumTokens) >= saturationTokens }) {
          pick = (c, samples, try c.tokens(fitting: budget, samples: samples, limit: maximumTokens))
          break
        }
      }
      if let pick {
        chosen = (pick.0, pick.1, pick.2)
        reasons.append(
          "At or above the scale threshold (\(Self.gib(thresholdBytes))) the frontier grows by longer generation (Finding 1; frontier configurations above ~10 GB use ≥ \(saturationTokens / 1000)k tokens): the largest weights that still allow \(saturationTokens) tokens per sample are \(pick.0.model) \(pick.0.bits)-bit.")
        // Beyond the largest model at full budget, memory buys more samples (G grows with the budget).
        if chosen.samples >= 8 && chosen.tokens >= maximumTokens,
          let more = try chosen.0.memory.maxSamples(
            fitting: budget, limit: 64, weightsBits: chosen.0.bits, tokens: maximumTokens, convention: .paper),
          more > chosen.samples
        {
          chosen.samples = more
        }
      } else {
        // Between the threshold and saturation (roughly 4–10 GiB) the frontier still moves by
        // effective size (§4.2), with at least the transition budget of tokens.
        let c = large[0]
        chosen = (c, 1, try c.tokens(fitting: budget, samples: 1, limit: maximumTokens))
        reasons.append(
          "Between the scale threshold and saturation (roughly 4–10 GiB) the frontier still moves by effective size (§4.2): the largest weights that keep \(transitionTokens) tokens are \(c.model) \(c.bits)-bit.")
      }
      if chosen.samples > 1 {
        reasons.append(
          "Majority voting pays at this scale; the paper finds 4 ≤ G < 8 optimal for 16.4–28.9 GB and G ≥ 8 above (Finding 3): G = \(chosen.samples).")
      } else {
        reasons.append(budget >= Int(16.4 * Double(1 << 30))
          ? "G = 1: no configuration at this budget keeps \(saturationTokens) tokens per sample with more samples."
          : "Below 16.4 GB the paper finds no gain from parallel samples over longer generation: G = 1.")
      }
    }
    switch task {
    case .math:
      reasons.append(chosen.0.bits == 4
        ? "4-bit weights are acceptable for maths only while capacity dominates (below the threshold; e.g. 4B 4-bit at 10k beats 1.7B 8-bit at 18k)."
        : "Maths: 8- or 16-bit weights; 4-bit is memory-inefficient for large models (8B 8-bit beats 14B 4-bit; 32B 4-bit is dominated by 14B 8-bit and 8B 16-bit, §4.2–4.3).")
    case .knowledge:
      reasons.append("Knowledge tasks (GPQA-Diamond): 4-bit weights remain broadly memory-optimal (§4.3), so the budget buys more parameters.")
    }
    let tokens = chosen.tokens / tokenStep * tokenStep
    let (c, samples) = (chosen.0, chosen.samples)
    let main = try option(c, samples: samples, tokens: tokens, kv: .full)
    // KV compression lets the same memory generate longer (Finding 4); eviction for small
    // effective sizes, 8-bit KV quantization (competitive; 4-bit drops) for large ones.
    var alternatives: [PlanOption] = []
    if tokens < maximumTokens {
      if c.weightsBytes < evictionBytes {
        let held = max(1024, (tokens - 128) / 1024 * 1024)
        if held + 128 <= tokens {
          var alternative = try option(c, samples: samples, tokens: maximumTokens, kv: try KVCacheSpec.parse("rkv:\(held)"))
          alternative.note = "R-KV eviction keeps \(held) + 128 tokens per sample whatever the budget, so the same memory allows a \(maximumTokens)-token budget; below 8-bit 8B eviction beats KV quantization (Finding 5)."
          alternatives.append(alternative)
        }
      } else {
        let longer = try c.tokens(fitting: budget, samples: samples, limit: maximumTokens, kv: try KVCacheSpec.parse("hqq:8")) / tokenStep * tokenStep
        if longer > tokens {
          var alternative = try option(c, samples: samples, tokens: longer, kv: try KVCacheSpec.parse("hqq:8"))
          alternative.note = "8-bit KV quantization (competitive; 4-bit KV drops) nearly doubles the tokens in the same memory; at this size eviction and quantization are comparable (Finding 5)."
          alternatives.append(alternative)
        }
      }
    }
    // What else fits, and why it lost.
    var rejected: [PlanOption] = []
    for other in byCapacity where !(other.model == c.model && other.bits == c.bits) {
      let t = try other.tokens(fitting: budget, samples: 1, limit: maximumTokens) / tokenStep * tokenStep
      var o = try option(other, samples: 1, tokens: t, kv: .full)
      o.note = other.weightsBytes < c.weightsBytes ? "smaller effective size" : "leaves fewer tokens than the generation-bound regime wants"
      rejected.append(o)
      if rejected.count == 3 { break }
    }
    return Plan(
      source: "paper guidelines", task: task.rawValue, budgetBytes: budget, choice: main, alternatives: alternatives, rejected: rejected,
      reasons: reasons)
  }

  func weightBytes(_ model: String, _ bits: Int) throws -> Int {
    try MemoryModel.load(model).estimate(weightsBits: bits, tokens: 0, convention: .paper).weightsBytes
  }

  func option(_ c: Candidate, samples: Int, tokens: Int, kv: KVCacheSpec) throws -> PlanOption {
    let estimate = try c.memory.estimate(weightsBits: c.bits, tokens: tokens, samples: samples, kv: kv, convention: .paper)
    return PlanOption(
      model: c.model, weightBits: c.bits, kv: kv.description, tokenBudget: tokens, parallel: samples, weightsBytes: estimate.weightsBytes,
      kvBytes: estimate.kvBytes, totalBytes: estimate.totalBytes, accuracy: nil, note: nil)
  }

  static func gib(_ bytes: Int) -> String { ByteSize.gib(bytes) }

  struct Candidate {
    let model: String
    let bits: Int
    let weightsBytes: Int
    let memory: MemoryModel

    func tokens(fitting budget: Int, samples: Int, limit: Int, kv: KVCacheSpec = .full) throws -> Int {
      try memory.maxTokens(fitting: budget, limit: limit, weightsBits: bits, samples: samples, kv: kv, convention: .paper) ?? -1
    }

    func totalBytes(tokens: Int, samples: Int) throws -> Int {
      try memory.estimate(weightsBits: bits, tokens: tokens, samples: samples, convention: .paper).totalBytes
    }
  }
}

/// One configuration of a plan.
public struct PlanOption: Sendable, Codable, Equatable {
  public var model: String
  public var weightBits: Int
  public var kv: String
  public var tokenBudget: Int
  public var parallel: Int
  /// Unknown for measured scenarios of models the memory model cannot read.
  public var weightsBytes: Int?
  /// Unknown for measured scenarios (their total is what was recorded).
  public var kvBytes: Int?
  public var totalBytes: Int
  /// Measured accuracy (plans from results).
  public var accuracy: Accuracy?
  public var note: String?
}

extension PlanOption {
  /// A measured scenario as a plan option.
  public init(_ point: ResultPoint, note: String? = nil) {
    self.init(
      model: point.model, weightBits: point.weightBits, kv: point.kv, tokenBudget: point.tokenBudget, parallel: point.parallel,
      weightsBytes: point.weightsBytes, kvBytes: nil, totalBytes: point.memoryBytes, accuracy: point.accuracy, note: note)
  }
}

/// A recommended configuration for a memory budget and the reasons for it.
public struct Plan: Sendable, Codable {
  /// `paper guidelines` or `measured results (FILE)`.
  public var source: String
  public var task: String
  public var budgetBytes: Int
  public var choice: PlanOption
  /// Other good uses of the same memory (KV compression; measured points within noise).
  public var alternatives: [PlanOption]
  /// Configurations that also fit, and why they lost.
  public var rejected: [PlanOption]
  public var reasons: [String]
}
