import BitBudgetTokenizer
import Foundation

@testable import BitBudgetEngine

/// A GGUF file opened with `GGUFFile(path:)` (metadata and tensor index); on success the tensor
/// index must stay inside the file, and the file is read the way a model load reads it:
/// `ModelConfig.fromGGUF` and `Tokenizer.fromGGUF`, whose tokenizer then encodes short texts.
enum GGUFTarget {
  static let target = FuzzTarget(
    name: "gguf", summary: "GGUFFile(path:) + ModelConfig.fromGGUF + Tokenizer.fromGGUF + encode"
  ) { input in
    let path = Scratch.write(input, to: "model.gguf")
    guard let file = try? GGUFFile(path: path) else { return }
    invariant(file.version == 2 || file.version == 3, "accepted GGUF version \(file.version)")
    invariant(file.alignment > 0 && file.alignment & (file.alignment - 1) == 0, "alignment \(file.alignment)")
    invariant(file.tensorOrder.count == file.tensors.count, "tensorOrder and tensors disagree")
    var checksum: UInt8 = 0
    for (name, tensor) in file.tensors {
      invariant(
        tensor.fileOffset >= 0 && tensor.byteCount >= 0 && tensor.fileOffset + tensor.byteCount <= input.count,
        "tensor \"\(name)\" at \(tensor.fileOffset)+\(tensor.byteCount) leaves the \(input.count)-byte file")
      invariant(!tensor.dimensions.isEmpty && tensor.dimensions.allSatisfy { $0 > 0 }, "tensor \"\(name)\" has dimensions \(tensor.dimensions)")
      invariant(
        tensor.byteCount == tensor.elementCount / tensor.type.blockSize * tensor.type.blockBytes,
        "tensor \"\(name)\" byte count disagrees with its shape")
      if tensor.byteCount > 0 {
        let pointer = file.pointer(to: tensor)
        checksum ^= pointer.load(as: UInt8.self) ^ pointer.load(fromByteOffset: tensor.byteCount - 1, as: UInt8.self)
      }
    }
    blackHole(checksum)
    if let config = try? ModelConfig.fromGGUF(file) {
      blackHole(config.tensorShapes.count)
    }
    if let tokenizer = try? Tokenizer.fromGGUF(file) {
      exerciseTokenizer(tokenizer)
    }
  }
}
