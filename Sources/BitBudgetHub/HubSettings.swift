import Foundation
import BitBudgetEngine

/// Where and how to reach the Hugging Face Hub, read from the environment as `huggingface_hub`
/// reads it: `HF_ENDPOINT` (default https://huggingface.co), `HF_TOKEN` (else
/// `HUGGING_FACE_HUB_TOKEN`, else the file `HF_TOKEN_PATH` or `$HF_HOME/token` that
/// `huggingface-cli login` writes), `HF_HUB_OFFLINE`, and the cache folder (`HubCache.directory`).
public struct HubSettings: Sendable, Equatable {
  /// The Hub's base URL, without a trailing slash.
  public var endpoint: String
  public var token: String?
  /// Never touch the network: only the cache answers.
  public var offline: Bool
  public var cache: String

  public init(endpoint: String = "https://huggingface.co", token: String? = nil, offline: Bool = false, cache: String) {
    self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
    self.token = token
    self.offline = offline
    self.cache = cache
  }

  public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> HubSettings {
    func nonEmpty(_ key: String) -> String? { environment[key].flatMap { $0.isEmpty ? nil : $0 } }
    var token = nonEmpty("HF_TOKEN") ?? nonEmpty("HUGGING_FACE_HUB_TOKEN")
    if token == nil {
      let home = nonEmpty("HF_HOME").map { ($0 as NSString).expandingTildeInPath }
        ?? ((nonEmpty("XDG_CACHE_HOME") ?? ("~/.cache" as NSString).expandingTildeInPath) as NSString).appendingPathComponent("huggingface")
      let path = nonEmpty("HF_TOKEN_PATH").map { ($0 as NSString).expandingTildeInPath } ?? (home as NSString).appendingPathComponent("token")
      token = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
      if token?.isEmpty == true { token = nil }
    }
    let offline = ["1", "ON", "YES", "TRUE"].contains((environment["HF_HUB_OFFLINE"] ?? "").uppercased())
    return HubSettings(
      endpoint: nonEmpty("HF_ENDPOINT") ?? "https://huggingface.co", token: token, offline: offline,
      cache: HubCache.directory(environment: environment))
  }
}
