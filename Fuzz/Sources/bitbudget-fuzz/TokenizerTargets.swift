import Foundation

@testable import BitBudgetTokenizer

/// A `tokenizer.json` loaded with `Tokenizer.load(from:)` (TokenizerJSONReader's byte scanner plus
/// the pipeline checks); the loaded tokenizer encodes short texts and decodes the ids again. The
/// same bytes are also read as a `tokenizer_config.json` (`Tokenizer.readConfiguration`).
enum TokenizerJSONTarget {
  static let target = FuzzTarget(
    name: "tokenizer-json", summary: "Tokenizer.load(from: tokenizer.json) + encode/decode; readConfiguration"
  ) { input in
    // Alone in its folder: load(from:) would also read a tokenizer_config.json beside it.
    let path = Scratch.write(input, to: "tokenizer/tokenizer.json")
    if let tokenizer = try? Tokenizer.load(from: path) {
      exerciseTokenizer(tokenizer, extra: tokenizer.addedTokens.prefix(8).map { "a\($0.content)b" })
    }
    _ = try? Tokenizer.readConfiguration(path)
  }
}

/// Text encoded by a fixed, valid Qwen3-style tokenizer (`Fuzz/fixtures/qwen3-small-tokenizer.json`,
/// Qwen3's tokenizer cut to 1000 merges; with the other pre-tokenizers too): added-token matching, NFC, the pre-tokenizer's
/// splitting and BPE on arbitrary text. Decoding the ids must give back the NFC of the text when
/// it holds no added token.
enum TokenizerEncodeTarget {
  static let tokenizerPath: String = {
    URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("fixtures/qwen3-small-tokenizer.json").path
  }()

  nonisolated(unsafe) static var tokenizers: [Tokenizer] = []

  static func loaded() -> [Tokenizer] {
    if tokenizers.isEmpty {
      let path = ProcessInfo.processInfo.environment["BITBUDGET_FUZZ_TOKENIZER"] ?? tokenizerPath
      do {
        let qwen = try Tokenizer.load(from: path)
        // The same vocabulary with each other pre-tokenizer, so that all their splitters run.
        var others: [Tokenizer] = []
        for pre in [PreTokenizer.llama3, .gpt2, .smollm] {
          var tokens: [String?] = []
          for id in 0..<qwen.vocabularySize where !qwen.addedTokens.contains(where: { $0.id == id }) {
            tokens.append(qwen.token(id))
          }
          tokens += [String?](repeating: nil, count: qwen.vocabularySize - tokens.count)
          let merges = qwen.bpeMerges().map { (qwen.token($0.left)!, qwen.token($0.right)!) }
          others.append(
            try Tokenizer(
              source: path, tokens: tokens, merges: merges, addedTokens: qwen.addedTokens, preTokenizer: pre,
              normalizesNFC: false, configuration: qwen.configuration))
        }
        tokenizers = [qwen] + others
      } catch {
        fatalError("tokenizer-encode: cannot load the fixed tokenizer \(path): \(error)")
      }
    }
    return tokenizers
  }

  static let target = FuzzTarget(
    name: "tokenizer-encode", summary: "Tokenizer.encode/decode of arbitrary text (fixed Qwen3-style tokenizer)"
  ) { input in
    let text = input.text
    let hasAddedToken = text.utf8.contains(UInt8(ascii: "<"))
    for tokenizer in loaded() {
      let ids = tokenizer.encode(text)
      let bytes: [UInt8]
      do {
        bytes = try tokenizer.bytes(of: ids)
      } catch {
        invariant(false, "decode rejected ids that encode produced: \(error)")
        return
      }
      _ = try? tokenizer.decode(ids, skipSpecialTokens: true)
      if !hasAddedToken {
        let expected = tokenizer.normalizesNFC ? Tokenizer.nfc(text) : text
        invariant(bytes == Array(expected.utf8), "decode(encode(text)) != text (\(tokenizer.preTokenizer))")
      }
      // StreamingDecoder's contract: the pieces concatenate to decode(ids).
      var streaming = StreamingDecoder(tokenizer: tokenizer)
      var streamed = ""
      for id in ids {
        guard let piece = try? streaming.append(id) else {
          invariant(false, "StreamingDecoder rejected id \(id) that encode produced")
          return
        }
        streamed += piece
      }
      streamed += streaming.finish()
      invariant(
        Array(streamed.utf8) == Array(String(decoding: bytes, as: UTF8.self).utf8),
        "StreamingDecoder's pieces differ from decode(ids)")
    }
  }
}
