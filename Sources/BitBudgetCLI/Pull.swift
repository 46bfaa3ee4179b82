import ArgumentParser
import BitBudgetEngine
import BitBudgetHub
import BitBudgetMemory
import Foundation

/// `bitbudget pull`: only the download that any command taking a Hub id does when the cache
/// lacks the model.
struct Pull: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Download a model from the Hugging Face Hub into its local cache.",
    discussion: """
      Fetches the files a run needs — config, generation config, tokenizer and chat template files and \
      the safetensors weights (every shard of the index), or with ORG/NAME:QUANT the one GGUF file whose \
      name contains QUANT — into the Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub or \
      ~/.cache/huggingface/hub) in huggingface_hub's layout, so either tool reads what the other wrote. \
      Interrupted downloads resume; each file is checked against the Hub's SHA-256 (or git SHA-1). \
      Uses HF_ENDPOINT, HF_TOKEN (or the token `huggingface-cli login` saved) and refuses under \
      HF_HUB_OFFLINE. Every command that takes --model ORG/NAME downloads the same way when the cache \
      lacks it. Prints the local path (the snapshot folder or the GGUF file).
      """)

  @Argument(help: ArgumentHelp("ORG/NAME[@REVISION][:QUANT]", valueName: "id"))
  var id: String

  @Flag(help: "Print {\"path\", \"repository\", \"revision\"} as JSON.")
  var json = false

  func run() throws {
    guard let reference = HubReference(id) else {
      throw ValidationError("\"\(id)\" is not a Hub id (ORG/NAME[@REVISION][:QUANT])")
    }
    let progress = DownloadProgress()
    let path: String
    do {
      path = try HubDownloader.downloadWaiting(reference, onEvent: progress.show)
      progress.finish()
    } catch {
      progress.finish()
      throw error
    }
    if json {
      struct Pulled: Encodable { let path, repository, revision: String }
      try Output.json(Pulled(path: path, repository: reference.repository, revision: reference.revision))
    } else {
      Output.line(path)
    }
  }
}

/// Download progress on stderr: one rewritten line per file on a terminal (bytes, percent,
/// speed), one line per finished file otherwise.
final class DownloadProgress: @unchecked Sendable {
  private let lock = NSLock()
  private let terminal = isatty(STDERR_FILENO) != 0
  private var started: [String: (date: Date, offset: Int)] = [:]
  private var lineOpen = false

  func show(_ event: HubDownloadEvent) {
    lock.withLock {
      switch event {
      case .resolved(let repository, let commit, let files):
        emit("\(repository) at \(commit.prefix(12)): \(files.count) file\(files.count == 1 ? "" : "s")")
      case .cached:
        break
      case .started(let file, _, let offset):
        started[file] = (Date(), offset)
        if offset > 0 { emit("\(file): resuming at \(Self.size(offset))") }
      case .progress(let file, let received, let total):
        guard terminal else { return }
        let elapsed = max(0.001, Date().timeIntervalSince(started[file]?.date ?? Date()))
        let rate = Double(received - (started[file]?.offset ?? 0)) / elapsed
        let percent = total.map { $0 > 0 ? String(format: " %3.0f%%", 100 * Double(received) / Double($0)) : "" } ?? ""
        let of = total.map { " / " + Self.size($0) } ?? ""
        let eta = total.map { rate > 0 && $0 > received ? " · ETA " + LiveLine.duration(Double($0 - received) / rate) : "" } ?? ""
        FileHandle.standardError.write(Data("\r\u{1B}[K\(file)\(percent) \(Self.size(received))\(of) \(Self.size(Int(rate)))/s\(eta)".utf8))
        lineOpen = true
      case .finished(let file, let bytes):
        let elapsed = max(0.001, Date().timeIntervalSince(started[file]?.date ?? Date()))
        let rate = Double(bytes - (started[file]?.offset ?? 0)) / elapsed
        emit("\(file): \(Self.size(bytes)) (\(Self.size(Int(rate)))/s)")
      case .retrying(let reason, let seconds):
        emit(String(format: "retrying in %.1f s: %@", seconds, reason))
      }
    }
  }

  /// Ends an open progress line.
  func finish() {
    lock.withLock {
      if lineOpen { FileHandle.standardError.write(Data("\n".utf8)) }
      lineOpen = false
    }
  }

  private func emit(_ line: String) {
    FileHandle.standardError.write(Data(((lineOpen ? "\r\u{1B}[K" : "") + line + "\n").utf8))
    lineOpen = false
  }

  static func size(_ bytes: Int) -> String { ByteSize.readable(bytes) }
}
