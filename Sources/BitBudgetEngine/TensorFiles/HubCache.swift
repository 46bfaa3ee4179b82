import Foundation

/// A model named as on the Hugging Face Hub: `ORG/NAME`, with an optional `@REVISION` (a branch,
/// tag or commit) and, for a repository of GGUF files, `:QUANT` picking the file whose name
/// contains it (`Qwen/Qwen3-0.6B-GGUF:Q8_0`).
public struct HubReference: Equatable, Sendable {
  public var repository: String
  public var revision: String
  public var fileHint: String?

  public init(repository: String, revision: String = "main", fileHint: String? = nil) {
    self.repository = repository
    self.revision = revision
    self.fileHint = fileHint
  }

  /// Parses `text`, or returns nil when it is not shaped like a Hub id (one slash, the Hub's
  /// name characters: letters, digits, `-`, `_`, `.`; no `..`).
  public init?(_ text: String) {
    var rest = Substring(text)
    if let colon = rest.lastIndex(of: ":"), !rest[rest.index(after: colon)...].contains("/") {
      fileHint = String(rest[rest.index(after: colon)...])
      rest = rest[..<colon]
      guard fileHint?.isEmpty == false else { return nil }
    }
    revision = "main"
    if let at = rest.firstIndex(of: "@") {
      revision = String(rest[rest.index(after: at)...])
      rest = rest[..<at]
      guard !revision.isEmpty, revision != ".", !revision.contains(".."), !revision.hasPrefix("/") else { return nil }
    }
    let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
    let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
    guard parts.count == 2,
      parts.allSatisfy({ !$0.isEmpty && !$0.hasPrefix(".") && !$0.contains("..") && $0.unicodeScalars.allSatisfy { allowed.contains($0) && $0.isASCII } })
    else { return nil }
    repository = String(rest)
  }

  public var description: String {
    repository + (revision == "main" ? "" : "@" + revision) + (fileHint.map { ":" + $0 } ?? "")
  }
}

