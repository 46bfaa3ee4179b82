import Foundation

/// Memory sizes as users write them: `8GiB`, `8 GB`, `512MiB`, `1.5TiB`, `300000000B` (bytes).
/// Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (KB, MB, GB, TB) of 1000;
/// case and a space before the unit do not matter. The unit is required: a bare `8` is more
/// likely 8 GiB meant than 8 bytes, so it is not a size.
public enum ByteSize {
  /// What a size looks like, for error messages.
  public static let examples = "e.g. 8GiB, 16GB, 512MiB, 300000000B"

  public static func parse(_ text: String) -> Int? {
    let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [(String, Double)] = [
      ("kib", 1024), ("mib", Double(1 << 20)), ("gib", Double(1 << 30)), ("tib", Double(1 << 40)),
      ("kb", 1e3), ("mb", 1e6), ("gb", 1e9), ("tb", 1e12), ("b", 1),
    ]
    guard let (suffix, scale) = units.first(where: { trimmed.hasSuffix($0.0) }) else { return nil }
    let number = String(trimmed.dropLast(suffix.count)).trimmingCharacters(in: .whitespaces)
    guard let value = Double(number), value.isFinite, value >= 0 else { return nil }
    let bytes = value * scale
    guard bytes < 9e18 else { return nil }
    return Int(bytes.rounded())
  }

  /// `bytes` in GiB with two decimals, e.g. "4.12 GiB".
  public static func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }

  /// `bytes` in the largest binary unit that keeps it ≥ 1, e.g. "195.3 KiB", "4.12 GiB".
  public static func readable(_ bytes: Int) -> String {
    let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
    for (unit, size) in units where abs(bytes) >= size {
      return String(format: unit == "GiB" ? "%.2f %@" : "%.1f %@", Double(bytes) / Double(size), unit)
    }
    return "\(bytes) B"
  }
}
