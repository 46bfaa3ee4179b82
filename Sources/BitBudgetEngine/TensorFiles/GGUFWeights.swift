import BitBudgetKernels
import Foundation

/// The tensors of a GGUF file under their Hugging Face names, ready for the kernels: F32, F16 and
/// BF16 tensors are used in place in the mapping; linear layers of a type the quantized kernels
/// hold (Q8_0, Q4_0, Q4_1: `heldForm`), the embedding and output included, are repacked exactly
/// into `QuantizedMatrix`'s layout at the file's size; other block-quantized tensors (and all
/// of them with `keepsQuantized` false) are widened once, at load, into memory this object owns
/// (bf16 by default, or f32).
///
/// llama.cpp's converter reorders the rows of the q and k projections of `llama` models for its
/// interleaved RoPE; they are put back in transformers' order here (whatever their type), so one
/// RoPE serves all architectures.
///
/// Loading streams: each tensor is widened row block by row block straight into its destination,
/// so memory peaks at the widened weights plus the pages of the file being read, not at a copy of
/// the whole file.
public final class GGUFWeights: WeightSource, @unchecked Sendable {
  public let file: GGUFFile
  public let config: ModelConfig
  /// The storage type of widened quantized tensors.
  public let widenedType: ElementType
  /// Whether linear layers of a held type stay quantized (else every block type is widened).
  public let keepsQuantized: Bool
  private var owned: [String: (UnsafeMutableRawPointer, ResolvedTensor)] = [:]
  /// Threads that widen tensors while loading.
  private let pool = ThreadPool()

  public init(file: GGUFFile, config: ModelConfig, widenedType: ElementType = .bf16, keepsQuantized: Bool = true) {
    self.file = file
    self.config = config
    self.widenedType = widenedType
    self.keepsQuantized = keepsQuantized
  }

  /// How the quantized kernels hold a GGUF block type, or nil if they do not: every such type
  /// has blocks of 32 weights with f16 parameters, which become groups of 32.
  public static func heldForm(_ type: GGMLType) -> (bits: Int, form: QuantizedMatrix.GroupParameters)? {
    switch type.name {
    case "Q8_0": (8, .scale(zero: 128))
    case "Q4_0": (4, .scale(zero: 8))
    case "Q4_1": (4, .scaleAndMinimum)
    default: nil
    }
  }

  /// The ggml types of the file's linear layers, most weights first, joined by "+".
  public var linearTypes: String {
    var weights: [String: Int] = [:]
    for (name, shape) in config.tensorShapes where WeightLayout.isLinearWeight(name) {
      if let ggufName = Self.ggufName(name), let tensor = file.tensors[ggufName] {
        weights[tensor.type.name, default: 0] += shape.reduce(1, *)
      }
    }
    return weights.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.map(\.key).joined(separator: "+")
  }

  /// Whether the linear weight `name` (`[rows, columns]`) of `file` stays quantized at load.
  static func keepsQuantized(_ info: GGUFTensor, columns: Int) -> Bool {
    heldForm(info.type) != nil && QuantizedMatrix.layoutError(columns: columns, bits: 8, groupSize: 32) == nil
  }

