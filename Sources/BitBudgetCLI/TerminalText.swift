import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// ANSI styling for text meant for a person at a terminal: thinking dimmed, headings bold. Off
/// when the output is not a terminal or `NO_COLOR` is set (https://no-color.org), so piped output
/// stays plain text.
struct TextStyle {
  let enabled: Bool
  /// Whether the last text written through `switching(to:)` was dimmed.
  private var dimmed = false

  init(enabled: Bool) {
    self.enabled = enabled && ProcessInfo.processInfo.environment["NO_COLOR", default: ""].isEmpty
  }

  /// The escape that turns dimming on or off before the next piece of streamed text, or "".
  mutating func switching(to dim: Bool) -> String {
    guard enabled, dim != dimmed else { return "" }
    dimmed = dim
    return dim ? "\u{1B}[2m" : "\u{1B}[0m"
  }

  func dim(_ text: String) -> String { enabled ? "\u{1B}[2m\(text)\u{1B}[0m" : text }
  func heading(_ text: String) -> String { enabled ? "\u{1B}[1m\(text)\u{1B}[0m" : text }
}

/// A sample's text as it was streamed, in runs of thinking and answer, for showing it afterwards.
struct ShownText {
  private var runs: [(thinking: Bool, text: String)] = []

  mutating func append(_ text: String, thinking: Bool) {
    if let last = runs.indices.last, runs[last].thinking == thinking {
      runs[last].text += text
    } else {
      runs.append((thinking, text))
    }
  }

  /// The text as streamed (special tokens left out).
  var plain: String { runs.map(\.text).joined() }

  /// The text with the thinking dimmed.
  func rendered(_ style: TextStyle) -> String {
    runs.map { $0.thinking ? style.dim($0.text) : $0.text }.joined()
  }
}

/// One line on stderr that rewrites itself: progress of a long operation, with a bar and an ETA
/// when the total is known. Written only when stderr is a terminal (a log file would fill with
/// carriage returns; commands print a line per finished step there instead), at most ten times a
/// second, and not before `quietSeconds` have passed (an operation that ends sooner leaves no
/// trace). Thread-safe: kernels and downloads report from their own threads.
final class LiveLine: @unchecked Sendable {
  private let lock = NSLock()
  private var start = Date()
  private let quietSeconds: Double
  private var lastWrite = Date.distantPast
  private var open = false
  private var lastText = ""

  /// Whether stderr is a terminal (else `show` and `clear` do nothing).
  static let available = isatty(STDERR_FILENO) != 0

  init(quietSeconds: Double = 0.5) {
    self.quietSeconds = quietSeconds
  }

  /// Shows `text`, rate-limited; `force` writes it now.
  func show(_ text: String, force: Bool = false) {
    guard Self.available else { return }
    lock.withLock {
      let now = Date()
      guard force || (now.timeIntervalSince(lastWrite) >= 0.1 && now.timeIntervalSince(start) >= quietSeconds) else { return }
      lastWrite = now
      // Wider than the terminal it would wrap, and `\r` would redraw only its last row.
      let text = text.count < Self.columns ? text : String(text.prefix(max(10, Self.columns - 2))) + "…"
      lastText = text
      FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
      open = true
    }
  }

  /// Shows `label`, a bar of `done` out of `total`, the percentage, the elapsed time and the
  /// time left: `etaSeconds` when the caller knows better (a resumed sweep skips finished work),
  /// else at the rate so far.
  func show(_ label: String, done: Int, total: Int, etaSeconds: Double? = nil, detail: String = "", force: Bool = false) {
    let fraction = total > 0 ? min(1, max(0, Double(done) / Double(total))) : 0
    let width = 24
    let filled = Int((fraction * Double(width)).rounded(.down))
    let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
    let elapsed = Date().timeIntervalSince(lock.withLock { start })
    let left = etaSeconds ?? (fraction > 0 ? elapsed / fraction - elapsed : .nan)
    let eta = fraction < 1 && left.isFinite ? " · ETA " + Self.duration(left) : ""
    let extra = detail.isEmpty ? "" : " · " + detail
    let percent = String(format: "%3.0f%%", 100 * fraction)
    show("\(label) \(bar) \(percent) · \(Self.duration(elapsed))\(eta)\(extra)", force: force)
  }

  /// Prints `line` on stderr as a permanent line, above the live line (which is redrawn).
  func log(_ line: String) {
    lock.withLock {
      guard Self.available, open else {
        FileHandle.standardError.write(Data((line + "\n").utf8))
        return
      }
      FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + "\n" + lastText).utf8))
    }
  }

  /// Starts the clock again: the next phase of a command (loading, then quantizing) gets an
  /// ETA of its own.
  func restart() {
    lock.withLock { start = Date() }
  }

  /// The terminal's width in characters (80 when unknown).
  static let columns: Int = {
    #if canImport(Glibc) || canImport(Darwin)
      var size = winsize()
      if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    #endif
    return Int(ProcessInfo.processInfo.environment["COLUMNS"] ?? "") ?? 80
  }()

  /// Erases the line (before the command's own output follows).
  func clear() {
    guard Self.available else { return }
    lock.withLock {
      if open { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
      open = false
    }
  }

  /// "42 s", "3 min 5 s", "1 h 20 min".
  static func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let whole = Int(min(seconds, 1e9).rounded())
    if whole < 60 { return "\(whole) s" }
    if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
    return "\(whole / 3600) h \(whole % 3600 / 60) min"
  }
}

/// "1 step", "3 steps": a count with its noun, plural when it is not 1.
func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }
