import ArgumentParser
import BitBudgetEngine
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
    subcommands: [Generate.self, Tokenize.self, Logits.self, Bench.self, Perplexity.self, Memory.self, Convert.self, Quantize.self, Eval.self, Sweep.self, Frontier.self, PlanCommand.self])

  public init() {}

  /// Parses `arguments` (without the program name), runs the command and returns the exit code.
  /// Errors are reported on stderr; `--help` and `--version` print on stdout and return 0.
  public static func run(arguments: [String]) -> Int32 {
    do {
      var command = try parseAsRoot(arguments)
      try command.run()
      return 0
    } catch let error as EngineError {
      Output.error(error.description)
      return 1
    } catch let error as CommandFailure {
      Output.error(error.message)
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
