import BitBudgetTestSupport
import BitBudgetTokenizer
import Foundation
import Testing

@testable import BitBudgetEngine

/// Every way a GGUF header can be malformed gets a one-line error naming the file.
@Suite struct GGUFRejectionTests {
  /// Builds GGUF bytes field by field.
  struct Writer {
    var bytes: [UInt8] = []
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func string(_ text: String) {
      u64(UInt64(text.utf8.count))
      bytes += Array(text.utf8)
    }
    mutating func metadataString(_ key: String, _ value: String) {
      string(key)
      u32(8)
      string(value)
    }
    mutating func metadataStrings(_ key: String, _ values: [String]) {
      string(key)
      u32(9)
      u32(8)
      u64(UInt64(values.count))
      for value in values { string(value) }
    }
    mutating func metadataU32(_ key: String, _ value: UInt32) {
      string(key)
      u32(4)
      u32(value)
    }
    mutating func metadataBool(_ key: String, _ value: Bool) {
      string(key)
      u32(7)
      bytes.append(value ? 1 : 0)
    }
    mutating func tensor(_ name: String, _ dimensions: [UInt64], type: UInt32, offset: UInt64) {
      string(name)
      u32(UInt32(dimensions.count))
      for dimension in dimensions { u64(dimension) }
      u32(type)
      u64(offset)
    }
    mutating func pad(to alignment: Int) {
      while bytes.count % alignment != 0 { bytes.append(0) }
    }
  }

  /// A valid file: one F32 tensor of 8 elements and one Q8_0 tensor of 32.
  static func valid() -> Writer {
    var w = Writer()
    w.u32(0x4655_4747); w.u32(3); w.u64(2); w.u64(1)
    w.metadataString("general.architecture", "llama")
    w.tensor("a", [8], type: 0, offset: 0)
    w.tensor("b", [32], type: 8, offset: 32)
    w.pad(to: 32)
    w.bytes += [UInt8](repeating: 0, count: 32 + 34)
    return w
  }

  static func expectRejected(_ bytes: [UInt8], mentioning phrase: String) throws {
    let directory = try Fixtures.temporaryDirectory("gguf")
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.gguf")
    try Data(bytes).write(to: url)
    do {
      _ = try GGUFFile(path: url.path)
      Issue.record("accepted a bad file (\(phrase))")
    } catch let error as EngineError {
      #expect(error.description.contains(url.path), "\(error)")
      #expect(error.description.contains(phrase), "\(error)")
      #expect(!error.description.contains("\n"))
    }
  }

  /// Without `tokenizer.ggml.add_bos_token`, BOS is prepended as llama.cpp does: for the Llama 3
  /// pre-tokenizer (`llama-bpe`), not for the others; the key, when present, decides.
  @Test func bosFollowsLlamaCppWithoutTheKey() throws {
    let directory = try Fixtures.temporaryDirectory("gguf")
    defer { try? FileManager.default.removeItem(at: directory) }
    for (pre, key, expected) in [("llama-bpe", nil, true), ("qwen2", nil, false), ("llama-bpe", false, false), ("qwen2", true, true)] as [(String, Bool?, Bool)] {
      var w = Writer()
      w.u32(0x4655_4747); w.u32(3); w.u64(0); w.u64(key == nil ? 5 : 6)
      w.metadataString("general.architecture", "llama")
      w.metadataString("tokenizer.ggml.model", "gpt2")
      w.metadataString("tokenizer.ggml.pre", pre)
      w.metadataStrings("tokenizer.ggml.tokens", Self.byteLevelAlphabet + ["<s>"])
      w.metadataU32("tokenizer.ggml.bos_token_id", 256)
      if let key { w.metadataBool("tokenizer.ggml.add_bos_token", key) }
      w.pad(to: 32)
      let url = directory.appendingPathComponent("\(pre)-\(String(describing: key)).gguf")
      try Data(w.bytes).write(to: url)
      let ids = try Tokenizer.fromGGUF(try GGUFFile(path: url.path)).encodePrompt("ab")
      #expect(ids == (expected ? [256, 97, 98] : [97, 98]), "\(pre) \(String(describing: key))")
    }
  }

