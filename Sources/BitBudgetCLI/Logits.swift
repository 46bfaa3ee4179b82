import ArgumentParser
import BitBudgetEngine
import Foundation

struct Logits: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the logits of every position of a token sequence.",
    discussion: "Output: {\"logits\": [[float × vocab] × positions]} (float32 values). Activations are exact (f32) unless --activations rounded is given.")

  @OptionGroup var options: ModelOptions

  @Option(help: ArgumentHelp("Token ids, comma-separated.", valueName: "ids"))
  var ids: TokenIds

  @Flag(help: "Print one JSON object (the only output format of this command).")
  var json = false

  func run() throws {
    let model = try options.loadModel()
    // Logits are printed to be compared with another engine's: exact unless asked otherwise.
    let session = try options.session(model, maxRows: 64, maxLogitRows: 64, defaultActivations: .exact)
    let cache = try options.makeCache(session)
    // Every logit is computed and checked before anything is printed, so a failure leaves no
    // partial JSON on stdout (positions × vocab floats are held: 0.6 MB per position for Qwen3).
    var rows: [[Float]] = []
    _ = try session.prefill(ids.values, cache: cache, logits: .all) { view in
      for r in 0..<view.rows {
        let row = Array(view.row(r))
        if let bad = row.first(where: { !$0.isFinite }) {
          throw CommandFailure(message: "the model produced a non-finite logit (\(bad)) at position \(rows.count); are the weights corrupt?")
        }
        rows.append(row)
      }
    }
    Output.write("{\"logits\":[")
    for (index, row) in rows.enumerated() {
      var text = index == 0 ? "[" : ",["
      for (i, value) in row.enumerated() {
        if i > 0 { text += "," }
        text += value.description
      }
      Output.write(text + "]")
    }
    Output.write("]}\n")
  }
}
