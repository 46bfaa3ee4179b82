import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The process's memory as the system sees it.
public enum ProcessMemory {
  /// The largest resident set size this process has had since it started or since the last
  /// `resetPeak()`, in bytes (includes touched pages of memory-mapped weights). Linux: `VmHWM` of
  /// /proc/self/status (falls back to `ru_maxrss`); elsewhere `ru_maxrss`.
  public static var peakResidentBytes: Int {
    #if os(Linux)
      if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kib = Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
      {
        return kib * 1024
      }
    #endif
    var usage = rusage()
    #if canImport(Glibc)
      let who = RUSAGE_SELF.rawValue
    #else
      let who = RUSAGE_SELF
    #endif
    guard getrusage(who, &usage) == 0 else { return 0 }
    #if canImport(Darwin)
      return Int(usage.ru_maxrss)  // bytes on Darwin
    #else
      return Int(usage.ru_maxrss) * 1024  // KiB on Linux
    #endif
  }

  /// Resets the peak to the current resident set, so that `peakResidentBytes` measures what
  /// follows (one scenario of a sweep, not the largest model loaded before it). Linux only
  /// (`/proc/self/clear_refs`, value 5); returns false where the peak cannot be reset.
  @discardableResult
  public static func resetPeak() -> Bool {
    #if os(Linux)
      guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
      defer { try? handle.close() }
      do {
        try handle.write(contentsOf: Data("5".utf8))
        return true
      } catch {
        return false
      }
    #else
      return false
    #endif
  }
}
