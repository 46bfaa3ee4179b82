import Foundation

/// One tensor of a tensor file: its element type, shape, and where its bytes are in the mapping.
public struct TensorInfo: Sendable, Equatable {
  public let name: String
  public let dtype: TensorDType
  public let shape: [Int]
  /// Offset of the first byte from the start of the file.
  public let fileOffset: Int
  public let byteCount: Int

  /// Number of elements (product of the shape; 1 for a scalar).
  public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped `.safetensors` file with a validated header.
///
/// Format: an 8-byte little-endian header length `N`, `N` bytes of JSON mapping tensor names to
/// `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the end of the header)
/// plus an optional `"__metadata__"` object of strings, then the data. Opening checks everything a
/// hostile or truncated file could get wrong — header length against the file size and a 100 MB
/// bound, JSON syntax, unique names, known dtypes, non-negative integer shapes, `elements × dtype
/// size == end − begin` (without overflow), offsets inside the file, no two tensors overlapping — so
/// that reading any tensor afterwards cannot leave the mapping. Tensor bytes are not touched at open.
public final class SafetensorsFile: @unchecked Sendable {
  /// Largest header accepted (the reference `safetensors` library uses the same bound).
  public static let maximumHeaderBytes = 100_000_000

  public let file: MappedFile
  public var path: String { file.path }
  /// Tensors by name.
  public let tensors: [String: TensorInfo]
  /// The `__metadata__` strings.
  public let metadata: [String: String]

  public init(path: String) throws {
    let file = try MappedFile(path: path)
    self.file = file
    func fail(_ reason: String) -> EngineError { .invalidTensorFile(path: path, reason: reason) }

    guard file.byteCount >= 8 else {
      throw fail("the file is \(file.byteCount) bytes, too short for the 8-byte header length")
    }
    let declared = file.base.loadUnaligned(as: UInt64.self).littleEndian
    guard declared <= UInt64(Self.maximumHeaderBytes) else {
      throw fail("the header claims \(declared) bytes (more than the \(Self.maximumHeaderBytes)-byte limit); not a safetensors file?")
    }
    let headerLength = Int(declared)
    guard headerLength >= 2, 8 + headerLength <= file.byteCount else {
      throw fail("the header claims \(headerLength) bytes but the file has \(file.byteCount - 8) after the length field (truncated?)")
    }
    let headerBytes = file.bytes(8..<(8 + headerLength))
    let json: Any
    do {
      json = try JSONSerialization.jsonObject(with: Data(headerBytes), options: [])
    } catch {
      throw fail("the header is not valid JSON")
    }
    guard let entries = json as? [String: Any] else {
      throw fail("the header is not a JSON object")
    }
    if let duplicate = JSONKeyScanner.firstDuplicateTopLevelKey(in: headerBytes) {
      throw fail("tensor \"\(duplicate)\" appears twice in the header")
    }

    let dataStart = 8 + headerLength
    let dataLength = file.byteCount - dataStart
    var tensors: [String: TensorInfo] = [:]
    var metadata: [String: String] = [:]
    for (name, value) in entries {
      if name == "__metadata__" {
        guard let fields = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
        for (key, field) in fields {
          guard let text = field as? String else { throw fail("__metadata__.\(key) is not a string") }
          metadata[key] = text
        }
        continue
      }
      guard let entry = value as? [String: Any] else { throw fail("tensor \"\(name)\" is not an object") }
      guard let dtypeName = entry["dtype"] as? String else { throw fail("tensor \"\(name)\" has no dtype") }
      guard let dtype = TensorDType(rawValue: dtypeName) else {
        throw fail("tensor \"\(name)\" has unknown dtype \"\(dtypeName)\"")
      }
      guard let shape = JSONNumbers.nonNegativeIntegers(entry["shape"]) else {
        throw fail("tensor \"\(name)\" has a shape that is not a list of non-negative integers")
      }
      guard let offsets = JSONNumbers.nonNegativeIntegers(entry["data_offsets"]), offsets.count == 2 else {
        throw fail("tensor \"\(name)\" has data_offsets that are not two non-negative integers")
      }
      let (begin, end) = (offsets[0], offsets[1])
      guard begin <= end, end <= dataLength else {
        throw fail("tensor \"\(name)\" has bytes \(begin)..<\(end) outside the \(dataLength) data bytes (truncated file?)")
      }
      var elements = 1
      for dimension in shape {
        let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
        guard !overflow else { throw fail("tensor \"\(name)\" has a shape \(shape) too large to address") }
        elements = product
      }
      let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteCount)
      guard !overflow, bytes == end - begin else {
        throw fail("tensor \"\(name)\" of shape \(shape) and dtype \(dtypeName) needs \(overflow ? "too many" : String(bytes)) bytes but data_offsets span \(end - begin)")
      }
      tensors[name] = TensorInfo(
        name: name, dtype: dtype, shape: shape, fileOffset: dataStart + begin, byteCount: bytes)
    }

