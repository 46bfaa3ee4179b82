/// What went wrong loading or using a tokenizer, phrased for the user (one line each).
public enum TokenizerError: Error, Equatable, CustomStringConvertible, Sendable {
  /// A file could not be found or read.
  case unreadable(path: String, reason: String)
  /// A tokenizer file is malformed or inconsistent.
  case invalidFile(path: String, reason: String)
  /// The file describes a tokenizer this implementation does not run.
  case unsupported(path: String, what: String)
  /// A token id that the tokenizer does not have.
  case unknownTokenID(Int, vocabularySize: Int)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason): "cannot read tokenizer \(path): \(reason)"
    case .invalidFile(let path, let reason): "invalid tokenizer file \(path): \(reason)"
    case .unsupported(let path, let what): "unsupported tokenizer \(path): \(what)"
    case .unknownTokenID(let id, let size):
      "token id \(id) is not in the tokenizer (ids 0..<\(size) exist); was the model run with the wrong tokenizer?"
    }
  }
}
