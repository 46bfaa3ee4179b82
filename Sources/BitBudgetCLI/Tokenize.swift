import ArgumentParser
import BitBudgetEngine
import BitBudgetTokenizer
import Foundation

struct Tokenize: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Encode text to token ids, or decode ids to text.",
    discussion: """
      Encodes --text (or standard input) without adding special tokens; added tokens written in \
      the text (<|im_start|>, <think>, …) become their ids. With --decode, prints the text of ids.
      """)

  @Option(help: ArgumentHelp("A tokenizer.json file, a folder with tokenizer.json or vocab.json + merges.txt, or a GGUF model.", valueName: "file-or-dir"))
  var tokenizer: String

  @Option(help: "Text to encode (default: standard input).")
  var text: String?

  @Option(help: ArgumentHelp("Token ids to decode instead, comma-separated.", valueName: "ids"))
  var decode: TokenIds?

  @Flag(help: "Print one JSON object: {\"ids\": […]} (or {\"text\": …} with --decode).")
  var json = false

  func validate() throws {
    if decode != nil && text != nil { throw ValidationError("give --text or --decode, not both") }
  }

  func run() throws {
    let tokenizer = try Tokenizer.load(anyFrom: self.tokenizer)
    if let decode {
      let text = try tokenizer.decode(decode.values)
      if json { try Output.json(["text": text]) } else { Output.write(text + "\n") }
      return
    }
    let input: String
    if let text {
      input = text
    } else {
      let data = FileHandle.standardInput.readDataToEndOfFile()
      // Not String(data:encoding:), which drops a leading byte-order mark.
      guard let decoded = String(validating: data, as: UTF8.self) else {
        throw CommandFailure(message: "standard input is not UTF-8 text")
      }
      input = decoded
    }
    let ids = tokenizer.encode(input)
    if json { try Output.json(["ids": ids]) } else { Output.line(ids.map(String.init).joined(separator: " ")) }
  }
}
