import ArgumentParser
import BitBudgetEngine
import Foundation

struct Logits: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the logits of every position of a token sequence.",
    discussion: "Output: {\"logits\": [[float × vocab] × positions]} (float32 values).")

  @OptionGroup var options: ModelOptions

  @Option(help: ArgumentHelp("Token ids, comma-separated.", valueName: "ids"))
  var ids: TokenIds

  @Flag(help: "Print one JSON object (the only output format of this command).")
  var json = false

  func run() throws {
    let model = try options.loadModel()
    let session = InferenceSession(model: model, threads: options.threads, maxRows: 64, maxLogitRows: 64)
    let cache = session.makeCache(elementType: options.kvDType.elementType)
    // Numbers are written as they are computed, so the whole matrix is never held as text.
    var first = true
    Output.write("{\"logits\":[")
    _ = try session.prefill(ids.values, cache: cache, logits: .all) { view in
      for r in 0..<view.rows {
        var text = first ? "[" : ",["
        first = false
        for (i, value) in view.row(r).enumerated() {
          guard value.isFinite else {
            throw CommandFailure(message: "the model produced a non-finite logit (\(value)); are the weights corrupt?")
          }
          if i > 0 { text += "," }
          text += value.description
        }
        Output.write(text + "]")
      }
    }
    Output.write("]}\n")
  }
}
