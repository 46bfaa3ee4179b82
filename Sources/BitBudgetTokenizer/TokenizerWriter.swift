import Foundation

extension Tokenizer {
  /// The merges in rank order, as (left, right) spellings.
  public func mergeList() -> [(String, String)] {
    bpeMerges().map { (token($0.left) ?? "", token($0.right) ?? "") }
  }

  /// `tokenizer.json` text that Hugging Face `tokenizers` loads into this same tokenizer: BPE
  /// vocabulary (the non-added tokens) and merges, the added tokens, NFC when this tokenizer
  /// normalizes, the pre-tokenizer, and the ByteLevel decoder.
  public func tokenizerJSON() throws -> Data {
    let addedIDs = Set(addedTokens.map(\.id))
    var vocabulary: [String: Int] = [:]
    for id in 0..<vocabularySize where !addedIDs.contains(id) {
      if let spelling = token(id), vocabulary[spelling] == nil { vocabulary[spelling] = id }
    }
    // Added tokens the vocabulary also spells (some GGUF vocabularies list them) stay in it.
    for added in addedTokens {
      let spelling = Tokenizer.byteLevelSpelling(added.content)
      if vocabulary[spelling] == nil && Tokenizer.byteLevelDecoded(spelling) == added.content {
        vocabulary[spelling] = added.id
      }
    }
    let byteLevel: (Bool) -> [String: Any] = { regex in
      ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": regex]
    }
    let preTokenizerJSON: [String: Any]
    switch preTokenizer {
    case .qwen2, .llama3:
      let pattern = preTokenizer == .qwen2 ? PreTokenizer.qwen2Pattern : PreTokenizer.llama3Pattern
      preTokenizerJSON = [
        "type": "Sequence",
        "pretokenizers": [
          ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false], byteLevel(false),
        ],
      ]
    case .gpt2:
      preTokenizerJSON = byteLevel(true)
    case .smollm:
      preTokenizerJSON = [
        "type": "Sequence",
        "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(true)],
      ]
    }
    let root: [String: Any] = [
      "version": "1.0",
      "truncation": NSNull(),
      "padding": NSNull(),
      "added_tokens": addedTokens.map {
        ["id": $0.id, "content": $0.content, "single_word": false, "lstrip": false, "rstrip": false,
         "normalized": false, "special": $0.special] as [String: Any]
      },
      "normalizer": normalizesNFC ? ["type": "NFC"] as Any : NSNull(),
      "pre_tokenizer": preTokenizerJSON,
      "post_processor": byteLevel(false),
      "decoder": byteLevel(false),
      "model": [
        "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": "",
        "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
        "vocab": vocabulary, "merges": mergeList().map { [$0.0, $0.1] },
      ] as [String: Any],
    ]
    return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys])
  }
}