  /// GPT-2's byte-level spelling of the bytes 0…255, in byte order (printable bytes as
  /// themselves, the others shifted to U+0100…).
  static let byteLevelAlphabet: [String] = {
    var shifted = 0
    return (0..<256).map { byte in
      let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
      if printable { return String(UnicodeScalar(UInt8(byte))) }
      shifted += 1
      return String(UnicodeScalar(UInt32(255 + shifted))!)
    }
  }()

  @Test func acceptsAValidFile() throws {
    let directory = try Fixtures.temporaryDirectory("gguf")
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("ok.gguf")
    try Data(Self.valid().bytes).write(to: url)
    let file = try GGUFFile(path: url.path)
    #expect(file.tensors["b"]?.byteCount == 34)
    #expect(file.metadata["general.architecture"] == .string("llama"))
  }

  @Test func rejectsMalformedHeaders() throws {
    var badMagic = Self.valid()
    badMagic.bytes[0] = 0x00
    try Self.expectRejected(badMagic.bytes, mentioning: "magic")
    var version = Self.valid()
    version.bytes[4] = 9
    try Self.expectRejected(version.bytes, mentioning: "version 9")
    for length in [3, 10, 30, 60, 100] {
      try Self.expectRejected(Array(Self.valid().bytes.prefix(length)), mentioning: "ends early")
    }
    var w = Writer()
    w.u32(0x4655_4747); w.u32(3); w.u64(1 << 40); w.u64(0)
    try Self.expectRejected(w.bytes, mentioning: "implausibly large")
    w = Writer()
    w.u32(0x4655_4747); w.u32(3); w.u64(0); w.u64(1); w.u64(1 << 50)
    try Self.expectRejected(w.bytes, mentioning: "runs past the end")
    w = Writer()
    w.u32(0x4655_4747); w.u32(3); w.u64(0); w.u64(1); w.string("k"); w.u32(9); w.u32(4); w.u64(1 << 40)
    try Self.expectRejected(w.bytes, mentioning: "array")
    w = Writer()
    w.u32(0x4655_4747); w.u32(3); w.u64(0); w.u64(1); w.string("k"); w.u32(77)
    try Self.expectRejected(w.bytes, mentioning: "unknown type 77")
    w = Writer()
    w.u32(0x4655_4747); w.u32(3); w.u64(0); w.u64(2); w.metadataString("k", "a"); w.metadataString("k", "b")
    try Self.expectRejected(w.bytes, mentioning: "appears twice")
    w = Writer()
    w.u32(0x4655_4747); w.u32(3); w.u64(0); w.u64(1); w.string("general.alignment"); w.u32(4); w.u32(3)
    try Self.expectRejected(w.bytes, mentioning: "power of two")
  }

  @Test func rejectsBadTensorInfos() throws {
    func file(_ tensors: (inout Writer) -> Void, count: UInt64, data: Int = 200) -> [UInt8] {
      var w = Writer()
      w.u32(0x4655_4747); w.u32(3); w.u64(count); w.u64(0)
      tensors(&w)
      w.pad(to: 32)
      w.bytes += [UInt8](repeating: 0, count: data)
      return w.bytes
    }
    try Self.expectRejected(file({ $0.tensor("a", [], type: 0, offset: 0) }, count: 1), mentioning: "0 dimensions")
    try Self.expectRejected(file({ $0.tensor("a", [0], type: 0, offset: 0) }, count: 1), mentioning: "dimension of 0")
    try Self.expectRejected(file({ $0.tensor("a", [8], type: 99, offset: 0) }, count: 1), mentioning: "unknown ggml type 99")
    try Self.expectRejected(file({ $0.tensor("a", [40], type: 8, offset: 0) }, count: 1), mentioning: "not a multiple of Q8_0's block")
    try Self.expectRejected(file({ $0.tensor("a", [8], type: 0, offset: 4) }, count: 1), mentioning: "not aligned")
    try Self.expectRejected(file({ $0.tensor("a", [100], type: 0, offset: 0) }, count: 1), mentioning: "truncated")
    try Self.expectRejected(file({ $0.tensor("a", [8], type: 0, offset: 1 << 40) }, count: 1), mentioning: "past the end")
    try Self.expectRejected(
      file({ $0.tensor("a", [16], type: 0, offset: 0); $0.tensor("b", [8], type: 0, offset: 32) }, count: 2), mentioning: "overlap")
    try Self.expectRejected(
      file({ $0.tensor("a", [8], type: 0, offset: 0); $0.tensor("a", [8], type: 0, offset: 32) }, count: 2), mentioning: "appears twice")
    try Self.expectRejected(
      file({ $0.tensor("a", [1 << 30, 1 << 30, 1 << 30], type: 0, offset: 0) }, count: 1), mentioning: "too many elements")
  }

