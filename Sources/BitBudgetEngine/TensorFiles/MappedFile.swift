#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory. Pages are read from disk when first touched and
/// count toward the resident set only then; nothing is copied at open.
public final class MappedFile: @unchecked Sendable {
  public let path: String
  public let byteCount: Int
  public let base: UnsafeRawPointer

  /// Maps `path`. Throws `EngineError.unreadableFile` if it cannot be opened or is empty.
  public init(path: String) throws {
    self.path = path
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
      throw EngineError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw EngineError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
      throw EngineError.unreadableFile(path: path, reason: "not a regular file")
    }
    let size = Int(info.st_size)
    guard size > 0 else {
      throw EngineError.invalidTensorFile(path: path, reason: "the file is empty")
    }
    guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else {
      throw EngineError.unreadableFile(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
    }
    byteCount = size
    base = UnsafeRawPointer(mapping)
  }

  deinit {
    munmap(UnsafeMutableRawPointer(mutating: base), byteCount)
  }

  /// Drops the resident pages wholly inside `range` (bytes from the start of the file), e.g. of
  /// a tensor that was widened into memory of its own and will not be read again. The mapping
  /// stays valid: a later read pages the bytes in from disk again. Costs one system call.
  public func releasePages(_ range: Range<Int>) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard page > 0 else { return }
    let start = (range.lowerBound + page - 1) / page * page
    let end = min(range.upperBound, byteCount) / page * page
    guard end > start else { return }
    _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
  }

  /// The bytes `range` of the file (bounds must have been checked by the caller).
  func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
  }
}
