import Foundation

/// The tensors of a Hugging Face model folder: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`. All files stay memory-mapped for the checkpoint's lifetime.
public final class Checkpoint: @unchecked Sendable {
  public let directory: String
  public let files: [SafetensorsFile]
  private let locations: [String: (file: Int, info: TensorInfo)]

  /// Opens the checkpoint in `directory`, validating every file header and, for a sharded
  /// checkpoint, that the index names only plain file names in the folder and that each listed
  /// tensor is in the shard the index says.
  public init(directory: String) throws {
    self.directory = directory
    let single = (directory as NSString).appendingPathComponent("model.safetensors")
    let index = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
    let fm = FileManager.default
    var files: [SafetensorsFile] = []
    var locations: [String: (file: Int, info: TensorInfo)] = [:]
    if fm.fileExists(atPath: single) {
      let file = try SafetensorsFile(path: single)
      files = [file]
      for (name, info) in file.tensors { locations[name] = (0, info) }
    } else if fm.fileExists(atPath: index) {
      let weightMap = try Self.readIndex(index)
      let shards = Set(weightMap.values).sorted()
      for shard in shards {
        files.append(try SafetensorsFile(path: (directory as NSString).appendingPathComponent(shard)))
      }
      let shardNumbers = Dictionary(uniqueKeysWithValues: shards.enumerated().map { ($1, $0) })
      for (name, shard) in weightMap {
        let number = shardNumbers[shard, default: 0]
        guard let info = files[number].tensors[name] else {
          throw EngineError.invalidTensorFile(
            path: index, reason: "tensor \"\(name)\" is listed in \(shard) but that file does not contain it")
        }
        locations[name] = (number, info)
      }
    } else {
      throw EngineError.unreadableFile(
        path: directory, reason: "no model.safetensors or model.safetensors.index.json in this folder")
    }
    self.files = files
    self.locations = locations
  }

  /// Reads `weight_map` of a sharded checkpoint index.
  static func readIndex(_ path: String) throws -> [String: String] {
    func fail(_ reason: String) -> EngineError { .invalidTensorFile(path: path, reason: reason) }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw EngineError.unreadableFile(path: path, reason: "cannot open the file")
    }
    guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw fail("not a JSON object")
    }
    guard let map = root["weight_map"] as? [String: Any] else { throw fail("no \"weight_map\" object") }
    var result: [String: String] = [:]
    for (name, value) in map {
      guard let shard = value as? String else { throw fail("weight_map[\"\(name)\"] is not a file name") }
      guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), shard != ".", shard != ".." else {
        throw fail("weight_map[\"\(name)\"] names \"\(shard)\", which is not a plain file name in the model folder")
      }
      result[name] = shard
    }
    guard !result.isEmpty else { throw fail("weight_map is empty") }
    return result
  }

  /// Names of all tensors.
  public var tensorNames: [String] { Array(locations.keys) }

  /// The tensor called `name`, or nil.
  public func tensor(_ name: String) -> TensorInfo? { locations[name]?.info }

  /// The file that holds `name` (for error messages), or nil.
  public func path(of name: String) -> String? {
    locations[name].map { files[$0.file].path }
  }

  /// Drops the resident pages of tensor `name` (one read once and not needed again, such as a
  /// matrix quantized at load); a later read pages it in again.
  public func releasePages(of name: String) {
    guard let (file, info) = locations[name] else { return }
    files[file].file.releasePages(info.fileOffset..<(info.fileOffset + info.byteCount))
  }

  /// The bytes of tensor `name` inside its mapping, or nil if there is no such tensor.
  public func pointer(to name: String) -> UnsafeRawPointer? {
    guard let (file, info) = locations[name] else { return nil }
    return files[file].pointer(to: info)
  }
}
