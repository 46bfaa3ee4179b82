import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Files for parsers that only take a path: one folder per process under /dev/shm (RAM, so
/// rewriting a file each execution costs no disk I/O), each file rewritten in place.
enum Scratch {
  nonisolated(unsafe) static var directory = ""

  static func prepare() {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    directory = (base as NSString).appendingPathComponent("bitbudget-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    atexit {
      if !Scratch.directory.isEmpty { try? FileManager.default.removeItem(atPath: Scratch.directory) }
    }
  }

  /// `<scratch>/<name>` (name may contain one subfolder, e.g. "tokenizer/tokenizer.json").
  static func path(_ name: String) -> String {
    let path = (directory as NSString).appendingPathComponent(name)
    let folder = (path as NSString).deletingLastPathComponent
    if !FileManager.default.fileExists(atPath: folder) {
      try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
    return path
  }

  /// Writes `bytes` to `<scratch>/<name>` (truncating) and returns the path.
  @discardableResult
  static func write(_ bytes: UnsafeRawBufferPointer, to name: String) -> String {
    let path = path(name)
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "cannot create \(path): \(String(cString: strerror(errno)))")
    var offset = 0
    while offset < bytes.count {
      let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
      precondition(written > 0, "cannot write \(path): \(String(cString: strerror(errno)))")
      offset += written
    }
    close(fd)
    return path
  }
}

extension UnsafeRawBufferPointer {
  /// The input as text, invalid UTF-8 replaced by U+FFFD (as a server's body is read).
  var text: String { String(decoding: self, as: UTF8.self) }
  var data: Data { Data(self) }
}
