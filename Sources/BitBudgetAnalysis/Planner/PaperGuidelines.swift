import BitBudgetEngine
import BitBudgetKernels
import BitBudgetMemory
import Foundation

/// The task families whose memory-optimal configuration differs (paper §4.3–4.4): maths and code
/// need 8/16-bit weights once models are large and gain from majority voting; knowledge tasks
/// (GPQA-Diamond) are fine at 4 bits, and the paper measured parallel scaling on maths only.
public enum PlanTask: String, Sendable, Codable, CaseIterable {
  case math
  case knowledge
}

/// Which KV caches a guideline plan may use.
public enum PlanKV: Sendable, Equatable {
  /// Full caches or the paper's compression where it buys a larger model, more samples or a
  /// longer budget (Finding 4): R-KV eviction (2k/4k/8k tokens) below the effective size of 8-bit
  /// Qwen3-8B, 8-bit HQQ quantization at or above it (Finding 5).
  case auto
  /// This policy only (`full`, `rkv:4096`, `hqq:8`, …).
  case fixed(KVCacheSpec)
}

/// The paper's findings (*Not All Bits Are Equal*, §4–5; `docs/concepts.md`) encoded as data. No
/// per-configuration accuracies of the paper are public, so the planner follows its stated
/// thresholds and orderings, with the memory model deciding what fits:
///
/// 1. Below the scale threshold (the effective size of 8-bit Qwen3-4B) memory buys weights: the
///    largest effective size that still allows the shortest budget (2k tokens). For maths small
///    models take 8-bit (or 4-bit where it buys a larger model: 4B 4-bit beats 1.7B 8-bit), never
///    16-bit (Finding 2: 8-bit is optimal for small models).
/// 2. At or above the threshold, once such weights keep 10k tokens, memory buys generation: the
///    largest weights that keep 20k tokens per sample (the frontier above ~10 GB), else 10k.
/// 3. Maths: G samples by total memory — 4 from 16.4 GiB, 8 from 28.9 GiB (Finding 3), each
///    sample keeping at least 10k tokens; beyond the largest model at the longest budget, more.
/// 4. KV compression competes on equal terms in `.auto` (a larger model, more samples or a longer
///    budget wins; at equal terms the lighter compression).
///
/// Every rule picks the best of what fits, and what fits only grows with memory, so the chosen
/// effective size never decreases as memory grows (`PlannerTests` checks 0.5–80 GiB).
public struct PaperGuidelines: Sendable {
  /// Qwen3 sizes the paper sweeps.
  public var models = ["qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b"]
  public var weightBits = [4, 8, 16]
  /// The scale threshold (Finding 1): the effective size of 8-bit Qwen3-4B (Table 1: 4.19 GB,
  /// GiB in fact).
  public var threshold = (model: "qwen3-4b", bits: 8)
  /// Eviction beats KV quantization below the effective size of 8-bit Qwen3-8B (Finding 5, §5 of
  /// the paper; the introduction says 8-bit 4B).
  public var evictionThreshold = (model: "qwen3-8b", bits: 8)
  /// The paper's R-KV budgets (tokens kept per sample).
  public var evictionBudgets = [8192, 4096, 2048]
  /// The paper's shortest token budget: a configuration must afford at least this.
  public var minimumTokens = 2000
  /// Weights at or above the threshold are chosen only with at least this many tokens per sample
  /// (the paper's 3.86 GiB case picks 4B 4-bit at 10k tokens).
  public var transitionTokens = 10000
  /// Frontier configurations above ~10 GB use at least 20k tokens (§4.2): with one sample, the
  /// weights grow only while this many tokens still fit.
  public var saturationTokens = 20000
  /// The paper's longest budget (30k); more is not planned.
  public var maximumTokens = 30000
  /// G by total memory (Finding 3, §4.4): 4 ≤ G < 8 for 16.4–28.9 GB, G ≥ 8 above (GiB, as Table 1).
  public var parallelFrom: [(gib: Double, samples: Int)] = [(16.4, 4), (28.9, 8)]
  /// Budgets are rounded down to this many tokens.
  public var tokenStep = 1000
  /// What the memory is counted as: `.paper` (weights + KV, Table 1) or `.engine` (what
  /// BitBudget allocates, scratch included: a plan then passes `--memory-limit`).
  public var convention = MemoryConvention.paper
  /// Engine convention: the prompt's tokens, and what follows the thinking budget (the answer
  /// allowance and the forced text), both held in the KV cache.
  public var promptTokens = 512
  public var answerTokens = 256 + 16
  /// Engine convention: the threads whose scratch is counted.
  public var threads = ThreadPool.defaultThreadCount

