import BitBudgetMemory
import Foundation

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
  /// The memory planned for, reserve included.
  public var budgetBytes: Int
  /// Kept for the process and the OS (guideline plans).
  public var reserveBytes: Int = 0
  /// How the options' bytes are counted (guideline plans; measured plans use what was recorded).
  public var convention: MemoryConvention?
  public var choice: PlanOption
  /// Other good uses of the same memory (KV compression; measured points within noise).
  public var alternatives: [PlanOption]
  /// Configurations that also fit, and why they lost.
  public var rejected: [PlanOption]
  public var reasons: [String]
}
