import Foundation

/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
  case unsigned(UInt64)
  case signed(Int64)
  case float(Double)
  case bool(Bool)
  case string(String)
  case array([GGUFValue])

  public var integer: Int? {
    switch self {
    case .unsigned(let value): value <= UInt64(Int.max) ? Int(value) : nil
    case .signed(let value): Int(value)
    default: nil
    }
  }

  public var number: Double? {
    switch self {
    case .unsigned(let value): Double(value)
    case .signed(let value): Double(value)
    case .float(let value): value
    default: nil
    }
  }

  public var string: String? {
    if case .string(let value) = self { return value }
    return nil
  }

  public var array: [GGUFValue]? {
    if case .array(let values) = self { return values }
    return nil
  }
}

/// The tensor types of ggml (`ggml_type`) that can appear in a GGUF file, with their block
/// geometry. Only some can be read by the engine (`GGUFDequantizer`).
public struct GGMLType: Sendable, Equatable, CustomStringConvertible {
  public let id: UInt32
  public let name: String
  /// Elements per block.
  public let blockSize: Int
  /// Bytes per block.
  public let blockBytes: Int

  public var description: String { name }

  static let known: [UInt32: GGMLType] = {
    let table: [(UInt32, String, Int, Int)] = [
      (0, "F32", 1, 4), (1, "F16", 1, 2), (2, "Q4_0", 32, 18), (3, "Q4_1", 32, 20), (6, "Q5_0", 32, 22),
      (7, "Q5_1", 32, 24), (8, "Q8_0", 32, 34), (9, "Q8_1", 32, 36), (10, "Q2_K", 256, 84), (11, "Q3_K", 256, 110),
      (12, "Q4_K", 256, 144), (13, "Q5_K", 256, 176), (14, "Q6_K", 256, 210), (15, "Q8_K", 256, 292),
      (24, "I8", 1, 1), (25, "I16", 1, 2), (26, "I32", 1, 4), (27, "I64", 1, 8), (28, "F64", 1, 8), (30, "BF16", 1, 2),
    ]
    return Dictionary(uniqueKeysWithValues: table.map { ($0.0, GGMLType(id: $0.0, name: $0.1, blockSize: $0.2, blockBytes: $0.3)) })
  }()

  public static let f32 = GGMLType(id: 0, name: "F32", blockSize: 1, blockBytes: 4)
  public static let f16 = GGMLType(id: 1, name: "F16", blockSize: 1, blockBytes: 2)
  public static let bf16 = GGMLType(id: 30, name: "BF16", blockSize: 1, blockBytes: 2)
}

/// One tensor of a GGUF file.
public struct GGUFTensor: Sendable, Equatable {
  public let name: String
  /// Dimensions in ggml order: `dimensions[0]` is the innermost (a matrix row's length).
  public let dimensions: [Int]
  public let type: GGMLType
  /// Offset of the first byte from the start of the file.
  public let fileOffset: Int
  public let byteCount: Int

  public var elementCount: Int { dimensions.reduce(1, *) }
}

/// A memory-mapped GGUF (version 2 or 3) file with a validated header: metadata and tensor infos.
///
/// Every count, length and offset is checked against the file before use — string and array
/// lengths against the bytes left, tensor shapes against their type's block size, tensor data
/// inside the file, aligned, and not overlapping — so a truncated or hostile file is rejected with
/// a one-line error rather than read out of bounds.
public final class GGUFFile: @unchecked Sendable {
  public let file: MappedFile
  public var path: String { file.path }
  public let version: UInt32
  public let metadata: [String: GGUFValue]
  public let tensors: [String: GGUFTensor]
  /// Tensor names in file order.
  public let tensorOrder: [String]
  public let alignment: Int

  static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian
  static let maxCount = 1 << 24
  static let maxDimensions = 4