  /// The process itself beyond weights, KV and scratch: runtime, binary and tokenizer, plus with
  /// eviction the prompt's last chunk held before compression (measured ≤ 32 MiB on Qwen3-0.6B;
  /// docs/memory-model.md).
  public static let runtimeOverheadBytes = 32 << 20

  public init() {}

  /// The plan for `memory` bytes, of which `reserve` are kept for the process and the OS.
  public func plan(memory: Int, task: PlanTask, kv: PlanKV = .auto, reserve: Int = 0) throws -> Plan {
    let budget = memory - reserve
    guard reserve >= 0, budget > 0 else {
      throw EngineError.invalidInput("the reserve of \(Self.gib(reserve)) leaves nothing of \(Self.gib(memory)) to plan with")
    }
    let thresholdBytes = try paperWeightBytes(threshold.model, threshold.bits)
    let evictionBytes = try paperWeightBytes(evictionThreshold.model, evictionThreshold.bits)
    var candidates: [Candidate] = []
    for name in models {
      let preset = try MemoryModel.load(name)
      for bits in weightBits {
        let size = try paperWeightBytes(name, bits)
        // The layout quantized once here, not at each of the searches' estimates.
        let memory = MemoryModel(
          name: name, config: preset.config, layout: try preset.engineLayout(weightsBits: bits), paperCountsTiedHead: preset.paperCountsTiedHead)
        switch task {
        // Maths: 4-bit only while capacity dominates (below the threshold: 4B 4-bit beats 1.7B
        // 8-bit); large 4-bit models lose to 8/16-bit ones of similar size. 16-bit only for large
        // models: small ones do best at 8 bits.
        case .math where bits == 4 && size >= thresholdBytes: continue
        case .math where bits == 16 && size < thresholdBytes: continue
        // Knowledge: 4-bit is broadly memory-optimal, so only 4-bit (more parameters per byte).
        case .knowledge where bits != 4: continue
        default: break
        }
        let policies: [KVCacheSpec]
        switch kv {
        case .fixed(let spec): policies = [spec]
        case .auto:
          policies = [.full] + (size < evictionBytes
            ? try evictionBudgets.map { try KVCacheSpec.parse("rkv:\($0)") }
            : [try KVCacheSpec.parse("hqq:8")])
        }
        candidates.append(Candidate(model: name, bits: bits, effectiveBytes: size, memory: memory, policies: policies))
      }
    }
    let largestEffective = candidates.map(\.effectiveBytes).max() ?? 0

    var reasons: [String] = []
    let small = try best(candidates.filter { $0.effectiveBytes < thresholdBytes }, budget: budget, samples: 1, minimumTokens: minimumTokens)
    let large = try best(candidates.filter { $0.effectiveBytes >= thresholdBytes }, budget: budget, samples: 1, minimumTokens: transitionTokens)
    var chosen: Option
    if large == nil {
      guard let small else { throw try nothingFits(budget: budget, task: task, candidates: candidates, kv: kv) }
      chosen = small
      reasons.append(
        "Below the paper's scale threshold (the effective size of 8-bit Qwen3-4B, \(Self.gib(thresholdBytes))) memory is better spent on weights than on tokens (Finding 1): the largest weights that still allow \(minimumTokens) tokens are \(small.candidate.model) \(small.candidate.bits)-bit (\(Self.gib(small.candidate.effectiveBytes)) at the paper's count).")
      if task == .math {
        reasons.append("Maths: small models do best at 8 bits, not 16 (Finding 2); 4 bits only where they buy a larger model (4B 4-bit at 10k beats 1.7B 8-bit at 18k).")
      }
      reasons.append("Parallel samples do not pay below the threshold (Finding 3): G = 1.")
    } else {
      // Finding 3 is stated in total memory, so the reserve does not move the thresholds.
      let wanted = task == .math ? parallelFrom.last { Double(memory) >= $0.gib * Double(1 << 30) }?.samples ?? 1 : 1
      let aboveThreshold = candidates.filter { $0.effectiveBytes >= thresholdBytes }
      var pick: Option?
      if wanted > 1 {
        for samples in Set([wanted, 4]).sorted(by: >) where samples <= wanted {
          pick = try best(aboveThreshold, budget: budget, samples: samples, minimumTokens: transitionTokens)
          if pick != nil { break }
        }
      }
      if pick == nil {
        pick = try best(aboveThreshold, budget: budget, samples: 1, minimumTokens: saturationTokens)
          ?? best(aboveThreshold, budget: budget, samples: 1, minimumTokens: transitionTokens)
      }
      guard var pick else { throw try nothingFits(budget: budget, task: task, candidates: candidates, kv: kv) }
      // Beyond the largest model at the longest budget, memory buys more samples.
      if pick.samples >= 8 && pick.tokens >= maximumTokens && pick.candidate.effectiveBytes == largestEffective,
        let more = try pick.candidate.memory.maxSamples(
          fitting: budget, limit: 64, weightsBits: pick.candidate.bits, tokens: heldTokens(maximumTokens), promptTokens: promptTokens,
          kv: pick.kv, convention: convention, threads: threads),
        more > pick.samples
      {
        pick.samples = more
      }
      chosen = pick
      if pick.tokens >= saturationTokens || pick.samples > 1 {
        reasons.append(
          "At or above the scale threshold (\(Self.gib(thresholdBytes))) the frontier grows by generation (Finding 1; configurations above ~10 GB use ≥ \(saturationTokens / 1000)k tokens): the largest weights that keep \(pick.samples > 1 ? transitionTokens : saturationTokens) tokens per sample\(pick.samples > 1 ? " for \(pick.samples) samples" : "") are \(pick.candidate.model) \(pick.candidate.bits)-bit.")
      } else {
        reasons.append(
          "Between the scale threshold and saturation (roughly 4–10 GiB) the frontier still moves by effective size (§4.2): the largest weights that keep \(transitionTokens) tokens are \(pick.candidate.model) \(pick.candidate.bits)-bit.")
      }
      switch (task, pick.samples) {
      case (.knowledge, _):
        reasons.append("G = 1: the paper measured majority voting on maths only.")
      case (_, 1):
        reasons.append("Below 16.4 GB the paper finds no gain from parallel samples over longer generation (Finding 3): G = 1.")
      default:
        reasons.append(
          "Majority voting pays at this scale; the paper finds 4 ≤ G < 8 optimal for 16.4–28.9 GB and G ≥ 8 above (Finding 3): G = \(pick.samples), each sample with ≥ \(transitionTokens / 1000)k tokens.")
      }
    }
    switch task {
    case .math where chosen.candidate.effectiveBytes >= thresholdBytes:
      reasons.append("Maths: 8- or 16-bit weights; 4-bit is memory-inefficient for large models (8B 8-bit beats 14B 4-bit; 32B 4-bit is dominated by 14B 8-bit and 8B 16-bit, §4.2–4.3).")
    case .knowledge:
      reasons.append("Knowledge tasks (GPQA-Diamond): 4-bit weights remain broadly memory-optimal (§4.3), so the budget buys more parameters.")
    default: break
    }
    if chosen.kv.eviction != nil {
      reasons.append("R-KV eviction keeps \(chosen.kv.eviction.map { "\($0.budget)" } ?? "") tokens per sample whatever the budget: here it buys a larger model or a longer budget, and below 8-bit 8B eviction beats KV quantization (Findings 4–5).")
    } else if chosen.kv.quantization != nil {
      reasons.append("8-bit KV quantization (competitive; 4-bit KV drops) nearly doubles the tokens in the same memory; at this size eviction and quantization are comparable (Findings 4–5).")
    }

    let main = try option(chosen)
    var alternatives: [PlanOption] = []
    // The same weights and samples with the other kind of cache (full or compressed), for comparison.
    if case .auto = kv {
      let isFull = chosen.kv == .full
      let other = try chosen.candidate.policies.filter { ($0 == .full) != isFull }
        .compactMap { try fit(chosen.candidate, policy: $0, budget: budget, samples: chosen.samples) }
        .max { $0.rank < $1.rank }
      if let other, other.tokens >= minimumTokens {
        var alternative = try option(other)
        alternative.note = other.kv == .full
          ? "without KV compression the same weights keep \(other.tokens / 1000)k tokens per sample"
          : "\(other.kv.description) keeps the same weights with a \(other.tokens / 1000)k-token budget"
        alternatives.append(alternative)
      }
    }
    // What else fits, and why it lost.
    var rejected: [PlanOption] = []
    let fitting = try candidates.compactMap { c in
      try c.policies.compactMap { try fit(c, policy: $0, budget: budget, samples: 1) }.filter { $0.tokens >= minimumTokens }.max { $0.rank < $1.rank }
    }.sorted { $0.rank > $1.rank }
    for other in fitting where !(other.candidate.model == chosen.candidate.model && other.candidate.bits == chosen.candidate.bits) {
      var o = try option(other)
      o.note = other.candidate.effectiveBytes < chosen.candidate.effectiveBytes
        ? "smaller effective size" : "leaves fewer tokens per sample than the generation-bound regime wants"
      rejected.append(o)
      if rejected.count == 3 { break }
    }
    return Plan(
      source: "paper guidelines", task: task.rawValue, budgetBytes: memory, reserveBytes: reserve, convention: convention, choice: main,
      alternatives: alternatives, rejected: rejected, reasons: reasons)
  }

