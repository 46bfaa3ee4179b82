import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetTokenizer

/// Ids equal to Hugging Face `tokenizers`' on the committed corpus (made by
/// scripts/make-tokenizer-corpus.py), with the real Qwen3 tokenizer fetched by
/// scripts/fetch-test-assets.sh.
@Suite struct CorpusTests {
  static func corpus() throws -> [Fixtures.CorpusEntry] { try Fixtures.tokenizerCorpus() }

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