    let ordered = tensors.values.filter { $0.byteCount > 0 }.sorted { $0.fileOffset < $1.fileOffset }
    for (previous, next) in zip(ordered, ordered.dropFirst())
    where previous.fileOffset + previous.byteCount > next.fileOffset {
      throw fail("tensors \"\(previous.name)\" and \"\(next.name)\" overlap")
    }
    self.tensors = tensors
    self.metadata = metadata
  }

  /// The bytes of `tensor` (which must come from this file) inside the mapping.
  public func pointer(to tensor: TensorInfo) -> UnsafeRawPointer {
    file.base + tensor.fileOffset
  }
}

/// Integers from `JSONSerialization` output, rejecting fractions, non-numbers and negatives.
enum JSONNumbers {
  static func nonNegativeIntegers(_ value: Any?) -> [Int]? {
    guard let list = value as? [Any] else { return nil }
    var result: [Int] = []
    result.reserveCapacity(list.count)
    for item in list {
      guard let integer = nonNegativeInteger(item) else { return nil }
      result.append(integer)
    }
    return result
  }

  static func nonNegativeInteger(_ value: Any?) -> Int? {
    guard let integer = integer(value), integer >= 0 else { return nil }
    return integer
  }

  /// An exact JSON integer below 2⁵³ in magnitude (larger values are not byte counts of any file).
  static func integer(_ value: Any?) -> Int? {
    guard let number = value as? NSNumber, !isBoolean(number) else { return nil }
    let double = number.doubleValue
    guard double.isFinite, double == double.rounded(), abs(double) < 9.0e15 else { return nil }
    return Int(double)
  }

  /// Whether a parsed JSON value is `true` or `false`: Foundation hands booleans out as
  /// NSNumbers that also cast to 0 and 1 (so `"num_hidden_layers": true` would read as 1).
  static func isBoolean(_ number: NSNumber) -> Bool {
    String(cString: number.objCType) == "c"
  }
}

/// Finds duplicate keys of a JSON object, which `JSONSerialization` silently merges.
enum JSONKeyScanner {
  /// The first key that occurs twice at the top level of the JSON object in `bytes`, or nil. The
  /// input must already be valid JSON; keys are compared as raw (still escaped) bytes.
  static func firstDuplicateTopLevelKey(in bytes: UnsafeRawBufferPointer) -> String? {
    var seen = Set<[UInt8]>()
    var depth = 0
    var expectKey = false
    var index = 0
    while index < bytes.count {
      let byte = bytes[index]
      switch byte {
      case UInt8(ascii: "\""):
        var end = index + 1
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
          end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1
        }
        if depth == 1 && expectKey {
          let key = Array(bytes[(index + 1)..<min(end, bytes.count)])
          if !seen.insert(key).inserted { return String(decoding: key, as: UTF8.self) }
          expectKey = false
        }
        index = end
      case UInt8(ascii: "{"), UInt8(ascii: "["):
        depth += 1
        if depth == 1 { expectKey = byte == UInt8(ascii: "{") }
      case UInt8(ascii: "}"), UInt8(ascii: "]"):
        depth -= 1
      case UInt8(ascii: ","):
        if depth == 1 { expectKey = true }
      default:
        break
      }
      index += 1
    }
    return nil
  }
}
