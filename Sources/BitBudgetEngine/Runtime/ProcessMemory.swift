#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Memory of this process as the operating system counts it.
public enum ProcessMemory {
  /// The largest resident set size this process has had, in bytes (includes touched pages of
  /// memory-mapped weights).
  public static var peakResidentBytes: Int {
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
}
