/// An option or value an earlier version accepted and one vocabulary replaced: `--parallel` is G
/// in every command, `--samples` the samples per question; `--weights`/`--weight-group` the
/// precision everywhere; `--model` the input model; `--out` what a command writes; `--memory` a
/// size. The old spelling fails with a message naming the new one, instead of argument parsing's
/// "unknown option" (or, for `--samples` in `generate`, silently meaning something else).
struct RenamedSpelling: Sendable {
  let command: String
  let option: String
  /// The old value, for a value that was renamed (the option itself stayed).
  let value: String?
  let replacement: String

  static let all: [RenamedSpelling] = [
    .init(command: "convert", option: "--gguf", value: nil, replacement: "--model"),
    .init(command: "quantize", option: "--bits", value: nil, replacement: "--weights"),
    .init(command: "quantize", option: "--group-size", value: nil, replacement: "--weight-group"),
    .init(command: "generate", option: "--samples", value: nil, replacement: "--parallel"),
    .init(command: "bench", option: "--samples", value: nil, replacement: "--parallel"),
    .init(command: "memory", option: "--samples", value: nil, replacement: "--parallel"),
    .init(command: "memory", option: "--solve", value: "samples", replacement: "--solve parallel"),
    .init(command: "frontier", option: "--memory", value: nil, replacement: "--memory-source"),
    .init(command: "export", option: "--output", value: nil, replacement: "--out"),
  ]

  var message: String {
    let old = value.map { "\(option) \($0)" } ?? option
    return "\(command): \(old) is now \(replacement)"
  }

  /// The first renamed spelling in `arguments` (without the program name): the subcommand is the
  /// first argument, options are looked at up to a `--`, as `--name value` or `--name=value`.
  static func firstUse(in arguments: [String]) -> RenamedSpelling? {
    guard let command = arguments.first else { return nil }
    let candidates = all.filter { $0.command == command }
    guard !candidates.isEmpty else { return nil }
    var index = 1
    while index < arguments.count, arguments[index] != "--" {
      let argument = arguments[index]
      let parts = argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      let name = String(parts[0])
      let value = parts.count == 2 ? String(parts[1]) : (index + 1 < arguments.count ? arguments[index + 1] : nil)
      if let match = candidates.first(where: { $0.option == name && ($0.value == nil || $0.value == value) }) {
        return match
      }
      index += 1
    }
    return nil
  }
}
