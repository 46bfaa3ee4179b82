import AsyncHTTPClient
import BitBudgetEngine
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// What a download is doing, for a progress display.
public enum HubDownloadEvent: Sendable, Equatable {
  /// The revision resolved to `commit`; these files are needed.
  case resolved(repository: String, commit: String, files: [String])
  /// A file already in the cache (its snapshot link, or its blob under another revision).
  case cached(file: String)
  /// A file's download starts, at `offset` when a partial download resumes.
  case started(file: String, bytes: Int?, offset: Int)
  /// Bytes of the file on disk so far (at most a few times a second).
  case progress(file: String, received: Int, total: Int?)
  /// A file is complete and checked.
  case finished(file: String, bytes: Int)
  /// A request failed in a way that may pass (429, 5xx, a dropped connection); it is retried.
  case retrying(reason: String, afterSeconds: Double)
}

/// Downloads models from the Hugging Face Hub into its local cache, in `huggingface_hub`'s
/// layout (`models--ORG--NAME/{refs,blobs,snapshots}`, snapshot files linked to blobs named by
/// their ETag), so either tool reads what the other wrote.
///
/// Only the files a run needs: config, generation config, tokenizer and chat template files,
/// and the safetensors weights (every shard the index lists) — or, for `ORG/NAME:QUANT`, the one
/// GGUF file whose name contains QUANT; for `HubContent.tokenizer`, the tokenizer and template
/// files only. Each file: `HEAD …/resolve/COMMIT/FILE` for its ETag (`X-Linked-Etag`, the SHA-256
/// of an LFS file, or the git blob SHA-1) and size, then, holding huggingface_hub's lock file for
/// the blob, `GET` following its redirect (to a CDN: without the token when it is another host)
/// into `blobs/ETAG.incomplete`, resumed with `Range` after an interruption (also a later run's),
/// checked against the ETag's hash and size, then renamed and linked. 429 and 5xx answers and
/// dropped connections are retried with backoff (a Hub that cannot be reached at all is tried
/// twice).
public final class HubDownloader: Sendable {
  public let settings: HubSettings
  private let http: HTTPClient
  /// Attempts per request before a passing failure is reported.
  static let attempts = 6
  /// Largest API answer read (a repository listing).
  static let maxListingBytes = 32 << 20

  /// The tokenizer and chat template files, when the repository has them.
  public static let tokenizerFiles = [
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
    "tokenizer.model", "chat_template.jinja", "chat_template.json",
  ]
  /// Files besides the weights that a run reads, when the repository has them.
  public static let sideFiles = ["config.json", "generation_config.json", "quantize_config.json"] + tokenizerFiles

  public init(settings: HubSettings = .fromEnvironment()) {
    self.settings = settings
    var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
    configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
    configuration.decompression = .disabled
    http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
  }

  public func shutdown() async {
    try? await http.shutdown()
  }

  /// Makes `HubCache.resolve` (so every model and tokenizer load) download what the cache lacks
  /// (`downloadWaiting`, into the cache of the environment `resolve` was given); events go to
  /// `onEvent`.
  public static func installAsFetcher(onEvent: @escaping @Sendable (HubDownloadEvent) -> Void) {
    HubCache.fetcher = { (reference: HubReference, content: HubContent, environment: [String: String]) throws(HubError) -> String in
      try downloadWaiting(reference, content: content, settings: .fromEnvironment(environment), onEvent: onEvent)
    }
  }

  /// `download` from synchronous code: a new downloader, waited for on this thread (never call it
  /// from Swift concurrency's pool), shut down afterwards.
  public static func downloadWaiting(
    _ reference: HubReference, content: HubContent = .model, settings: HubSettings = .fromEnvironment(),
    onEvent: @escaping @Sendable (HubDownloadEvent) -> Void = { _ in }
  ) throws(HubError) -> String {
    let downloader = HubDownloader(settings: settings)
    let result = Blocking.run {
      do {
        let path = try await downloader.download(reference, content: content, onEvent: onEvent)
        await downloader.shutdown()
        return path
      } catch {
        await downloader.shutdown()
        throw error
      }
    }
    switch result {
    case .success(let path): return path
    case .failure(let error as HubError): throw error
    case .failure(let error): throw .download(reference: reference.description, reason: "\(error)")
    }
  }

