/// Why the lab refused or stopped a run, phrased for the user (one line).
public enum LabError: Error, Equatable, CustomStringConvertible, Sendable {
  /// A scenario would need more memory than the limit it runs under.
  case memoryLimit(String)
  /// A model, task or grid cannot be evaluated as asked (no tokenizer, no `</think>`, an
  /// unknown memory model, …).
  case invalidScenario(String)

  public var description: String {
    switch self {
    case .memoryLimit(let message), .invalidScenario(let message): message
    }
  }
}
