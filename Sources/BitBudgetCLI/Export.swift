import ArgumentParser
import BitBudgetEval
import BitBudgetLab
import Foundation

struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write results out as CSV, JSONL or lm-eval JSON.",
    discussion: """
      --rows samples: one row per stored sample (scenario settings, question, sample index, \
      finish, tokens, thinking tokens, extracted answer, correctness, error, seconds, KV bytes and \
      the raw output). --rows scenarios: one row per scenario (settings, questions, pass@1 and \
      maj@G with their standard errors, tokens, time, the memory estimate and peak RSS). \
      --format lm-eval writes lm-evaluation-harness' results shape (results, configs, versions, \
      n-shot, higher_is_better, n-samples), one task per scenario named TASK:KEY.
      """)

  @Option(help: ArgumentHelp("Results database (SQLite).", valueName: "file"))
  var db: String

  @Option(help: "csv, jsonl or lm-eval.")
  var format: ExportFormat = .jsonl

  @Option(help: "samples or scenarios (csv and jsonl).")
  var rows: ExportRows = .scenarios

  @Option(help: "Only the scenarios of this task (its name as stored).")
  var task: String?

  @Option(help: ArgumentHelp("Write here instead of stdout (replaced if it exists).", valueName: "file"))
  var out: String?

  func run() throws {
    guard FileManager.default.fileExists(atPath: db) else { throw CommandFailure(message: "no results database at \(db)") }
    let export = ResultExport(store: try openStore(db, readOnly: true), task: task)
    if let task, !(try export.store.scenarios().contains { $0.task == task }) {
      throw CommandFailure(message: "no scenarios of task \"\(task)\" in \(db)")
    }
    let handle: FileHandle
    if let out {
      guard FileManager.default.createFile(atPath: out, contents: nil), let file = FileHandle(forWritingAtPath: out) else {
        throw CommandFailure(message: "cannot write \(out)")
      }
      handle = file
    } else {
      handle = FileHandle.standardOutput
    }
    defer { if out != nil { try? handle.close() } }
    try export.write(format: format, rows: rows) { piece in try handle.write(contentsOf: Data(piece.utf8)) }
  }
}

extension ExportFormat: ExpressibleByArgument {}
extension ExportRows: ExpressibleByArgument {}
