/// What went wrong reading a task file or scoring, phrased for the user: one line naming the
/// file, the line or row, and the problem.
public enum EvalError: Error, Equatable, CustomStringConvertible, Sendable {
  case unreadableFile(path: String, reason: String)
  /// A task file is malformed: `location` is `path:line` (JSONL) or `path row N` (CSV).
  case invalidTask(location: String, reason: String)
  case invalidInput(String)
  /// A sweep grid is malformed.
  case invalidGrid(path: String, reason: String)

  public var description: String {
    switch self {
    case .unreadableFile(let path, let reason): "cannot read \(path): \(reason)"
    case .invalidTask(let location, let reason): "invalid task file \(location): \(reason)"
    case .invalidInput(let what): what
    case .invalidGrid(let path, let reason): "invalid sweep grid \(path): \(reason)"
    }
  }
}