  public init(path: String) throws {
    let file = try MappedFile(path: path)
    self.file = file
    var reader = Reader(base: file.base, count: file.byteCount, path: path)
    guard try reader.u32() == Self.magic else { throw reader.fail("not a GGUF file (wrong magic)") }
    version = try reader.u32()
    guard version == 2 || version == 3 else { throw reader.fail("GGUF version \(version) (only 2 and 3)") }
    let tensorCount = try reader.count("tensor count")
    let metadataCount = try reader.count("metadata count")

    var metadata: [String: GGUFValue] = [:]
    for _ in 0..<metadataCount {
      let key = try reader.string()
      let type = try reader.u32()
      let value = try reader.value(type: type, depth: 0)
      if metadata.updateValue(value, forKey: key) != nil { throw reader.fail("metadata key \"\(key)\" appears twice") }
    }
    var alignment = 32
    if let value = metadata["general.alignment"] {
      guard let given = value.integer, given > 0, given <= 1 << 20, given & (given - 1) == 0 else {
        throw reader.fail("general.alignment must be a power of two")
      }
      alignment = given
    }
    self.alignment = alignment

    var infos: [(String, [Int], GGMLType, Int)] = []
    var names = Set<String>()
    for _ in 0..<tensorCount {
      let name = try reader.string()
      guard names.insert(name).inserted else { throw reader.fail("tensor \"\(name)\" appears twice") }
      let dimensionCount = Int(try reader.u32())
      guard (1...Self.maxDimensions).contains(dimensionCount) else {
        throw reader.fail("tensor \"\(name)\" has \(dimensionCount) dimensions")
      }
      var dimensions: [Int] = []
      for _ in 0..<dimensionCount {
        let dimension = try reader.u64()
        guard dimension > 0, dimension < 1 << 40 else { throw reader.fail("tensor \"\(name)\" has a dimension of \(dimension)") }
        dimensions.append(Int(dimension))
      }
      let typeID = try reader.u32()
      guard let type = GGMLType.known[typeID] else { throw reader.fail("tensor \"\(name)\" has unknown ggml type \(typeID)") }
      let offset = try reader.u64()
      guard offset < UInt64(file.byteCount) else { throw reader.fail("tensor \"\(name)\" starts past the end of the file") }
      infos.append((name, dimensions, type, Int(offset)))
    }
    let headerEnd = reader.position
    let dataStart = (headerEnd + alignment - 1) / alignment * alignment

    var tensors: [String: GGUFTensor] = [:]
    var order: [String] = []
    for (name, dimensions, type, offset) in infos {
      func fail(_ reason: String) -> EngineError { .invalidTensorFile(path: path, reason: "tensor \"\(name)\" \(reason)") }
      var elements = 1
      for dimension in dimensions {
        let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
        guard !overflow, product < 1 << 40 else { throw fail("has too many elements") }
        elements = product
      }
      guard dimensions[0] % type.blockSize == 0 else {
        throw fail("has rows of \(dimensions[0]) elements, not a multiple of \(type.name)'s block of \(type.blockSize)")
      }
      let bytes = elements / type.blockSize * type.blockBytes
      guard offset % alignment == 0 else { throw fail("is not aligned to \(alignment) bytes") }
      let (start, overflow) = dataStart.addingReportingOverflow(offset)
      guard !overflow, start + bytes <= file.byteCount else {
        throw fail("needs bytes \(start)..<\(start + bytes) but the file has \(file.byteCount) (truncated?)")
      }
      tensors[name] = GGUFTensor(name: name, dimensions: dimensions, type: type, fileOffset: start, byteCount: bytes)
      order.append(name)
    }
    let sorted = tensors.values.sorted { $0.fileOffset < $1.fileOffset }
    for (a, b) in zip(sorted, sorted.dropFirst()) where a.fileOffset + a.byteCount > b.fileOffset {
      throw EngineError.invalidTensorFile(path: path, reason: "tensors \"\(a.name)\" and \"\(b.name)\" overlap")
    }
    self.metadata = metadata
    self.tensors = tensors
    tensorOrder = order
  }

  /// The bytes of `tensor` inside the mapping.
  public func pointer(to tensor: GGUFTensor) -> UnsafeRawPointer { file.base + tensor.fileOffset }

  /// A bounds-checked little-endian cursor over the mapped header.
  struct Reader {
    let base: UnsafeRawPointer
    let count: Int
    let path: String
    var position = 0

    func fail(_ reason: String) -> EngineError { .invalidTensorFile(path: path, reason: reason) }

    mutating func take(_ bytes: Int) throws -> UnsafeRawPointer {
      guard bytes >= 0, count - position >= bytes else {
        throw fail("the header ends early at byte \(position) (truncated file?)")
      }
      defer { position += bytes }
      return base + position
    }

    mutating func u8() throws -> UInt8 { try take(1).load(as: UInt8.self) }
    mutating func u16() throws -> UInt16 { UInt16(littleEndian: try take(2).loadUnaligned(as: UInt16.self)) }
    mutating func u32() throws -> UInt32 { UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self)) }
    mutating func u64() throws -> UInt64 { UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self)) }

    mutating func count(_ what: String) throws -> Int {
      let value = try u64()
      guard value <= UInt64(GGUFFile.maxCount) else { throw fail("\(what) \(value) is implausibly large") }
      return Int(value)
    }

    mutating func string() throws -> String {
      let length = try u64()
      guard length <= UInt64(count - position) else { throw fail("a string of \(length) bytes runs past the end of the file") }
      let bytes = try take(Int(length))
      return String(decoding: UnsafeRawBufferPointer(start: bytes, count: Int(length)), as: UTF8.self)
    }

    mutating func value(type: UInt32, depth: Int) throws -> GGUFValue {
      switch type {
      case 0: return .unsigned(UInt64(try u8()))
      case 1: return .signed(Int64(Int8(bitPattern: try u8())))
      case 2: return .unsigned(UInt64(try u16()))
      case 3: return .signed(Int64(Int16(bitPattern: try u16())))
      case 4: return .unsigned(UInt64(try u32()))
      case 5: return .signed(Int64(Int32(bitPattern: try u32())))
      case 6: return .float(Double(Float(bitPattern: try u32())))
      case 7:
        let byte = try u8()
        guard byte <= 1 else { throw fail("a boolean with value \(byte)") }
        return .bool(byte == 1)
      case 8: return .string(try string())
      case 9:
        guard depth < 4 else { throw fail("arrays nested too deeply") }
        let elementType = try u32()
        let length = try u64()
        // Every element takes at least one byte, so a longer array cannot fit.
        guard length <= UInt64(count - position) else { throw fail("an array of \(length) elements runs past the end of the file") }
        var values: [GGUFValue] = []
        values.reserveCapacity(Int(length))
        for _ in 0..<Int(length) { values.append(try value(type: elementType, depth: depth + 1)) }
        return .array(values)
      case 10: return .unsigned(try u64())
      case 11: return .signed(Int64(bitPattern: try u64()))
      case 12: return .float(Double(bitPattern: try u64()))
      default: throw fail("metadata value of unknown type \(type)")
      }
    }
  }
}
