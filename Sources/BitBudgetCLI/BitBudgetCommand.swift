import ArgumentParser
import BitBudgetEngine
import BitBudgetHub
import BitBudgetEval
import BitBudgetLab
import Foundation

/// The `bitbudget` command: subcommands for running models and, later, planning memory.
public struct BitBudgetCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "bitbudget",
    abstract: "Run reasoning LLMs on CPU and decide how to spend memory on them.",
    discussion: """
      Every command exits 0 on success and 1 on a user error (one line on stderr). With --json a \
      command prints one JSON object on stdout.
      """,
    version: BitBudgetCommand.version,
    groupedSubcommands: [
      CommandGroup(name: "Plan memory", subcommands: [PlanCommand.self, Memory.self]),
      CommandGroup(name: "Run a model", subcommands: [Generate.self, Serve.self, Bench.self, Pull.self]),
      CommandGroup(name: "Measure accuracy against memory", subcommands: [Eval.self, Sweep.self, Frontier.self, Export.self, Perplexity.self]),
      CommandGroup(name: "Make model files", subcommands: [Quantize.self, Convert.self]),
      CommandGroup(name: "Look inside", subcommands: [Tokenize.self, ChatTemplateCommand.self, Logits.self]),
    ])

  /// What `bitbudget --version` prints.
  public static let version = "0.2.0"

  public init() {}

  /// Runs with the process's own arguments (`argv[1...]`). An argument that is not valid UTF-8
  /// is refused: `CommandLine.arguments` would silently replace its bytes with U+FFFD, and a
  /// prompt would be generated from text the user never wrote.
  public static func run(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    // A Hub id the cache lacks is downloaded by whichever command loads it (`run(arguments:)`
    // alone, as library callers use it, never reaches the network).
    let progress = DownloadProgress()
    HubDownloader.installAsFetcher { event in
      progress.show(event)
      if case .finished = event { progress.finish() }
    }
    var arguments: [String] = []
    for index in 1..<max(1, Int(argc)) {
      guard let raw = argv[index] else { break }
      guard let argument = String(validatingCString: raw) else {
        let after = arguments.last.map { " (after \($0))" } ?? ""
        Output.error("argument \(index)\(after) is not valid UTF-8 text; pass text as UTF-8")
        return 1
      }
      arguments.append(argument)
    }
    return run(arguments: arguments)
  }

  /// Parses `arguments` (without the program name), runs the command and returns the exit code.
  /// Errors are reported on stderr; `--help` and `--version` print on stdout and return 0.
  public static func run(arguments: [String]) -> Int32 {
    if let renamed = RenamedSpelling.firstUse(in: arguments) {
      Output.error(renamed.message)
      return 1
    }
    do {
      var command = try parseAsRoot(attachingNegativeValues(arguments))
      try command.run()
      return 0
    } catch let error as EngineError {
      Output.error(error.description)
      return 1
    } catch let error as CommandFailure {
      Output.error(error.message)
      return 1
    } catch let error as LabError {
      Output.error(error.description)
      return 1
    } catch let error as EvalError {
      Output.error(error.description)
      return 1
    } catch let error as HubError {
      Output.error(error.description)
      return 1
    } catch {
      if exitCode(for: error) == .success {
        // --help, --version: the full text, on stdout.
        print(fullMessage(for: error, columns: nil))
        return 0
      }
      // Only the first line: the contract is one line on stderr (usage is one `--help` away).
      let message = message(for: error).split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init)
      Output.error((message ?? "invalid arguments") + " (see bitbudget help)")
      return 1
    }
  }
}

extension BitBudgetCommand {
  /// `--name -5` as `--name=-5`. The argument parser takes anything starting with `-` for an
  /// option and reported "Missing value for '--max-tokens'"; attached, the value reaches the
  /// option and its own range check says what is allowed. (No option of this tool takes a
  /// value that looks like a negative number as something else.)
  static func attachingNegativeValues(_ arguments: [String]) -> [String] {
    var result: [String] = []
    var index = 0
    while index < arguments.count {
      let argument = arguments[index]
      if argument == "--" {
        result += arguments[index...]
        break
      }
      if argument.hasPrefix("--"), !argument.contains("="), index + 1 < arguments.count, looksNegative(arguments[index + 1]) {
        result.append(argument + "=" + arguments[index + 1])
        index += 2
        continue
      }
      result.append(argument)
      index += 1
    }
    return result
  }

  /// "-5", "-0.5", "-.5", "-1e3": a minus sign and then a digit (or a point and a digit).
  static func looksNegative(_ text: String) -> Bool {
    let scalars = Array(text.unicodeScalars.prefix(3))
    guard scalars.count >= 2, scalars[0] == "-" else { return false }
    func isDigit(_ scalar: Unicode.Scalar) -> Bool { ("0"..."9").contains(scalar) }
    return isDigit(scalars[1]) || (scalars[1] == "." && scalars.count == 3 && isDigit(scalars[2]))
  }
}

/// A failure reported by a command after parsing (the message is shown as is).
struct CommandFailure: Error {
  let message: String
}

/// Writing to stdout/stderr.
enum Output {
  static func error(_ message: String) {
    let line = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
    FileHandle.standardError.write(Data(("error: " + line + "\n").utf8))
  }

  /// A progress line on stderr (stdout stays for results).
  static func progress(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
  }

  static func line(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
  }

  static func write(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
  }

  /// Prints `value` as one line of JSON with sorted keys.
  static func json<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    let data = try encoder.encode(value)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
  }
}
