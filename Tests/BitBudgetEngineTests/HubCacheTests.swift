import Foundation
import Testing

import BitBudgetEngine

@Suite struct HubCacheTests {
  @Test func referencesParseAsTheHubNamesThem() {
    #expect(HubReference("Qwen/Qwen3-0.6B") == HubReference(repository: "Qwen/Qwen3-0.6B", revision: "main", fileHint: nil))
    #expect(HubReference("Qwen/Qwen3-0.6B@v1.0")?.revision == "v1.0")
    #expect(HubReference("Qwen/Qwen3-0.6B-GGUF:Q8_0")?.fileHint == "Q8_0")
    let both = HubReference("org/name@abc:Q4_K_M")
    #expect(both?.repository == "org/name" && both?.revision == "abc" && both?.fileHint == "Q4_K_M")
    for text in ["name", "a/b/c", "../x", "/abs/path", "org/..", "org/na me", "org/.hidden", "org/name@", "org/name:", "org/name@../x", "ørg/name"] {
      #expect(HubReference(text) == nil, "\(text)")
    }
  }

  /// The cache folder in huggingface_hub's order of precedence.
  @Test func cacheDirectoryFollowsHuggingFaceHub() {
    #expect(HubCache.directory(environment: ["HF_HUB_CACHE": "/a", "HF_HOME": "/b"]) == "/a")
    #expect(HubCache.directory(environment: ["HUGGINGFACE_HUB_CACHE": "/c", "HF_HOME": "/b"]) == "/c")
    #expect(HubCache.directory(environment: ["HF_HOME": "/b", "XDG_CACHE_HOME": "/x"]) == "/b/hub")
    #expect(HubCache.directory(environment: ["XDG_CACHE_HOME": "/x"]) == "/x/huggingface/hub")
    #expect(HubCache.directory(environment: [:]) == ("~/.cache/huggingface/hub" as NSString).expandingTildeInPath)
  }

  @Test func resolvesSnapshotsAndGGUFFiles() throws {
    let cache = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: cache) }
    let repository = cache.appendingPathComponent("models--org--model-GGUF")
    let commit = String(repeating: "ab", count: 20)
    let snapshot = repository.appendingPathComponent("snapshots/\(commit)")
    try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: repository.appendingPathComponent("refs"), withIntermediateDirectories: true)
    try Data((commit + "\n").utf8).write(to: repository.appendingPathComponent("refs/main"))
    for file in ["model-Q4_K_M.gguf", "model-Q8_0.gguf", "model-Q4_K_S.gguf"] {
      try Data().write(to: snapshot.appendingPathComponent(file))
    }
    let environment = ["HF_HUB_CACHE": cache.path]
    #expect(try HubCache.resolve("org/model-GGUF:q8_0", environment: environment) == snapshot.appendingPathComponent("model-Q8_0.gguf").path)
    // A folder reference needs what a run reads: config.json and every shard the index lists.
    #expect(throws: HubError.self) { try HubCache.resolve("org/model-GGUF", environment: environment) }
    try Data("{}".utf8).write(to: snapshot.appendingPathComponent("config.json"))
    try Data(#"{"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}"#.utf8)
      .write(to: snapshot.appendingPathComponent("model.safetensors.index.json"))
    try Data().write(to: snapshot.appendingPathComponent("model-1.safetensors"))
    #expect(throws: HubError.self) { try HubCache.resolve("org/model-GGUF", environment: environment) }
    try Data().write(to: snapshot.appendingPathComponent("model-2.safetensors"))
    #expect(try HubCache.resolve("org/model-GGUF", environment: environment) == snapshot.path)
    #expect(try HubCache.resolve("org/model-GGUF@\(commit)", environment: environment) == snapshot.path)
    #expect(throws: HubError.self) { try HubCache.resolve("org/model-GGUF:Q4_K", environment: environment) }
    #expect(throws: HubError.self) { try HubCache.resolve("org/model-GGUF:Q2_K", environment: environment) }
    #expect(throws: HubError.self) { try HubCache.resolve("org/other", environment: environment) }
    // A local path is itself, whatever its shape; a name that is not a Hub id passes through.
    #expect(try HubCache.resolve(cache.path, environment: environment) == cache.path)
    #expect(try HubCache.resolve("qwen3-8b", environment: environment) == "qwen3-8b")
  }
}
