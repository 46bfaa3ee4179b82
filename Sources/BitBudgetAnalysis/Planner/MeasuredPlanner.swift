import Foundation

/// Plans from measured results: the most accurate scenario within the budget (the frontier's last
/// point under it), the scenarios the measurements cannot tell apart from it, and the next
/// frontier point above the budget.
public struct MeasuredPlanner: Sendable {
  public let frontier: ParetoFrontier
  /// Shown as the plan's source.
  public let source: String

  public init(points: [ResultPoint], source: String) {
    frontier = ParetoFrontier(points)
    self.source = source
  }

  public func plan(memory budget: Int, task: String) throws -> Plan {
    guard let best = frontier.best(within: budget) else {
      let smallest = frontier.points.first.map { String(format: "; the smallest measured scenario needs %.2f GiB", Double($0.memoryBytes) / Double(1 << 30)) } ?? ""
      throw PlanError.nothingFits(String(format: "no measured scenario of %@ fits %.2f GiB%@", task, Double(budget) / Double(1 << 30), smallest))
    }
    let within = frontier.points.filter { $0.memoryBytes <= budget }
    var reasons = [
      String(
        format: "The most accurate of the %d measured scenarios within the budget (of %d): %.3f ± %.3f over %d questions.", within.count,
        frontier.points.count, best.accuracy.mean, 1.96 * best.accuracy.standardError, best.accuracy.questions)
    ]
    let ties = frontier.indistinguishable(from: best, within: budget).sorted { $0.memoryBytes < $1.memoryBytes }
    if !ties.isEmpty {
      reasons.append("\(ties.count) other scenario\(ties.count == 1 ? " is" : "s are") within noise of it (not significantly less accurate at 95%); the cheapest are listed as alternatives.")
    }
    var rejected: [PlanOption] = []
    if let next = frontier.frontier.first(where: { $0.memoryBytes > budget }) {
      let note = String(
        format: "the next frontier point needs %.2f GiB more for %+.3f accuracy%@", Double(next.memoryBytes - budget) / Double(1 << 30),
        next.accuracy.mean - best.accuracy.mean, next.accuracy.isSignificantlyAbove(best.accuracy) ? "" : " (within noise)")
      reasons.append(note.prefix(1).uppercased() + note.dropFirst() + ".")
      rejected.append(PlanOption(next, note: note))
    }
    if let step = frontier.steps.last(where: { $0.to.key == best.key }) {
      reasons.append("It joined the frontier by \(step.axis.rawValue) (from \(step.from.description)).")
    }
    return Plan(
      source: source, task: task, budgetBytes: budget, choice: PlanOption(best),
      alternatives: ties.prefix(3).map { PlanOption($0, note: "within noise of the choice") }, rejected: rejected, reasons: reasons)
  }
}

/// Why the planner has no configuration to recommend.
public enum PlanError: Error, CustomStringConvertible, Sendable {
  case nothingFits(String)

  public var description: String {
    switch self {
    case .nothingFits(let message): message
    }
  }
}