/// The local Hugging Face Hub cache, read exactly as `huggingface_hub` lays it out:
/// `<cache>/models--ORG--NAME/refs/<revision>` holds a commit hash, and
/// `snapshots/<commit>/` holds the repository's files (symlinks into `blobs/`). The cache is
/// `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
public enum HubCache {
  public static func directory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    func expanded(_ path: String) -> String { (path as NSString).expandingTildeInPath }
    if let cache = environment["HF_HUB_CACHE"] ?? environment["HUGGINGFACE_HUB_CACHE"] { return expanded(cache) }
    let home = environment["HF_HOME"].map(expanded)
      ?? ((environment["XDG_CACHE_HOME"].map(expanded) ?? expanded("~/.cache")) as NSString).appendingPathComponent("huggingface")
    return (home as NSString).appendingPathComponent("hub")
  }

  /// Downloads what the cache lacks, when a program can (the `bitbudget` CLI installs
  /// `HubDownloader`'s): called with a Hub id that is not on disk and lacks `content` in the
  /// cache, and the environment `resolve` was given (its cache folder and endpoint); returns the
  /// local path as `resolve` would. It blocks its thread until the download ends: never call
  /// `resolve` from Swift concurrency's cooperative pool while one is installed. Nil (the
  /// default): such an id is an error.
  public static var fetcher: Fetcher? {
    get { fetcherLock.withLock { installedFetcher } }
    set { fetcherLock.withLock { installedFetcher = newValue } }
  }
  /// Downloads a model reference's files into the cache and returns the local path (installed by
  /// `BitBudgetHub`; the engine itself only reads the cache).
  public typealias Fetcher = @Sendable (HubReference, HubContent, [String: String]) throws(HubError) -> String
  private static let fetcherLock = NSLock()
  nonisolated(unsafe) private static var installedFetcher: Fetcher?

  /// The local path `model` names: itself when it exists on disk (or is not shaped like a Hub
  /// id), else its snapshot folder in the Hub cache (or, with `:QUANT`, the GGUF file there)
  /// holding `content`. A Hub id whose `content` the cache lacks goes to `fetcher` (unless
  /// `HF_HUB_OFFLINE` is set or `content` is `.cached`), else is an error naming the cache.
  public static func resolve(
    _ model: String, content: HubContent = .model, environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(HubError) -> String {
    if FileManager.default.fileExists(atPath: model) { return model }
    guard let reference = HubReference(model) else { return model }
    do {
      return try cachedPath(reference, content: content, cache: directory(environment: environment))
    } catch {
      let offline = ["1", "ON", "YES", "TRUE"].contains((environment["HF_HUB_OFFLINE"] ?? "").uppercased())
      guard let fetcher, !offline, content != .cached, case .notCached = error else { throw error }
      return try fetcher(reference, content, environment)
    }
  }

  /// The folder of `repository`'s cache: `<cache>/models--ORG--NAME`.
  public static func repositoryFolder(_ repository: String, cache: String) -> String {
    (cache as NSString).appendingPathComponent("models--" + repository.replacingOccurrences(of: "/", with: "--"))
  }

  /// The local path of `reference` in `cache` when it holds `content` (see `resolve`).
  public static func cachedPath(_ reference: HubReference, content: HubContent = .model, cache: String) throws(HubError) -> String {
    let repositoryFolder = repositoryFolder(reference.repository, cache: cache)
    var commit = reference.revision
    let refFile = ((repositoryFolder as NSString).appendingPathComponent("refs") as NSString).appendingPathComponent(reference.revision)
    if let data = FileManager.default.contents(atPath: refFile), let text = String(data: data, encoding: .utf8) {
      commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let snapshot = ((repositoryFolder as NSString).appendingPathComponent("snapshots") as NSString).appendingPathComponent(commit)
    let download = "bitbudget pull \(reference.description)"
    var isDirectory: ObjCBool = false
    // A refs file left empty or odd by an interrupted download must not name the snapshots folder.
    guard !commit.isEmpty, commit != ".", !commit.contains(".."), !commit.contains("/"),
      FileManager.default.fileExists(atPath: snapshot, isDirectory: &isDirectory), isDirectory.boolValue
    else {
      throw .notCached(reference: reference.description, cache: cache, download: download)
    }
    guard let hint = reference.fileHint else {
      guard missingFiles(inSnapshot: snapshot, content: content).isEmpty else {
        throw .notCached(reference: reference.description, cache: cache, download: download)
      }
      return snapshot
    }
    let files = (try? FileManager.default.subpathsOfDirectory(atPath: snapshot)) ?? []
    let matches = ggufFiles(files, matching: hint)
    guard matches.count == 1, let file = matches.first else {
      if matches.isEmpty { throw .notCached(reference: reference.description, cache: cache, download: download) }
      throw .noSuchFile(reference: reference.description, snapshot: snapshot, candidates: matches)
    }
    return (snapshot as NSString).appendingPathComponent(file)
  }

  /// The `.gguf` files among `files` (paths in a repository) whose name contains `hint`
  /// (case-insensitive), sorted.
  public static func ggufFiles(_ files: [String], matching hint: String) -> [String] {
    files.filter {
      let name = ($0 as NSString).lastPathComponent.lowercased()
      return name.hasSuffix(".gguf") && name.contains(hint.lowercased())
    }.sorted()
  }

  /// The files `content` needs that `snapshot` lacks: for a model, config.json and the
  /// safetensors shards its `model.safetensors.index.json` lists (or `model.safetensors`); for a
  /// tokenizer, tokenizer.json (or vocab.json and merges.txt).
  static func missingFiles(inSnapshot snapshot: String, content: HubContent) -> [String] {
    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: (snapshot as NSString).appendingPathComponent(name)) }
    if content == .tokenizer {
      return exists("tokenizer.json") || (exists("vocab.json") && exists("merges.txt")) ? [] : ["tokenizer.json"]
    }
    var missing = exists("config.json") ? [] : ["config.json"]
    let index = (snapshot as NSString).appendingPathComponent("model.safetensors.index.json")
    if let data = FileManager.default.contents(atPath: index) {
      let shards = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["weight_map"] as? [String: String] ?? [:]
      missing += Set(shards.values).sorted().filter { !exists($0) }
    } else if !exists("model.safetensors") {
      missing.append("model.safetensors")
    }
    return missing
  }
}

/// What a caller of `HubCache.resolve` reads from a Hub model, so that only that is downloaded.
public enum HubContent: Sendable, Equatable {
  /// Everything a run reads: config, generation config, tokenizer and chat template files, and
  /// the weights (or the one GGUF file).
  case model
  /// The tokenizer and chat template files (or the one GGUF file, which holds them).
  case tokenizer
  /// What `model` needs, from the cache only: never downloaded (the memory model reads the
  /// headers of models that may be hundreds of gigabytes).
  case cached
}

/// A Hub id that does not resolve to local files, or could not be downloaded.
public enum HubError: Error, Equatable, CustomStringConvertible {
  case notCached(reference: String, cache: String, download: String)
  case noSuchFile(reference: String, snapshot: String, candidates: [String])
  /// A download failed; `reason` says why and what to do.
  case download(reference: String, reason: String)

  public var description: String {
    switch self {
    case .notCached(let reference, let cache, let download):
      "\(reference) is neither a local path nor in the Hugging Face cache (\(cache)); download it there first (\(download))"
    case .noSuchFile(let reference, let snapshot, let candidates):
      candidates.isEmpty
        ? "\(reference): no .gguf file in \(snapshot) has that name"
        : "\(reference): several .gguf files in \(snapshot) match (\(candidates.joined(separator: ", "))); name more of one"
    case .download(let reference, let reason):
      "\(reference): \(reason)"
    }
  }
}
