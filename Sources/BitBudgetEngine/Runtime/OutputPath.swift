import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Where the commands write (converted and quantized models, reports), checked before any work:
/// no write may land outside the path the user named, on something that is not a regular file, or
/// over the input being read.
public enum OutputPath {
  /// The absolute path `path` names, with the symlinks of its existing part resolved (the last
  /// component's only when `followingFinalLink`, so a file target that is a link is seen as one).
  ///
  /// `..` is accepted only after a folder that exists: `MISSING/../x` cannot be resolved without
  /// creating `MISSING`, and creating it first is how such a path used to slip past the checks
  /// and land on an existing `x`.
  public static func resolve(_ path: String, followingFinalLink: Bool) throws -> String {
    guard !path.isEmpty else { throw EngineError.invalidInput("an empty output path") }
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    let components = absolute.split(separator: "/").map(String.init).filter { $0 != "." }
    var current = ""
    var missing: String?
    for (index, component) in components.enumerated() {
      if let missing {
        guard component != ".." else {
          throw EngineError.invalidInput("cannot write to \(path): \(missing) does not exist, so \"..\" after it names nothing")
        }
        current += "/" + component
        continue
      }
      if component == ".." {
        current = (current as NSString).deletingLastPathComponent
        if current == "/" { current = "" }
        continue
      }
      let candidate = current + "/" + component
      let isLast = index == components.count - 1
      guard let type = fileType(candidate) else {
        missing = candidate
        current = candidate
        continue
      }
      if type == .typeSymbolicLink && (!isLast || followingFinalLink) {
        guard let target = realPath(candidate) else {
          throw EngineError.invalidInput("cannot write to \(path): \(candidate) is a link to nothing")
        }
        current = target == "/" ? "" : target
      } else {
        current = candidate
      }
    }
    return current.isEmpty ? "/" : current
  }

  /// Refuses a file target that exists and is not a regular file (a link, FIFO, device, socket or
  /// folder): writing through it would reach something other than the file named.
  public static func checkFileTarget(_ path: String) throws {
    guard let type = fileType(path), type != .typeRegular else { return }
    let kind: String
    switch type {
    case .typeSymbolicLink: kind = "a symbolic link"
    case .typeDirectory: kind = "a folder"
    case .typeCharacterSpecial, .typeBlockSpecial: kind = "a device"
    case .typeSocket: kind = "a socket"
    default: kind = "not a regular file (a FIFO?)"
    }
    throw EngineError.unwritableFile(path: path, reason: "it is \(kind); give the path of a regular file or of a new one")
  }

  /// Refuses to write `path` when it is `input` or lies inside it (an input folder), or is the
  /// same file as `input` under another name (a hard link).
  public static func checkNotInput(_ path: String, input: String) throws {
    guard let inputPath = realPath(input) else { return }
    let resolved = realPath(path) ?? path
    if resolved == inputPath || resolved.hasPrefix(inputPath.hasSuffix("/") ? inputPath : inputPath + "/") || sameFile(path, input) {
      throw EngineError.unwritableFile(path: path, reason: "it is (or is inside) the input \(input), which would be overwritten")
    }
  }

  /// Writes `data` to the file `path` atomically (a temporary file renamed over it), after
  /// `checkFileTarget`.
  public static func write(_ data: Data, to path: String) throws {
    let target = try resolve(path, followingFinalLink: false)
    try checkFileTarget(target)
    do {
      try data.write(to: URL(fileURLWithPath: target), options: .atomic)
    } catch {
      throw EngineError.unwritableFile(path: path, reason: error.localizedDescription)
    }
  }

  /// The type of what `path` names, without following a final link; nil when nothing is there.
  static func fileType(_ path: String) -> FileAttributeType? {
    (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
  }

  static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  /// Whether both paths exist and are one file (same device and inode).
  static func sameFile(_ a: String, _ b: String) -> Bool {
    var first = stat()
    var second = stat()
    guard stat(a, &first) == 0, stat(b, &second) == 0 else { return false }
    return first.st_dev == second.st_dev && first.st_ino == second.st_ino
  }
}