  /// The best option of `candidates` with `samples` samples of at least `minimumTokens` tokens:
  /// the largest effective size, then the longest budget, then the lightest compression.
  func best(_ candidates: [Candidate], budget: Int, samples: Int, minimumTokens: Int) throws -> Option? {
    try candidates.flatMap { c in try c.policies.compactMap { try fit(c, policy: $0, budget: budget, samples: samples) } }
      .filter { $0.tokens >= minimumTokens }
      .max { $0.rank < $1.rank }
  }

  /// The longest budget (a multiple of `tokenStep`, at most `maximumTokens`) of `samples` samples
  /// of `c` under `policy` within `budget`; nil when none fits or an eviction policy would not
  /// evict (a full cache does the same).
  func fit(_ c: Candidate, policy: KVCacheSpec, budget: Int, samples: Int) throws -> Option? {
    let extra = heldTokens(0)
    guard let tokens = try c.memory.maxTokens(
      fitting: budget, limit: maximumTokens + extra, weightsBits: c.bits, promptTokens: promptTokens, samples: samples, kv: policy,
      convention: convention, threads: threads)
    else { return nil }
    let rounded = min(maximumTokens, max(0, tokens - extra) / tokenStep * tokenStep)
    if let eviction = policy.eviction, rounded <= eviction.budget + eviction.interval { return nil }
    return Option(candidate: c, kv: policy, samples: samples, tokens: rounded)
  }

