/// Finds added tokens in text: leftmost match first, the longest one at that position (as
/// `tokenizers`' Aho–Corasick with leftmost-longest semantics). A trie over UTF-8 bytes; cost
/// O(text × longest token) in the worst case, and one byte compare per position in practice
/// (added tokens start with a few distinct bytes).
struct AddedTokenMatcher {
  struct Match {
    let range: Range<String.Index>
    let id: Int
  }

  private struct Node {
    var children: [UInt8: Int] = [:]
    var token: Int?
  }

  private var nodes = [Node()]
  private var firstBytes = [Bool](repeating: false, count: 256)

  init(_ tokens: [AddedToken]) {
    for token in tokens {
      var node = 0
      for byte in token.content.utf8 {
        if let child = nodes[node].children[byte] {
          node = child
        } else {
          nodes.append(Node())
          nodes[node].children[byte] = nodes.count - 1
          node = nodes.count - 1
        }
      }
      nodes[node].token = token.id
      if let first = token.content.utf8.first { firstBytes[Int(first)] = true }
    }
  }

  /// Non-overlapping matches in order.
  func matches(in text: String) -> [Match] {
    if nodes.count == 1 { return [] }
    var result: [Match] = []
    let utf8 = text.utf8
    var index = utf8.startIndex
    while index < utf8.endIndex {
      guard firstBytes[Int(utf8[index])] else {
        utf8.formIndex(after: &index)
        continue
      }
      var node = 0
      var cursor = index
      var longest: (end: String.Index, id: Int)?
      while cursor < utf8.endIndex, let child = nodes[node].children[utf8[cursor]] {
        node = child
        utf8.formIndex(after: &cursor)
        if let id = nodes[node].token { longest = (cursor, id) }
      }
      if let longest {
        result.append(Match(range: index..<longest.end, id: longest.id))
        index = longest.end
      } else {
        utf8.formIndex(after: &index)
      }
    }
    return result
  }
}