  /// The files of `reference` that a run needs, downloaded into the cache unless they are there;
  /// returns the snapshot folder (or, with `:QUANT`, the GGUF file), as `HubCache.resolve` does.
  public func download(
    _ reference: HubReference, content: HubContent = .model, onEvent: @Sendable (HubDownloadEvent) -> Void = { _ in }
  ) async throws(HubError) -> String {
    if let cached = try? HubCache.cachedPath(reference, content: content, cache: settings.cache) { return cached }
    guard !settings.offline else {
      throw .download(reference: reference.description, reason: "not in the Hugging Face cache (\(settings.cache)) and HF_HUB_OFFLINE is set")
    }
    do {
      return try await fetch(reference, content: content, onEvent: onEvent)
    } catch let error as HubError {
      throw error
    } catch let error as Failure {
      throw .download(reference: reference.description, reason: error.message)
    } catch {
      throw .download(reference: reference.description, reason: "\(error)")
    }
  }

  /// A failure with the message a user sees.
  struct Failure: Error {
    let message: String
    /// Whether trying again may succeed.
    var passes = false
    /// The server's `Retry-After`, in seconds.
    var retryAfter: Double? = nil
  }

  private func fetch(_ reference: HubReference, content: HubContent, onEvent: @Sendable (HubDownloadEvent) -> Void) async throws -> String {
    let repository = reference.repository
    let (commit, siblings) = try await listing(reference)
    let folder = HubCache.repositoryFolder(repository, cache: settings.cache)
    let snapshot = ((folder as NSString).appendingPathComponent("snapshots") as NSString).appendingPathComponent(commit)

    var files: [String]
    var result = snapshot
    if let hint = reference.fileHint {
      let matches = HubCache.ggufFiles(siblings, matching: hint)
      guard matches.count == 1, let file = matches.first else {
        let ggufs = siblings.filter { $0.lowercased().hasSuffix(".gguf") }
        throw Failure(message: matches.isEmpty
          ? "no .gguf file of the repository contains \"\(hint)\" (its GGUF files: \(ggufs.isEmpty ? "none" : ggufs.joined(separator: ", ")))"
          : "several .gguf files contain \"\(hint)\" (\(matches.joined(separator: ", "))); name more of one")
      }
      files = [file]
      result = (snapshot as NSString).appendingPathComponent(file)
    } else if content == .tokenizer {
      files = Self.tokenizerFiles.filter(siblings.contains)
      guard files.contains("tokenizer.json") || (files.contains("vocab.json") && files.contains("merges.txt")) else {
        throw Failure(message: "the repository has no tokenizer.json (nor vocab.json and merges.txt) at \(commit)")
      }
    } else {
      files = Self.sideFiles.filter(siblings.contains)
      if siblings.contains("model.safetensors.index.json") {
        try await fetchFile("model.safetensors.index.json", repository: repository, commit: commit, folder: folder, onEvent: onEvent)
        files += try Self.shards(inIndex: (snapshot as NSString).appendingPathComponent("model.safetensors.index.json"), siblings: siblings)
      } else if siblings.contains("model.safetensors") {
        files.append("model.safetensors")
      } else {
        let ggufs = siblings.filter { $0.lowercased().hasSuffix(".gguf") }
        throw Failure(message: ggufs.isEmpty
          ? "the repository has no model.safetensors (or index) at \(commit)"
          : "the repository holds GGUF files; name one as \(repository)\(reference.revision == "main" ? "" : "@" + reference.revision):QUANT (\(ggufs.joined(separator: ", ")))")
      }
      guard files.contains("config.json") else { throw Failure(message: "the repository has no config.json at \(commit)") }
    }
    onEvent(.resolved(repository: repository, commit: commit, files: files))
    for file in files {
      try await fetchFile(file, repository: repository, commit: commit, folder: folder, onEvent: onEvent)
    }
    if reference.revision != commit {
      let refs = (folder as NSString).appendingPathComponent("refs")
      try Self.writeAtomically(Data(commit.utf8), to: (refs as NSString).appendingPathComponent(reference.revision))
    }
    return result
  }