  /// Tokens a sample's cache holds for a thinking budget of `tokens`: the paper counts the budget;
  /// the engine also holds the answer allowance and the forced text.
  func heldTokens(_ tokens: Int) -> Int { convention == .engine ? tokens + answerTokens : tokens }

  /// Why nothing fits: what the smallest candidate needs for the shortest budget with the asked
  /// KV policy (`auto`: a full cache; an eviction policy keeps the tokens above its budget).
  func nothingFits(budget: Int, task: PlanTask, candidates: [Candidate], kv: PlanKV) throws -> EngineError {
    var policy = KVCacheSpec.full
    if case .fixed(let spec) = kv { policy = spec }
    let tokens = max(minimumTokens, policy.eviction.map { $0.budget + $0.interval + tokenStep } ?? 0)
    let smallest = try candidates.map { c in
      (c, try c.memory.estimate(
        weightsBits: c.bits, tokens: heldTokens(tokens), promptTokens: promptTokens, kv: policy, convention: convention, threads: threads
      ).totalBytes)
    }.min { $0.1 < $1.1 }
    let needed = smallest.map { " (the smallest, \($0.0.model) \($0.0.bits)-bit with \(tokens) tokens and KV \(policy), needs \(Self.gib($0.1)))" } ?? ""
    return EngineError.invalidInput("\(Self.gib(budget)) fits no \(task.rawValue) configuration of the paper's models\(needed)")
  }

  func paperWeightBytes(_ model: String, _ bits: Int) throws -> Int {
    try MemoryModel.load(model).estimate(weightsBits: bits, tokens: 0, convention: .paper).weightsBytes
  }

  func option(_ o: Option) throws -> PlanOption {
    let estimate = try o.candidate.memory.estimate(
      weightsBits: o.candidate.bits, tokens: heldTokens(o.tokens), promptTokens: promptTokens, samples: o.samples, kv: o.kv,
      convention: convention, threads: threads)
    return PlanOption(
      model: o.candidate.model, weightBits: o.candidate.bits, kv: o.kv.description, tokenBudget: o.tokens, parallel: o.samples,
      weightsBytes: estimate.weightsBytes, kvBytes: estimate.kvPeakBytes, totalBytes: estimate.totalBytes, accuracy: nil, note: nil)
  }

  static func gib(_ bytes: Int) -> String { ByteSize.gib(bytes) }

  struct Candidate {
    let model: String
    let bits: Int
    /// The paper's weight bytes (its "effective size"), whatever the convention of the plan.
    let effectiveBytes: Int
    let memory: MemoryModel
    /// KV policies to try, lightest compression first.
    let policies: [KVCacheSpec]
  }

  struct Option {
    let candidate: Candidate
    let kv: KVCacheSpec
    var samples: Int
    let tokens: Int

    /// Larger is better: effective size, then samples, then tokens, then lighter compression.
    var rank: (Int, Int, Int, Int) {
      (candidate.effectiveBytes, samples, tokens, -(candidate.policies.firstIndex(of: kv) ?? 0))
    }
  }
}
