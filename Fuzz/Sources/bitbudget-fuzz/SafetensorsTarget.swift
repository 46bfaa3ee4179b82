import Foundation

@testable import BitBudgetEngine

/// A `.safetensors` file (8-byte header length, JSON header, data) opened with
/// `SafetensorsFile(path:)`; on success every tensor must lie inside the data section, agree with
/// its dtype and shape, and be readable. The same bytes are also read as a sharded checkpoint's
/// `model.safetensors.index.json` (`Checkpoint.readIndex`).
enum SafetensorsTarget {
  static let target = FuzzTarget(
    name: "safetensors", summary: "SafetensorsFile(path:) header + Checkpoint.readIndex"
  ) { input in
    let path = Scratch.write(input, to: "model.safetensors")
    if let file = try? SafetensorsFile(path: path) {
      check(file, input: input)
    }
    if let map = try? Checkpoint.readIndex(path) {
      for shard in map.values {
        invariant(!shard.isEmpty && !shard.contains("/") && shard != "..", "readIndex accepted shard name \"\(shard)\"")
      }
    }
  }

  static func check(_ file: SafetensorsFile, input: UnsafeRawBufferPointer) {
    invariant(file.file.byteCount == input.count, "mapped \(file.file.byteCount) bytes of a \(input.count)-byte file")
    let headerLength = Int(input.loadUnaligned(as: UInt64.self).littleEndian)
    let dataStart = 8 + headerLength
    var checksum: UInt8 = 0
    for (name, tensor) in file.tensors {
      invariant(tensor.name == name, "tensor listed as \"\(name)\" calls itself \"\(tensor.name)\"")
      invariant(tensor.shape.allSatisfy { $0 >= 0 }, "tensor \"\(name)\" has shape \(tensor.shape)")
      invariant(
        tensor.fileOffset >= dataStart && tensor.byteCount >= 0 && tensor.fileOffset + tensor.byteCount <= input.count,
        "tensor \"\(name)\" at \(tensor.fileOffset)+\(tensor.byteCount) leaves the data \(dataStart)..<\(input.count)")
      invariant(tensor.byteCount == tensor.elementCount * tensor.dtype.byteCount, "tensor \"\(name)\" byte count disagrees with its shape")
      if tensor.byteCount > 0 {
        // Touch the first and last byte through the mapping, as the loader would.
        let pointer = file.pointer(to: tensor)
        checksum ^= pointer.load(as: UInt8.self) ^ pointer.load(fromByteOffset: tensor.byteCount - 1, as: UInt8.self)
      }
    }
    let ordered = file.tensors.values.filter { $0.byteCount > 0 }.sorted { $0.fileOffset < $1.fileOffset }
    for (a, b) in zip(ordered, ordered.dropFirst()) {
      invariant(a.fileOffset + a.byteCount <= b.fileOffset, "tensors \"\(a.name)\" and \"\(b.name)\" overlap")
    }
    blackHole(checksum)
  }
}

@inline(never)
func blackHole<T>(_ value: T) {
  withExtendedLifetime(value) {}
}