  /// The revision's commit and file names (`GET /api/models/ORG/NAME/revision/REV`).
  private func listing(_ reference: HubReference) async throws -> (commit: String, files: [String]) {
    // The revision is one path segment, its slashes encoded (`refs/pr/1` → `refs%2Fpr%2F1`).
    let revision = reference.revision.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? reference.revision
    let path = "/api/models/\(reference.repository)/revision/\(revision)"
    let (response, body) = try await send(method: .GET, url: settings.endpoint + path, what: "the repository listing", bodyLimit: Self.maxListingBytes)
    try check(response, reference: reference.description, what: "revision \(reference.revision)")
    guard let root = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any],
      let commit = root["sha"] as? String, Self.isCommit(commit)
    else { throw Failure(message: "the Hub's listing of \(reference.repository) is not the JSON expected (no commit \"sha\")") }
    let siblings = (root["siblings"] as? [[String: Any]] ?? []).compactMap { $0["rfilename"] as? String }.filter(Self.isSafeName)
    return (commit, siblings)
  }

  /// One file into `blobs/` and the snapshot's link to it.
  private func fetchFile(
    _ file: String, repository: String, commit: String, folder: String, onEvent: @Sendable (HubDownloadEvent) -> Void
  ) async throws {
    let snapshot = ((folder as NSString).appendingPathComponent("snapshots") as NSString).appendingPathComponent(commit)
    let link = (snapshot as NSString).appendingPathComponent(file)
    if FileManager.default.fileExists(atPath: link) {
      onEvent(.cached(file: file))
      return
    }
    let url = settings.endpoint + "/\(repository)/resolve/\(commit)/" + Self.encoded(file)
    let (head, _) = try await send(method: .HEAD, url: url, what: file, bodyLimit: 0)
    try check(head, reference: repository, what: file)
    let linked = head.headers.first(name: "X-Linked-Etag") ?? head.headers.first(name: "ETag")
    guard let etag = linked.map(Self.normalizedETag), !etag.isEmpty, etag.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
      throw Failure(message: "the Hub sent no usable ETag for \(file)")
    }
    let size = (head.headers.first(name: "X-Linked-Size") ?? (Self.isRedirect(head.status) ? nil : head.headers.first(name: "Content-Length"))).flatMap(Int.init)
    let blobs = (folder as NSString).appendingPathComponent("blobs")
    let blob = (blobs as NSString).appendingPathComponent(etag)
    if FileManager.default.fileExists(atPath: blob) {
      onEvent(.cached(file: file))
    } else {
      try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
      // huggingface_hub's lock file for this blob: another process (ours or theirs) fetching the
      // same blob waits, then finds it complete.
      let locks = ((settings.cache as NSString).appendingPathComponent(".locks") as NSString)
        .appendingPathComponent((folder as NSString).lastPathComponent)
      let lock = try await FileLock(path: (locks as NSString).appendingPathComponent(etag + ".lock"))
      defer { lock.unlock() }
      if FileManager.default.fileExists(atPath: blob) {
        onEvent(.cached(file: file))
      } else {
        // GET of the resolve URL (not the CDN location of the HEAD): a retry after a long
        // interruption gets a fresh presigned URL.
        try await downloadBlob(file: file, from: url, to: blob, size: size, etag: etag, onEvent: onEvent)
      }
    }
    try FileManager.default.createDirectory(atPath: (link as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let depth = file.split(separator: "/").count - 1
    let target = String(repeating: "../", count: depth + 2) + "blobs/" + etag
    // A link made aside and renamed into place: another download of the same file may replace
    // it at the same moment (removing and re-creating it raced: "file exists").
    let temporary = link + ".\(UUID().uuidString.prefix(8)).tmp"
    try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: target)
    if rename(temporary, link) != 0 {
      let code = errno
      try? FileManager.default.removeItem(atPath: temporary)
      throw Failure(message: "cannot link \(link) to \(target) (errno \(code))")
    }
  }

  /// GET `location` into `blob` through `blob.incomplete`, resuming what is there.
  private func downloadBlob(
    file: String, from location: String, to blob: String, size: Int?, etag: String, onEvent: @Sendable (HubDownloadEvent) -> Void
  ) async throws {
    let partial = blob + ".incomplete"
    if !FileManager.default.fileExists(atPath: partial) { FileManager.default.createFile(atPath: partial, contents: nil) }
    var attempt = 0
    var announced = false
    while true {
      let offset = Self.fileSize(partial)
      if let size, offset == size { break }
      if let size, offset > size { try Data().write(to: URL(fileURLWithPath: partial)) }
      do {
        try await receive(file: file, from: location, into: partial, size: size, announce: !announced, onEvent: onEvent)
        announced = true
        break
      } catch let failure as Failure where failure.passes && attempt + 1 < Self.attempts {
        announced = true
        // A flaky link that makes progress is not out of attempts.
        attempt = Self.fileSize(partial) > offset ? 0 : attempt + 1
        let delay = failure.retryAfter ?? min(30, 0.5 * pow(2, Double(attempt)))
        onEvent(.retrying(reason: failure.message, afterSeconds: delay))
        try await Task.sleep(nanoseconds: UInt64(delay * 1e9))
      }
    }
    let received = Self.fileSize(partial)
    if let size, received != size {
      try? FileManager.default.removeItem(atPath: partial)
      throw Failure(message: "\(file) arrived with \(received) bytes where the Hub announced \(size); the partial file was removed, run again")
    }
    if let problem = try Self.checksumProblem(partial, etag: etag, size: received) {
      try? FileManager.default.removeItem(atPath: partial)
      throw Failure(message: "\(file) does not match the Hub's checksum (\(problem)); the partial file was removed, run again")
    }
    if rename(partial, blob) != 0 { throw Failure(message: "cannot move \(partial) to \(blob) (errno \(errno))") }
    onEvent(.finished(file: file, bytes: received))
  }

  /// One GET of the rest of a file, appended to `partial`.
  private func receive(
    file: String, from location: String, into partial: String, size: Int?, announce: Bool, onEvent: @Sendable (HubDownloadEvent) -> Void
  ) async throws {
    var url = location
    var offset = Self.fileSize(partial)
    var response: HTTPClientResponse?
    for _ in 0..<5 {
      var request = HTTPClientRequest(url: url)
      request.headers = headers(for: url)
      if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
      let answer: HTTPClientResponse
      do {
        answer = try await http.execute(request, timeout: .hours(48))
      } catch {
        throw Failure(message: "\(Self.redacted(url)): \(error)", passes: true)
      }
      if Self.isRedirect(answer.status) {
        url = try redirectTarget(answer, from: url)
        _ = try? await answer.body.collect(upTo: 1 << 16)
        continue
      }
      response = answer
      break
    }
    guard let response else { throw Failure(message: "too many redirects downloading \(file)") }
    switch response.status.code {
    case 200:
      if offset > 0 {
        // The server ignored the range: start over.
        try Data().write(to: URL(fileURLWithPath: partial))
        offset = 0
      }
    case 206:
      // The part must start where the file on disk ends, or it would be appended in the wrong place.
      let range = response.headers.first(name: "Content-Range") ?? ""
      let start = range.split(whereSeparator: { $0 == " " || $0 == "-" }).dropFirst().first.flatMap { Int($0) }
      guard range.hasPrefix("bytes "), start == offset else {
        _ = try? await response.body.collect(upTo: 1 << 16)
        try Data().write(to: URL(fileURLWithPath: partial))
        throw Failure(message: "the server sent \(file) from another offset (\(range.isEmpty ? "no Content-Range" : range)); starting over", passes: true)
      }
    case 416:
      // Nothing left to send: the file is as long as the server's.
      _ = try? await response.body.collect(upTo: 1 << 16)
      return
    default:
      _ = try? await response.body.collect(upTo: 1 << 16)
      var failure = Self.failure(status: response.status, headers: response.headers, url: url, what: file)
      if [408, 429].contains(response.status.code) || response.status.code >= 500 {
        failure.passes = true
        failure.retryAfter = response.headers.first(name: "Retry-After").flatMap(Double.init).map { min(60, max(0, $0)) }
      }
      throw failure
    }
    if announce { onEvent(.started(file: file, bytes: size, offset: offset)) }
    guard let handle = FileHandle(forWritingAtPath: partial) else { throw Failure(message: "cannot write \(partial)") }
    defer { try? handle.close() }
    try handle.seekToEnd()
    var received = offset
    var lastReport = Date()
    var chunks = response.body.makeAsyncIterator()
    while true {
      let next: ByteBuffer?
      do {
        next = try await chunks.next()
      } catch {
        throw Failure(message: "the connection dropped after \(received) bytes of \(file) (\(error))", passes: true)
      }
      guard let chunk = next else { break }
      if let size, received + chunk.readableBytes > size {
        throw Failure(message: "the server sent more of \(file) than the \(size) bytes the Hub announced")
      }
      do {
        try chunk.withUnsafeReadableBytes { try handle.write(contentsOf: $0) }
      } catch {
        throw Failure(message: "cannot write \(partial): \(error)")
      }
      received += chunk.readableBytes
      if Date().timeIntervalSince(lastReport) >= 0.2 {
        lastReport = Date()
        onEvent(.progress(file: file, received: received, total: size))
      }
    }
    onEvent(.progress(file: file, received: received, total: size))
    if let size, received < size {
      throw Failure(message: "the connection ended after \(received) of \(size) bytes of \(file)", passes: true)
    }
  }

  /// A request (no body), retried with backoff on 429, 5xx and connection failures; relative
  /// redirects (a renamed repository) are followed, absolute ones returned to the caller.
  private func send(method: HTTPMethod, url start: String, what: String, bodyLimit: Int) async throws -> (HTTPClientResponse, ByteBuffer) {
    var url = start
    var attempt = 0
    var redirects = 0
    while true {
      var request = HTTPClientRequest(url: url)
      request.method = method
      request.headers = headers(for: url)
      request.headers.add(name: "Accept-Encoding", value: "identity")
      var delay = min(30, 0.5 * pow(2, Double(attempt)))
      do {
        let response = try await http.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: max(bodyLimit, 1 << 16))
        if Self.isRedirect(response.status), let location = response.headers.first(name: "Location"), location.hasPrefix("/"), redirects < 5 {
          redirects += 1
          url = try redirectTarget(response, from: url)
          continue
        }
        guard response.status.code == 429 || response.status.code >= 500 else { return (response, body) }
        if let retryAfter = response.headers.first(name: "Retry-After").flatMap(Double.init) { delay = min(60, max(0, retryAfter)) }
        if attempt + 1 >= Self.attempts { return (response, body) }
      } catch {
        // The client already retried the connection until its timeout: once more, not six
        // times, so an unreachable Hub is reported in about 20 seconds.
        if attempt >= 1 { throw Failure(message: "\(Self.redacted(url)) did not answer (\(error))") }
      }
      attempt += 1
      try await Task.sleep(nanoseconds: UInt64(delay * 1e9))
    }
  }

  /// The token goes only to the Hub's own host, never to a CDN another host serves.
  private func headers(for url: String) -> HTTPHeaders {
    var headers = HTTPHeaders()
    headers.add(name: "User-Agent", value: "bitbudget")
    if let token = settings.token, Self.sameOrigin(url, settings.endpoint) {
      headers.add(name: "Authorization", value: "Bearer \(token)")
    }
    return headers
  }

  private func redirectTarget(_ response: HTTPClientResponse, from url: String) throws -> String {
    guard let location = response.headers.first(name: "Location"), let base = URL(string: url),
      let target = URL(string: location, relativeTo: base)?.absoluteURL, ["http", "https"].contains(target.scheme ?? "")
    else { throw Failure(message: "the Hub redirected \(url) to no usable location") }
    return target.absoluteString
  }

  private func check(_ response: HTTPClientResponse, reference: String, what: String) throws {
    guard (200..<400).contains(Int(response.status.code)) else {
      throw Self.failure(status: response.status, headers: response.headers, url: nil, what: what)
    }
  }

  /// The user's message for an error status: what it means on the Hub and what to do.
  private static func failure(status: HTTPResponseStatus, headers: HTTPHeaders, url: String?, what: String) -> Failure {
    let code = headers.first(name: "X-Error-Code")
    let serverMessage = headers.first(name: "X-Error-Message").map { " (the Hub says: \($0))" } ?? ""
    switch status.code {
    case 401:
      return Failure(message: "the Hub refused access to \(what) (HTTP 401): the repository does not exist, or it is private or gated and needs a token — set HF_TOKEN (or run `huggingface-cli login`)\(serverMessage)")
    case 403:
      return Failure(message: "the Hub forbids \(what) (HTTP 403): a gated model needs its license accepted on its page, with the token in HF_TOKEN\(serverMessage)")
    case 404 where code == "RevisionNotFound":
      return Failure(message: "no such revision: \(what)\(serverMessage)")
    case 404 where code == "EntryNotFound":
      return Failure(message: "no such file: \(what)\(serverMessage)")
    case 404:
      return Failure(message: "not found on the Hub: \(what)\(serverMessage)")
    case 429:
      return Failure(message: "the Hub kept answering \"too many requests\" (HTTP 429) for \(what); wait and run again")
    default:
      return Failure(message: "HTTP \(status.code) for \(url.map(redacted) ?? what)\(serverMessage)")
    }
  }

  // MARK: Helpers

  /// `url` without its query, which for a CDN carries a signature.
  static func redacted(_ url: String) -> String {
    url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
  }

  static func isRedirect(_ status: HTTPResponseStatus) -> Bool { [301, 302, 303, 307, 308].contains(status.code) }

  static func sameOrigin(_ a: String, _ b: String) -> Bool {
    guard let x = URL(string: a), let y = URL(string: b) else { return false }
    return x.scheme == y.scheme && x.host?.lowercased() == y.host?.lowercased() && x.port == y.port
  }

  /// `W/"abc"` and `"abc"` → `abc`, as huggingface_hub names blobs.
  static func normalizedETag(_ etag: String) -> String {
    var text = Substring(etag)
    if text.hasPrefix("W/") { text = text.dropFirst(2) }
    return text.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
  }

  static func isCommit(_ text: String) -> Bool { text.count == 40 && text.allSatisfy(\.isHexDigit) }

  /// A repository file name that stays inside the snapshot folder.
  static func isSafeName(_ name: String) -> Bool {
    !name.isEmpty && !name.hasPrefix("/") && !name.contains("\\")
      && name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
  }

  static func encoded(_ path: String) -> String {
    path.split(separator: "/", omittingEmptySubsequences: false)
      .map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? String($0) }
      .joined(separator: "/")
  }

  /// The shard files an index lists, each a file of the repository.
  static func shards(inIndex path: String, siblings: [String]) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path),
      let map = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["weight_map"] as? [String: String]
    else { throw Failure(message: "model.safetensors.index.json has no \"weight_map\"") }
    let shards = Set(map.values).sorted()
    for shard in shards where !isSafeName(shard) || !siblings.contains(shard) {
      throw Failure(message: "model.safetensors.index.json lists \(shard), which the repository does not have")
    }
    return shards
  }

  static func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
  }

  /// Why the file does not match its ETag: a 64-hex ETag is the SHA-256 of an LFS file, a
  /// 40-hex one the git blob SHA-1 (`"blob <size>\0" + content`); other forms are not checked.
  static func checksumProblem(_ path: String, etag: String, size: Int) throws -> String? {
    let hex = etag.lowercased()
    guard hex.allSatisfy(\.isHexDigit), hex.count == 64 || hex.count == 40 else { return nil }
    guard let handle = FileHandle(forReadingAtPath: path) else { throw Failure(message: "cannot read \(path)") }
    defer { try? handle.close() }
    func digest<H: HashFunction>(_ hasher: inout H) throws -> String {
      while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
      return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
    let actual: String
    if hex.count == 64 {
      var hasher = SHA256()
      actual = try digest(&hasher)
    } else {
      var hasher = Insecure.SHA1()
      hasher.update(data: Data("blob \(size)\0".utf8))
      actual = try digest(&hasher)
    }
    return actual == hex ? nil : "expected \(hex), got \(actual)"
  }

  /// Writes through a temporary file and a rename, which replaces `path` atomically: a reader
  /// never sees half of it, and concurrent writers of the same file do not collide.
  static func writeAtomically(_ data: Data, to path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let temporary = path + ".\(UUID().uuidString.prefix(8)).tmp"
    try data.write(to: URL(fileURLWithPath: temporary))
    if rename(temporary, path) != 0 {
      let code = errno
      try? FileManager.default.removeItem(atPath: temporary)
      throw Failure(message: "cannot move \(temporary) to \(path) (errno \(code))")
    }
  }
}

