import Foundation

/// Writes a `.safetensors` file tensor by tensor, so a model larger than memory can be written
/// while it is produced: the header (names, dtypes, shapes, offsets) is fixed up front, then each
/// tensor's bytes are appended in the declared order.
///
/// The file is written under a temporary name next to the destination and renamed into place by
/// `finish()`, so an interrupted conversion never leaves a truncated file that looks complete.
public final class SafetensorsWriter {
  /// A tensor of the file: name, element type and shape.
  public struct Entry: Sendable, Equatable {
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]

    public init(name: String, dtype: TensorDType, shape: [Int]) {
      self.name = name
      self.dtype = dtype
      self.shape = shape
    }

    public var byteCount: Int { shape.reduce(1, *) * dtype.byteCount }
  }

  public let path: String
  private let temporaryPath: String
  private let handle: FileHandle
  private let entries: [Entry]
  private var next = 0
  private var finished = false

  /// Creates the file and writes its header. `metadata` goes into `__metadata__`.
  public init(path: String, entries: [Entry], metadata: [String: String] = ["format": "pt"]) throws {
    self.path = path
    self.entries = entries
    temporaryPath = path + ".partial"
    guard FileManager.default.createFile(atPath: temporaryPath, contents: nil),
      let handle = FileHandle(forWritingAtPath: temporaryPath)
    else {
      throw EngineError.unwritableFile(path: temporaryPath, reason: "cannot create the file")
    }
    self.handle = handle
    var header: [String: Any] = ["__metadata__": metadata]
    var offset = 0
    for entry in entries {
      header[entry.name] = ["dtype": entry.dtype.rawValue, "shape": entry.shape, "data_offsets": [offset, offset + entry.byteCount]]
      offset += entry.byteCount
    }
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    // The data starts 8-byte aligned, as the reference writer does.
    json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - (8 + json.count) % 8) % 8))
    var length = UInt64(json.count).littleEndian
    try write(Data(bytes: &length, count: 8))
    try write(json)
  }

  deinit {
    if !finished {
      try? handle.close()
      try? FileManager.default.removeItem(atPath: temporaryPath)
    }
  }

  /// Appends the bytes of the next tensor in header order; `bytes` must hold exactly its size.
  public func append(_ bytes: UnsafeRawBufferPointer) throws {
    guard next < entries.count else { throw EngineError.invalidInput("safetensors writer: more tensors than declared") }
    let entry = entries[next]
    guard bytes.count == entry.byteCount else {
      throw EngineError.invalidInput("safetensors writer: \(entry.name) has \(bytes.count) bytes, \(entry.byteCount) declared")
    }
    // Chunks keep each write call bounded.
    var start = 0
    while start < bytes.count {
      let end = min(bytes.count, start + (64 << 20))
      try write(Data(bytes: bytes.baseAddress! + start, count: end - start))
      start = end
    }
    next += 1
  }

  /// Closes the file and moves it to `path`, replacing what was there.
  public func finish() throws {
    guard next == entries.count else {
      throw EngineError.invalidInput("safetensors writer: \(entries.count - next) declared tensors were not written")
    }
    do {
      try handle.synchronize()
      try handle.close()
      if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
      try FileManager.default.moveItem(atPath: temporaryPath, toPath: path)
    } catch {
      throw EngineError.unwritableFile(path: path, reason: error.localizedDescription)
    }
    finished = true
  }

  private func write(_ data: Data) throws {
    do {
      try handle.write(contentsOf: data)
    } catch {
      throw EngineError.unwritableFile(path: temporaryPath, reason: error.localizedDescription)
    }
  }
}
