import Foundation

extension EvalTask {
  /// The paper's benchmarks by name. No copy ships (GPQA's authors ask that it not be published;
  /// AIME problems are the MAA's): the name resolves to a file in the task folder.
  public static let namedTasks: [String: (file: String, answerType: AnswerType, source: String)] = [
    "aime25": ("aime25.jsonl", .integer, "the 30 problems of Hugging Face's math-ai/aime25 (test.jsonl: problem, answer, id)"),
    "gpqa-diamond": ("gpqa_diamond.csv", .letter, "gpqa_diamond.csv from the GPQA dataset (github.com/idavidrein/gpqa, Hugging Face Idavidrein/gpqa)"),
  ]

  /// Where named tasks are looked up: `$BITBUDGET_TASKS`, else `~/.cache/bitbudget/tasks`.
  public static var taskFolder: String {
    if let folder = ProcessInfo.processInfo.environment["BITBUDGET_TASKS"], !folder.isEmpty { return folder }
    return (NSHomeDirectory() as NSString).appendingPathComponent(".cache/bitbudget/tasks")
  }

  /// A task from a `.jsonl` or GPQA `.csv` file, or a named task (`aime25`, `gpqa-diamond`) from
  /// the task folder; `answerType` applies to JSONL files (default integer).
  public static func load(_ spec: String, answerType: AnswerType? = nil, gpqaSeed: UInt64 = 0) throws -> EvalTask {
    var path = spec
    var type = answerType
    var name: String?
    if let named = namedTasks[spec.lowercased()], !FileManager.default.fileExists(atPath: spec) {
      path = (taskFolder as NSString).appendingPathComponent(named.file)
      guard FileManager.default.fileExists(atPath: path) else {
        throw EvalError.unreadableFile(
          path: path, reason: "the task \(spec) is not bundled; put \(named.source) there, or set BITBUDGET_TASKS to its folder")
      }
      type = type ?? named.answerType
      name = spec.lowercased()
    }
    if path.lowercased().hasSuffix(".csv") {
      guard type == nil || type == .letter else {
        throw EvalError.invalidInput("\(spec): a GPQA CSV has letter answers, not \(type?.rawValue ?? "")")
      }
      return try gpqa(csvPath: path, seed: gpqaSeed, name: name ?? (path as NSString).lastPathComponent)
    }
    return try jsonl(path: path, answerType: type ?? .integer, name: name)
  }
}
