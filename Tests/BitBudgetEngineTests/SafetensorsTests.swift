import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetEngine

/// Every way a safetensors file or a sharded index can be malformed gets a one-line
/// `EngineError` that names the file and the problem.
@Suite struct SafetensorsTests {
  /// Writes a safetensors file from a header text and data bytes; `declaredLength` overrides the
  /// 8-byte header length.
  static func write(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil, to url: URL) throws {
    var bytes = [UInt8]()
    let headerBytes = Array(header.utf8)
    var length = (declaredLength ?? UInt64(headerBytes.count)).littleEndian
    withUnsafeBytes(of: &length) { bytes += $0 }
    bytes += headerBytes + data
    try Data(bytes).write(to: url)
  }

  static func expectRejected(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil, mentioning phrase: String) throws {
    let directory = try Fixtures.temporaryDirectory("st")
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.safetensors")
    try write(header, data: data, declaredLength: declaredLength, to: url)
    do {
      _ = try SafetensorsFile(path: url.path)
      Issue.record("accepted a bad file: \(header)")
    } catch let error as EngineError {
      let message = error.description
      #expect(message.contains(url.path), "\(message)")
      #expect(message.contains(phrase), "\(message)")
      #expect(!message.contains("\n"))
    }
  }

  @Test func acceptsAWellFormedFile() throws {
    let directory = try Fixtures.temporaryDirectory("st")
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.safetensors")
    let header = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[],"data_offsets":[12,16]}}"#
    try Self.write(header, data: Array(repeating: 1, count: 16), to: url)
    let file = try SafetensorsFile(path: url.path)
    #expect(file.tensors["a"]?.shape == [2, 3])
    #expect(file.tensors["a"]?.byteCount == 12)
    #expect(file.tensors["b"]?.elementCount == 1)
    #expect(file.metadata["format"] == "pt")
  }

  @Test func rejectsMalformedFiles() throws {
    let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    try Self.expectRejected("", declaredLength: 0, mentioning: "header")
    try Self.expectRejected(ok, data: Array(repeating: 0, count: 8), declaredLength: 1_000_000, mentioning: "truncated")
    try Self.expectRejected(ok, declaredLength: UInt64.max, mentioning: "limit")
    try Self.expectRejected("{not json", mentioning: "not valid JSON")
    try Self.expectRejected("[1,2]", mentioning: "not a JSON object")
    try Self.expectRejected(
      #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
      data: Array(repeating: 0, count: 8), mentioning: "appears twice")
    try Self.expectRejected(#"{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}}"#, data: [0], mentioning: "unknown dtype")
    try Self.expectRejected(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], mentioning: "shape")
    try Self.expectRejected(#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], mentioning: "shape")
    try Self.expectRejected(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0], mentioning: "outside")
    try Self.expectRejected(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8), mentioning: "needs 12 bytes")
    try Self.expectRejected(
      #"{"a":{"dtype":"F32","shape":[4000000000000000,4000000000000000],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8), mentioning: "too large")
    try Self.expectRejected(
      #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
      data: Array(repeating: 0, count: 12), mentioning: "overlap")
    try Self.expectRejected(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: Array(repeating: 0, count: 4), mentioning: "outside")
    try Self.expectRejected(#"{"__metadata__":{"x":1}}"#, mentioning: "__metadata__")
    try Self.expectRejected(#"{"a":[1,2]}"#, mentioning: "not an object")
  }

  @Test func rejectsTinyAndEmptyFiles() throws {
    let directory = try Fixtures.temporaryDirectory("st")
    defer { try? FileManager.default.removeItem(at: directory) }
    let empty = directory.appendingPathComponent("empty.safetensors")
    try Data().write(to: empty)
    #expect(throws: EngineError.self) { try SafetensorsFile(path: empty.path) }
    let short = directory.appendingPathComponent("short.safetensors")
    try Data([1, 2, 3]).write(to: short)
    #expect(throws: EngineError.invalidTensorFile(path: short.path, reason: "the file is 3 bytes, too short for the 8-byte header length")) {
      try SafetensorsFile(path: short.path)
    }
    #expect(throws: EngineError.self) { try SafetensorsFile(path: directory.appendingPathComponent("missing").path) }
    #expect(throws: EngineError.self) { try SafetensorsFile(path: directory.path) }
  }

  /// A real fixture cut short (in the length field, the header, the data) is rejected, never read
  /// past its end.
  @Test func rejectsTruncationsOfARealFile() throws {
    let source = URL(fileURLWithPath: Fixtures.modelPath("qwen3-gqa-tied-f32")).appendingPathComponent("model.safetensors")
    let bytes = try Data(contentsOf: source)
    let directory = try Fixtures.temporaryDirectory("cut")
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.safetensors")
    for length in [1, 7, 8, 100, 1000, bytes.count / 2, bytes.count - 1] {
      try bytes.prefix(length).write(to: url)
      #expect(throws: EngineError.self, "length \(length)") { try SafetensorsFile(path: url.path) }
    }
  }

  @Test func rejectsBadShardIndexes() throws {
    let source = Fixtures.modelPath("qwen3-gqa4-tied-bf16-sharded")
    let directory = try Fixtures.temporaryDirectory("shards")
    defer { try? FileManager.default.removeItem(at: directory) }
    for file in try FileManager.default.contentsOfDirectory(atPath: source) {
      try FileManager.default.copyItem(atPath: (source as NSString).appendingPathComponent(file), toPath: directory.appendingPathComponent(file).path)
    }
    #expect(try Checkpoint(directory: directory.path).tensorNames.count == 35)
    let index = directory.appendingPathComponent("model.safetensors.index.json")
    let original = try Data(contentsOf: index)
    let cases: [(String, String)] = [
      ("{", "not a JSON object"),
      (#"{"metadata":{}}"#, "weight_map"),
      (#"{"weight_map":{"model.norm.weight":"../../etc/passwd"}}"#, "plain file name"),
      (#"{"weight_map":{"model.norm.weight":"model-00001-of-00003.safetensors","lm_head.weight":"model-00001-of-00003.safetensors"}}"#, "does not contain"),
      (#"{"weight_map":{"model.norm.weight":"absent.safetensors"}}"#, "absent.safetensors"),
    ]
    for (text, phrase) in cases {
      try Data(text.utf8).write(to: index)
      do {
        _ = try Checkpoint(directory: directory.path)
        Issue.record("accepted index \(text)")
      } catch let error as EngineError {
        #expect(error.description.contains(phrase), "\(error)")
      }
    }
    try original.write(to: index)
  }
}