/// Runs async work from synchronous code and waits for it (model loading is synchronous).
enum Blocking {
  static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Result<T, Error> {
    let box = Box<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
      do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
      done.signal()
    }
    done.wait()
    return box.result ?? .failure(HubDownloader.Failure(message: "internal: the download ended without a result"))
  }

  private final class Box<T>: @unchecked Sendable {
    var result: Result<T, Error>?
  }
}

/// An exclusive `flock` on a lock file (created if missing), as huggingface_hub's `filelock`
/// takes it; released by `unlock()` or when the process ends. (`flock` is per open file, so two
/// downloads in one process exclude each other too.)
final class FileLock {
  private var descriptor: Int32

  /// Waits (polling, so no thread is blocked) until the lock is held.
  init(path: String) async throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    descriptor = open(path, O_RDWR | O_CREAT, 0o644)
    guard descriptor >= 0 else { throw HubDownloader.Failure(message: "cannot open the lock file \(path) (errno \(errno))") }
    while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
      guard errno == EWOULDBLOCK || errno == EINTR else {
        close(descriptor)
        throw HubDownloader.Failure(message: "cannot lock \(path) (errno \(errno))")
      }
      try await Task.sleep(nanoseconds: 200_000_000)
    }
  }

  func unlock() {
    guard descriptor >= 0 else { return }
    flock(descriptor, LOCK_UN)
    close(descriptor)
    descriptor = -1
  }

  deinit { unlock() }
}