  /// Cut-off copies of the real SmolLM2 file are rejected (header) or fail at the first tensor
  /// that does not fit (data).
  @Test func rejectsTruncationsOfARealFile() throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: SmolLM2Tests.path))
    let directory = try Fixtures.temporaryDirectory("gguf-cut")
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("cut.gguf")
    for length in [8, 1000, 100_000, 1_700_000, data.count / 2, data.count - 1] {
      try data.prefix(length).write(to: url)
      #expect(throws: EngineError.self, "length \(length)") { try DecoderModel.load(path: url.path) }
    }
  }

  /// Metadata that disagrees with the tensors is refused, not run: a `block_count` below the
  /// blocks stored (it used to run 1 of 30 layers) and a norm retyped to a block type (its bytes
  /// read as Q4_0 gave garbage weights). Patched copies of the real SmolLM2 file.
  @Test func rejectsMetadataThatDisagreesWithTheTensors() throws {
    let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: SmolLM2Tests.path)))
    func offset(after name: String) throws -> Int {
      var needle = Writer()
      needle.string(name)
      let pattern = needle.bytes
      let index = try #require(
        (0...(original.count - pattern.count)).first { i in original[i] == pattern[0] && Array(original[i..<(i + pattern.count)]) == pattern },
        "\(name) not found")
      return index + pattern.count
    }
    func expectLoadFails(_ bytes: [UInt8], mentioning phrase: String) throws {
      let directory = try Fixtures.temporaryDirectory("gguf-disagree")
      defer { try? FileManager.default.removeItem(at: directory) }
      let url = directory.appendingPathComponent("model.gguf")
      try Data(bytes).write(to: url)
      #expect {
        _ = try DecoderModel.load(path: url.path)
      } throws: { error in
        (error as? EngineError)?.description.contains(phrase) == true
      }
    }
    // Key, then its type (4 = UINT32), then the value.
    var fewerBlocks = original
    let blockCount = try offset(after: "llama.block_count")
    #expect(fewerBlocks[blockCount..<(blockCount + 4)] == [4, 0, 0, 0])
    fewerBlocks.replaceSubrange((blockCount + 4)..<(blockCount + 8), with: [1, 0, 0, 0])
    try expectLoadFails(fewerBlocks, mentioning: "tensors the model does not use (blk.1.")
    // Name, then 1 dimension (u32), its size (u64), then the ggml type (2 = Q4_0).
    var blockNorm = original
    let norm = try offset(after: "output_norm.weight")
    #expect(blockNorm[norm..<(norm + 4)] == [1, 0, 0, 0])
    blockNorm.replaceSubrange((norm + 12)..<(norm + 16), with: [2, 0, 0, 0])
    try expectLoadFails(blockNorm, mentioning: "output_norm.weight")
  }

  @Test func rejectsUnsupportedModels() throws {
    var w = Self.valid()
    w.bytes.removeAll()
    w.u32(0x4655_4747); w.u32(3); w.u64(0); w.u64(1)
    w.metadataString("general.architecture", "mamba")
    let directory = try Fixtures.temporaryDirectory("gguf-arch")
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("mamba.gguf")
    try Data(w.bytes).write(to: url)
    #expect(throws: EngineError.unsupported("architecture \"mamba\" in \(url.path) (supported: qwen3, qwen2, llama)")) {
      try DecoderModel.load(path: url.path)
    }
  }
}
