/// What went wrong while loading a model or running it, phrased for the user: each description is
/// one line that names the file or value and the problem.
public enum EngineError: Error, Equatable, CustomStringConvertible, Sendable {
  /// A file could not be opened or read.
  case unreadableFile(path: String, reason: String)
  /// A file could not be created or written.
  case unwritableFile(path: String, reason: String)
  /// A tensor file (safetensors or GGUF) is malformed, truncated or inconsistent.
  case invalidTensorFile(path: String, reason: String)
  /// `config.json` (or equivalent metadata) is missing, malformed or inconsistent.
  case invalidConfig(path: String, reason: String)
  /// The model folder lacks a tensor the architecture needs, or a tensor has the wrong shape/type.
  case invalidWeights(reason: String)
  /// The architecture or a feature of it is not implemented.
  case unsupported(String)
  /// Input given to the engine (token ids, lengths, options) is out of range.
  case invalidInput(String)
  /// The computation produced NaN or infinity where numbers were expected.
  case numericalFailure(String)

  public var description: String {
    switch self {
    case .unreadableFile(let path, let reason): "cannot read \(path): \(reason)"
    case .unwritableFile(let path, let reason): "cannot write \(path): \(reason)"
    case .invalidTensorFile(let path, let reason): "invalid tensor file \(path): \(reason)"
    case .invalidConfig(let path, let reason): "invalid model config \(path): \(reason)"
    case .invalidWeights(let reason): "invalid model weights: \(reason)"
    case .unsupported(let what): "unsupported: \(what)"
    case .invalidInput(let what): what
    case .numericalFailure(let what): what
    }
  }
}