  /// The linear weight `name` repacked into the quantized kernels' layout, or nil when it is
  /// widened instead (a type they do not hold, a width that is not a multiple of 64, or
  /// `keepsQuantized` false). Exact: `dequantized(row:column:)` equals `GGUFDequantizer`'s value
  /// bit for bit. The file's pages of the tensor are released afterwards.
  public func quantizedLinear(_ name: String, rows: Int, columns: Int) throws -> QuantizedMatrixStorage? {
    guard keepsQuantized, let ggufName = Self.ggufName(name), let tensor = file.tensors[ggufName],
      Self.keepsQuantized(tensor, columns: columns)
    else { return nil }
    guard Array(tensor.dimensions.reversed()) == [rows, columns] else {
      throw EngineError.invalidWeights(
        reason: "tensor \(name) in \(file.path) has shape \(Array(tensor.dimensions.reversed())) but the model's config implies \([rows, columns])")
    }
    guard let storage = Self.repack(
      tensor, at: file.pointer(to: tensor), rows: rows, columns: columns, rowOrder: rowPermutation(name, rows: rows), pool: pool)
    else { return nil }
    file.file.releasePages(tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount))
    return storage
  }

  deinit {
    for (pointer, _) in owned.values { pointer.deallocate() }
  }

  public var location: String { file.path }

  /// Bytes of the widened copies this object holds.
  public var ownedBytes: Int { owned.values.reduce(0) { $0 + $1.1.byteCount } }

  /// The GGUF name of a Hugging Face tensor name, or nil for one GGUF files do not have.
  public static func ggufName(_ name: String) -> String? {
    switch name {
    case "model.embed_tokens.weight": return "token_embd.weight"
    case "model.norm.weight": return "output_norm.weight"
    case "lm_head.weight": return "output.weight"
    default: break
    }
    let parts = name.split(separator: ".")
    guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
    let rest = parts[3...].joined(separator: ".")
    let mapped: [String: String] = [
      "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
      "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
      "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
      "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
      "self_attn.o_proj.weight": "attn_output.weight", "self_attn.o_proj.bias": "attn_output.bias",
      "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
      "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
    ]
    return mapped[rest].map { "blk.\(layer).\($0)" }
  }

  /// The file's tensors under their Hugging Face names (GGUF names for those without one).
  public var tensorNames: [String] {
    let huggingFace = Dictionary(config.tensorShapes.compactMap { shape in Self.ggufName(shape.name).map { ($0, shape.name) } }) { a, _ in a }
    return file.tensors.keys.map { huggingFace[$0] ?? $0 }
  }

  public func contains(_ name: String) -> Bool {
    Self.ggufName(name).map { file.tensors[$0] != nil } ?? false
  }

  public func resolve(_ name: String) throws -> ResolvedTensor {
    if let (_, tensor) = owned[name] { return tensor }
    let (copy, tensor) = try widen(name)
    if let copy { owned[name] = (copy, tensor) }
    return tensor
  }

  /// Calls `body` with the tensor as `resolve` gives it, without keeping a widened copy beyond
  /// the call (for streaming a whole model through, e.g. to convert it).
  public func withTensor<Result>(_ name: String, _ body: (ResolvedTensor) throws -> Result) throws -> Result {
    if let (_, tensor) = owned[name] { return try body(tensor) }
    let (copy, tensor) = try widen(name)
    defer {
      if let copy {
        copy.deallocate()
      } else if let ggufName = Self.ggufName(name), let info = file.tensors[ggufName] {
        file.file.releasePages(info.fileOffset..<(info.fileOffset + info.byteCount))
      }
    }
    return try body(tensor)
  }

  /// The tensor in place in the mapping (nil copy), or widened and reordered into a new
  /// allocation that the caller owns.
  private func widen(_ name: String) throws -> (UnsafeMutableRawPointer?, ResolvedTensor) {
    guard let ggufName = Self.ggufName(name), let tensor = file.tensors[ggufName] else {
      throw EngineError.invalidWeights(reason: "tensor \(name) (\(Self.ggufName(name) ?? "no GGUF name")) is missing in \(file.path)")
    }
    let shape = Array(tensor.dimensions.reversed())
    let columns = tensor.dimensions[0]
    let rows = tensor.elementCount / columns
    let permutation = rowPermutation(name, rows: rows)
    if shape.count == 1 && Self.elementType(tensor.type) == nil {
      // Converters store norms and biases as floats; a block type here is a corrupt file.
      throw EngineError.invalidWeights(
        reason: "tensor \(ggufName) of \(file.path) is a vector of ggml type \(tensor.type.name); norms and biases must be F32, F16 or BF16")
    }
    if permutation == nil, let inPlace = Self.elementType(tensor.type) {
      return (nil, ResolvedTensor(pointer: file.pointer(to: tensor), elementType: inPlace, shape: shape, byteCount: tensor.byteCount))
    }
    guard GGUFDequantizer.supportedTypes.contains(tensor.type.name) else {
      throw EngineError.unsupported(
        "tensor \(ggufName) of \(file.path) has ggml type \(tensor.type.name) (supported: \(GGUFDequantizer.supportedTypes.sorted().joined(separator: ", ")))")
    }
    let target = Self.elementType(tensor.type) == .f32 ? ElementType.f32 : widenedType
    let byteCount = rows * columns * target.byteCount
    let destination = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    let source = file.pointer(to: tensor)
    let rowBytes = columns / tensor.type.blockSize * tensor.type.blockBytes
    let chunkRows = max(1, 65_536 / columns)
    let chunks = (rows + chunkRows - 1) / chunkRows
    let failure = FailureBox()
    pool.parallelFor(chunks) { chunk in
      let row = UnsafeMutablePointer<Float>.allocate(capacity: columns)
      defer { row.deallocate() }
      for r in (chunk * chunkRows)..<min(rows, (chunk + 1) * chunkRows) {
        let from = permutation?(r) ?? r
        do {
          try GGUFDequantizer.dequantize(tensor.type, source + from * rowBytes, count: columns, into: row)
        } catch {
          failure.record(error)
          return
        }
        storeConverted(row, count: columns, to: destination, at: r * columns, as: target)
      }
    }
    if let error = failure.error {
      destination.deallocate()
      throw error
    }
    // The quantized bytes are not read again; without this they would stay resident beside
    // the widened copy (0.5 GB for Qwen2.5-0.5B) until the kernel needed the memory.
    file.file.releasePages(tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount))
    return (destination, ResolvedTensor(pointer: UnsafeRawPointer(destination), elementType: target, shape: shape, byteCount: byteCount))
  }

  /// For llama's q and k weights: the GGUF row that holds transformers' row `r`. The converter
  /// stored, per head of `D` rows, the pairs (j, j + D/2) interleaved as rows (2j, 2j + 1).
  /// (Llama GGUFs with q/k biases are rejected when the config is read.)
  private func rowPermutation(_ name: String, rows: Int) -> ((Int) -> Int)? {
    guard config.architecture == .llama else { return nil }
    let heads: Int
    if name.hasSuffix("self_attn.q_proj.weight") {
      heads = config.queryHeads
    } else if name.hasSuffix("self_attn.k_proj.weight") {
      heads = config.kvHeads
    } else {
      return nil
    }
    let d = config.headDim
    let half = d / 2
    guard rows == heads * d else { return nil }
    return { r in
      let head = r / d, within = r % d
      let (s, j) = (within / half, within % half)
      return head * d + 2 * j + s
    }
  }

  static func elementType(_ type: GGMLType) -> ElementType? {
    switch type.name {
    case "F32": .f32
    case "F16": .f16
    case "BF16": .bf16
    default: nil
    }
  }

  /// `tensor` (`[rows, columns]` of a held type, its blocks at `source`) in the quantized
  /// kernels' layout; row `r` is the file's row `rowOrder(r)`. Codes and f16 parameters are
  /// copied, so every weight dequantizes to `GGUFDequantizer`'s value bit for bit.
  static func repack(
    _ tensor: GGUFTensor, at source: UnsafeRawPointer, rows: Int, columns: Int, rowOrder: ((Int) -> Int)?, pool: ThreadPool
  ) -> QuantizedMatrixStorage? {
    guard let (bits, form) = heldForm(tensor.type), keepsQuantized(tensor, columns: columns) else { return nil }
    let blocks = columns / 32, blockBytes = tensor.type.blockBytes
    let type = tensor.type.name
    let storage = QuantizedMatrixStorage(rows: rows, columns: columns, bits: bits, groupSize: 32, form: form, reordersInput: false) {
      codes, parameters, _ in
      let rowBytes = columns * bits / 8, perGroup = form.byteCount / 2
      let chunkRows = max(1, 16_384 / columns)
      let codeBase = SendablePointer(codes), parameterBase = SendablePointer(UnsafeMutableRawPointer(parameters))
      pool.parallelFor((rows + chunkRows - 1) / chunkRows) { chunk in
        for r in (chunk * chunkRows)..<min(rows, (chunk + 1) * chunkRows) {
          let row = codeBase.pointer + r * rowBytes
          let rowParameters = parameterBase.pointer.assumingMemoryBound(to: UInt16.self) + r * blocks * perGroup
          let sourceRow = source + (rowOrder?(r) ?? r) * blocks * blockBytes
          for b in 0..<blocks {
            let block = sourceRow + b * blockBytes
            // The f16 parameters are copied as they are.
            rowParameters[b * perGroup] = block.loadUnaligned(as: UInt16.self)
            switch type {
            case "Q8_0":
              for i in 0..<32 {
                let q = Int(block.load(fromByteOffset: 2 + i, as: Int8.self))
                QuantizedMatrix.setCode(q + 128, column: 32 * b + i, bits: 8, in: row)
              }
            default:  // Q4_0, Q4_1: element i in the low nibble of byte i, element 16 + i in the high one.
              let minimum = form == .scaleAndMinimum
              if minimum { rowParameters[b * perGroup + 1] = block.loadUnaligned(fromByteOffset: 2, as: UInt16.self) }
              let qs = block + (minimum ? 4 : 2)
              for i in 0..<16 {
                let byte = Int(qs.load(fromByteOffset: i, as: UInt8.self))
                QuantizedMatrix.setCode(byte & 0x0F, column: 32 * b + i, bits: 4, in: row)
                QuantizedMatrix.setCode(byte >> 4, column: 32 * b + 16 + i, bits: 4, in: row)
              }
            }
          }
        }
      }
    }
    return storage
  }

  /// A pointer handed to the loader's threads, which write disjoint rows.
  struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
  }

  /// The first error of a concurrent loop.
  final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var error: Error?

    func record(_ error: Error) {
      lock.lock()
      if self.error == nil { self.error = error }
      lock.unlock()
    }
  }
}
