import BitBudgetEngine
import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetHub

/// Downloads against `Tests/Fixtures/hub/fake_hub.py`, a loopback server with the Hub's URL
/// layout and headers (LFS files redirected to a CDN on another host name), and the cache checked
/// against `huggingface_hub` itself in both directions.
@Suite struct HubDownloaderTests {
  /// A scratch folder with a repository folder to serve and an empty cache.
  final class Scene: @unchecked Sendable {
    let root: String
    var cache: String { root + "/cache" }
    var log: String { root + "/requests.jsonl" }

    init() throws {
      root = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: root + "/cache", withIntermediateDirectories: true)
    }

    /// A repository folder: a fixture model plus files a run does not need.
    func repository(_ name: String, model: String = "qwen3-gqa4-tied-bf16-sharded") throws -> String {
      let folder = root + "/repos/" + name
      try FileManager.default.createDirectory(atPath: (folder as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try FileManager.default.copyItem(atPath: Fixtures.modelPath(model), toPath: folder)
      try Data("# a model card\n".utf8).write(to: URL(fileURLWithPath: folder + "/README.md"))
      try Data((0..<3000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: folder + "/training_state.bin"))
      return folder
    }

    func hub(_ arguments: [String]) throws -> LoopbackScript {
      try LoopbackScript(script: "Tests/Fixtures/hub/fake_hub.py", arguments: arguments + ["--log", log])
    }

    func downloader(_ hub: LoopbackScript, token: String? = nil, offline: Bool = false) -> HubDownloader {
      HubDownloader(settings: HubSettings(endpoint: "http://127.0.0.1:\(hub.port)", token: token, offline: offline, cache: cache))
    }

    func requests() -> [[String: Any]] { jsonLines(log) }

    deinit { try? FileManager.default.removeItem(atPath: root) }
  }

  static func download(_ downloader: HubDownloader, _ id: String) async throws -> String {
    defer { Task { await downloader.shutdown() } }
    return try await downloader.download(try #require(HubReference(id)))
  }

  static func message(_ body: () async throws -> Void) async -> String {
    do {
      try await body()
      return "no error"
    } catch {
      return "\(error)"
    }
  }

  /// Config, generation config and every shard the index lists arrive as links into `blobs/`
  /// named by ETag (SHA-256 for LFS files), `refs/main` names the commit, nothing else is
  /// fetched, the model loads, and a second run sends no request. The token goes to the Hub,
  /// never to the CDN host.
  @Test func downloadsWhatARunNeedsIntoTheCache() async throws {
    let scene = try Scene()
    let hub = try scene.hub(["--repo", "tiny/sharded=" + (try scene.repository("sharded"))])
    defer { hub.stop() }
    let path = try await Self.download(scene.downloader(hub, token: "hf_public"), "tiny/sharded")
    let folder = scene.cache + "/models--tiny--sharded"
    let commit = try String(contentsOfFile: folder + "/refs/main", encoding: .utf8)
    #expect(path == folder + "/snapshots/" + commit)
    let files = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    #expect(files == ["config.json", "generation_config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                      "model-00003-of-00003.safetensors", "model.safetensors.index.json"])
    let link = try FileManager.default.destinationOfSymbolicLink(atPath: path + "/model-00001-of-00003.safetensors")
    #expect(link.hasPrefix("../../blobs/") && link.count == "../../blobs/".count + 64)
    let original = try DecoderModel.load(path: Fixtures.modelPath("qwen3-gqa4-tied-bf16-sharded"))
    #expect(try DecoderModel.load(path: path).weights.byteCount == original.weights.byteCount)

    let requests = scene.requests()
    #expect(!requests.contains { ($0["path"] as? String ?? "").contains("README.md") || ($0["path"] as? String ?? "").contains("training_state") })
    let cdn = requests.filter { ($0["host"] as? String ?? "").hasPrefix("localhost") }
    #expect(cdn.count == 3 && cdn.allSatisfy { $0["authorization"] is NSNull })
    #expect(requests.filter { !($0["host"] as? String ?? "").hasPrefix("localhost") }.allSatisfy { $0["authorization"] as? String == "Bearer hf_public" })

    #expect(try await Self.download(scene.downloader(hub), "tiny/sharded") == path)
    #expect(scene.requests().count == requests.count)
  }

  /// A connection dropped mid-file, and a partial file left by an earlier run, both resume with
  /// `Range` from the bytes on disk; the result passes its SHA-256.
  @Test func interruptedDownloadsResume() async throws {
    let scene = try Scene()
    let repository = try scene.repository("model", model: "qwen3-gqa-tied-f32")
    let hub = try scene.hub(["--repo", "tiny/model=" + repository, "--drop-after", "5000"])
    defer { hub.stop() }
    let weights = try Data(contentsOf: URL(fileURLWithPath: repository + "/model.safetensors"))
    let path = try await Self.download(scene.downloader(hub), "tiny/model")
    #expect(try Data(contentsOf: URL(fileURLWithPath: path + "/model.safetensors")) == weights)
    #expect(scene.requests().contains { $0["range"] as? String == "bytes=5000-" })

    // An earlier run's partial blob: only the rest is requested.
    let other = try Scene()
    let hub2 = try other.hub(["--repo", "tiny/model=" + repository])
    defer { hub2.stop() }
    let blobs = other.cache + "/models--tiny--model/blobs"
    try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
    let sha = try shellSHA256(repository + "/model.safetensors")
    try weights.prefix(1000).write(to: URL(fileURLWithPath: blobs + "/\(sha).incomplete"))
    let resumed = try await Self.download(other.downloader(hub2), "tiny/model")
    #expect(try Data(contentsOf: URL(fileURLWithPath: resumed + "/model.safetensors")) == weights)
    #expect(other.requests().contains { $0["range"] as? String == "bytes=1000-" })
    #expect(!FileManager.default.fileExists(atPath: blobs + "/\(sha).incomplete"))
  }

  /// A CDN that answers 503 is retried; a part that starts elsewhere than the bytes on disk
  /// (a wrong `Content-Range`) is not appended: the file starts over and still matches.
  @Test func unavailableCDNsAndWrongRangesRecover() async throws {
    let scene = try Scene()
    let repository = try scene.repository("model", model: "qwen3-gqa-tied-f32")
    let hub = try scene.hub([
      "--repo", "tiny/model=" + repository, "--cdn-unavailable", "2", "--drop-after", "5000", "--ignore-range-start",
    ])
    defer { hub.stop() }
    let path = try await Self.download(scene.downloader(hub), "tiny/model")
    #expect(try Data(contentsOf: URL(fileURLWithPath: path + "/model.safetensors")) == Data(contentsOf: URL(fileURLWithPath: repository + "/model.safetensors")))
    let cdn = scene.requests().filter { ($0["path"] as? String ?? "").hasPrefix("/cdn/") }.compactMap { $0["status"] as? Int }
    // 503, 503, the dropped 200, the 206 from byte 0 refused, then the whole file again.
    #expect(cdn == [503, 503, 200, 206, 200], "\(cdn)")
  }

  /// Two downloads of one model into one cache at once (two processes, in effect: the lock is
  /// per open file) fetch each blob once and both end complete.
  @Test func concurrentDownloadsShareTheBlobs() async throws {
    let scene = try Scene()
    let hub = try scene.hub(["--repo", "tiny/sharded=" + (try scene.repository("sharded"))])
    defer { hub.stop() }
    async let first = Self.download(scene.downloader(hub), "tiny/sharded")
    async let second = Self.download(scene.downloader(hub), "tiny/sharded")
    let (a, b) = try await (first, second)
    #expect(a == b)
    let cdn = scene.requests().filter { ($0["path"] as? String ?? "").hasPrefix("/cdn/") }
    #expect(cdn.count == 3)
    #expect(try DecoderModel.load(path: a).config.layerCount == 3)
  }

  /// Tokenizer loads fetch the tokenizer files alone.
  @Test func aTokenizerNeedsOnlyItsFiles() async throws {
    let scene = try Scene()
    let repository = try scene.repository("model", model: "qwen3-gqa-tied-f32")
    for name in ["tokenizer.json", "tokenizer_config.json"] {
      try FileManager.default.copyItem(
        atPath: (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/qwen3-tokenizer/" + name), toPath: repository + "/" + name)
    }
    let hub = try scene.hub(["--repo", "tiny/model=" + repository])
    defer { hub.stop() }
    let downloader = scene.downloader(hub)
    defer { Task { await downloader.shutdown() } }
    let path = try await downloader.download(try #require(HubReference("tiny/model")), content: .tokenizer)
    #expect(try FileManager.default.contentsOfDirectory(atPath: path).sorted() == ["tokenizer.json", "tokenizer_config.json"])
    #expect(throws: HubError.self) { try HubCache.cachedPath(HubReference("tiny/model")!, content: .model, cache: scene.cache) }
    #expect(try HubCache.cachedPath(HubReference("tiny/model")!, content: .tokenizer, cache: scene.cache) == path)
  }

  /// A file that does not hash to its ETag is refused and leaves nothing behind.
  @Test func aCorruptFileIsRefused() async throws {
    let scene = try Scene()
    let hub = try scene.hub(["--repo", "tiny/model=" + (try scene.repository("model", model: "qwen3-gqa-tied-f32")), "--corrupt"])
    defer { hub.stop() }
    let message = await Self.message { _ = try await Self.download(scene.downloader(hub), "tiny/model") }
    #expect(message.contains("does not match the Hub's checksum"), "\(message)")
    let blobs = (try? FileManager.default.contentsOfDirectory(atPath: scene.cache + "/models--tiny--model/blobs")) ?? []
    #expect(!blobs.contains { $0.count == 64 || $0.hasSuffix(".incomplete") })
    #expect(throws: HubError.self) { try HubCache.cachedPath(HubReference("tiny/model")!, cache: scene.cache) }
  }

  /// Private repositories need the token (401 otherwise, with a message that names HF_TOKEN);
  /// unknown repositories, revisions and GGUF names are reported as such; `:QUANT` fetches the
  /// one GGUF file that matches.
  @Test func refusalsAreExplained() async throws {
    let scene = try Scene()
    let ggufRepository = scene.root + "/repos/gguf"
    try FileManager.default.createDirectory(atPath: ggufRepository, withIntermediateDirectories: true)
    for quant in ["Q4_K_M", "Q8_0", "Q4_0"] {
      try Data("GGUF \(quant)".utf8).write(to: URL(fileURLWithPath: ggufRepository + "/tiny-\(quant).gguf"))
    }
    let hub = try scene.hub([
      "--repo", "tiny/private=" + (try scene.repository("private", model: "qwen3-gqa-tied-f32")), "--private", "tiny/private",
      "--token", "hf_right", "--repo", "tiny/tiny-GGUF=" + ggufRepository,
    ])
    defer { hub.stop() }
    for token in [nil, "hf_wrong"] {
      let message = await Self.message { _ = try await Self.download(scene.downloader(hub, token: token), "tiny/private") }
      #expect(message.contains("HTTP 401") && message.contains("HF_TOKEN"), "\(message)")
    }
    _ = try await Self.download(scene.downloader(hub, token: "hf_right"), "tiny/private")
    let unknown = await Self.message { _ = try await Self.download(scene.downloader(hub), "tiny/unknown") }
    #expect(unknown.contains("HTTP 401"), "\(unknown)")
    let revision = await Self.message { _ = try await Self.download(scene.downloader(hub, token: "hf_right"), "tiny/private@v9") }
    #expect(revision.contains("no such revision"), "\(revision)")

    let file = try await Self.download(scene.downloader(hub), "tiny/tiny-GGUF:q8_0")
    #expect(file.hasSuffix("/tiny-Q8_0.gguf"))
    #expect(try String(contentsOfFile: file, encoding: .utf8) == "GGUF Q8_0")
    let snapshot = (file as NSString).deletingLastPathComponent
    #expect(try FileManager.default.contentsOfDirectory(atPath: snapshot) == ["tiny-Q8_0.gguf"])
    let several = await Self.message { _ = try await Self.download(scene.downloader(hub), "tiny/tiny-GGUF:Q4") }
    #expect(several.contains("several .gguf files") && several.contains("tiny-Q4_0.gguf, tiny-Q4_K_M.gguf"), "\(several)")
    let none = await Self.message { _ = try await Self.download(scene.downloader(hub), "tiny/tiny-GGUF") }
    #expect(none.contains("name one as tiny/tiny-GGUF:QUANT"), "\(none)")
  }

  /// 429 answers are retried (after `Retry-After`), a renamed repository's relative redirect is
  /// followed, and offline settings never touch the network.
  @Test func throttlingRenamesAndOffline() async throws {
    let scene = try Scene()
    let hub = try scene.hub([
      "--repo", "tiny/model=" + (try scene.repository("model", model: "qwen3-gqa-tied-f32")), "--rename", "old/model=tiny/model",
      "--throttle", "2",
    ])
    defer { hub.stop() }
    let offline = await Self.message { _ = try await Self.download(scene.downloader(hub, offline: true), "old/model") }
    #expect(offline.contains("HF_HUB_OFFLINE"), "\(offline)")
    #expect(scene.requests().isEmpty)
    _ = try await Self.download(scene.downloader(hub), "old/model")
    let statuses = scene.requests().compactMap { $0["status"] as? Int }
    #expect(statuses.prefix(3) == [429, 429, 307])
  }

  /// The cache is huggingface_hub's: what it downloads, the engine loads from the cache by id;
  /// what we download, it finds offline (snapshot_download and hf_hub_download with
  /// local_files_only) at the same paths.
  @Test func theCacheIsSharedWithHuggingFaceHub() async throws {
    let python = (Fixtures.repositoryRoot as NSString).appendingPathComponent(".assets/hub-venv/bin/python")
    try #require(FileManager.default.isExecutableFile(atPath: python), "scripts/fetch-test-assets.sh installs huggingface_hub")
    let scene = try Scene()
    let hub = try scene.hub(["--repo", "tiny/model=" + (try scene.repository("model", model: "qwen3-gqa-tied-f32"))])
    defer { hub.stop() }
    func interop(_ mode: String, cache: String) throws -> [String] {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: python)
      process.arguments = [(Fixtures.repositoryRoot as NSString).appendingPathComponent("Tests/Fixtures/hub/interop.py"), mode, "tiny/model", cache]
      var environment = ProcessInfo.processInfo.environment
      environment["HF_ENDPOINT"] = "http://127.0.0.1:\(hub.port)"
      environment["HF_HUB_DISABLE_XET"] = "1"
      environment["HF_HUB_DISABLE_TELEMETRY"] = "1"
      process.environment = environment
      let output = Pipe()
      process.standardOutput = output
      try process.run()
      let data = output.fileHandleForReading.readDataToEndOfFile()
      process.waitUntilExit()
      #expect(process.terminationStatus == 0, "interop.py \(mode)")
      return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
    // Theirs → ours.
    let theirs = scene.root + "/theirs"
    let downloaded = try interop("download", cache: theirs)
    let ours = try HubCache.resolve("tiny/model", environment: ["HF_HUB_CACHE": theirs])
    #expect(downloaded == [ours])
    #expect(try DecoderModel.load(path: ours).config.layerCount == 2)
    // Ours → theirs.
    let path = try await Self.download(scene.downloader(hub), "tiny/model")
    #expect(try interop("offline", cache: scene.cache) == [path, path + "/config.json"])
  }
}

/// The SHA-256 of a file, as `sha256sum` prints it.
func shellSHA256(_ path: String) throws -> String {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  process.arguments = ["sha256sum", path]
  let output = Pipe()
  process.standardOutput = output
  try process.run()
  let data = output.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return String(String(decoding: data, as: UTF8.self).prefix(64))
}
