import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetTokenizer

/// Ids equal to Hugging Face `tokenizers`' on the committed corpus (made by
/// scripts/make-tokenizer-corpus.py), with the real Qwen3 tokenizer fetched by
/// scripts/fetch-test-assets.sh.
@Suite struct CorpusTests {
  struct Entry: Decodable {
    let text: String
    let ids: [Int]
    /// Python's `unicodedata.normalize("NFC", text)`.
    let nfc: String
  }

  static func corpus() throws -> [Entry] {
    let url = URL(fileURLWithPath: Fixtures.repositoryRoot).appendingPathComponent("Tests/Fixtures/tokenizer/qwen3-corpus.jsonl")
    let text = try String(contentsOf: url, encoding: .utf8)
    return try text.split(separator: "\n").map { try JSONDecoder().decode(Entry.self, from: Data($0.utf8)) }
  }

  @Test func idsEqualTokenizers() throws {
    let tokenizer = try Tokenizer.load(from: Fixtures.qwen3TokenizerDirectory)
    let entries = try Self.corpus()
    #expect(entries.count >= 500)
    var failures = 0
    for entry in entries {
      let ids = tokenizer.encode(entry.text)
      if ids != entry.ids {
        failures += 1
        if failures <= 10 {
          Issue.record("\(entry.text.debugDescription.prefix(120)): got \(ids.prefix(40)) expected \(entry.ids.prefix(40))")
        }
      }
    }
    #expect(failures == 0, "\(failures) of \(entries.count) strings differ")
  }
}
