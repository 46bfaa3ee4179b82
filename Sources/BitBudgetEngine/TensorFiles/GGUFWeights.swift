import BitBudgetKernels
import Foundation

/// The tensors of a GGUF file under their Hugging Face names, ready for the kernels: F32, F16 and
/// BF16 tensors are used in place in the mapping; linear layers of a type the quantized kernels
/// hold (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K: `heldForm`), the embedding and output
/// included, are repacked exactly
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

  /// How the quantized kernels hold a GGUF block type, or nil if they do not: code width, group
  /// parameters and group size (the file's block, or the k-quants' sub-block).
  public static func heldForm(_ type: GGMLType) -> (bits: Int, form: QuantizedMatrix.GroupParameters, groupSize: Int)? {
    HeldType(rawValue: type.name)?.form
  }

  /// The ggml block types the quantized kernels hold.
  enum HeldType: String {
    case q8_0 = "Q8_0", q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1", q4_K = "Q4_K", q5_K = "Q5_K", q6_K = "Q6_K"

    var form: (bits: Int, form: QuantizedMatrix.GroupParameters, groupSize: Int) {
      switch self {
      case .q8_0: (8, .scale(zero: 128), 32)
      case .q4_0: (4, .scale(zero: 8), 32)
      case .q4_1: (4, .scaleAndMinimum, 32)
      case .q5_0: (5, .scale(zero: 16), 32)
      case .q5_1: (5, .scaleAndMinimum, 32)
      case .q4_K: (4, .superBlockScaleAndMinimum, 32)
      case .q5_K: (5, .superBlockScaleAndMinimum, 32)
      case .q6_K: (6, .superBlockScale, 16)
      }
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
    guard let (bits, form, groupSize) = heldForm(info.type) else { return false }
    return QuantizedMatrix.layoutError(columns: columns, bits: bits, groupSize: groupSize, form: form) == nil
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
    guard config.architecture.ggufPermutesQueryKey else { return nil }
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
  /// copied (the k-quants' 6-bit scales and minima reordered), so every weight dequantizes to
  /// `GGUFDequantizer`'s value bit for bit. Cost: one pass over the tensor's bytes.
  static func repack(
    _ tensor: GGUFTensor, at source: UnsafeRawPointer, rows: Int, columns: Int, rowOrder: ((Int) -> Int)?, pool: ThreadPool
  ) -> QuantizedMatrixStorage? {
    guard let type = HeldType(rawValue: tensor.type.name), keepsQuantized(tensor, columns: columns) else { return nil }
    let (bits, form, groupSize) = type.form
    let blocks = columns / tensor.type.blockSize, blockBytes = tensor.type.blockBytes, blockSize = tensor.type.blockSize
    let parameterRowBytes = form.rowBytes(columns: columns, groupSize: groupSize)
    return QuantizedMatrixStorage(rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, reordersInput: false, pool: pool) {
      codes, parameters, _ in
      let rowBytes = columns * bits / 8
      let chunkRows = max(1, 16_384 / columns)
      let codeBase = SendablePointer(codes), parameterBase = SendablePointer(UnsafeMutableRawPointer(parameters))
      pool.parallelFor((rows + chunkRows - 1) / chunkRows) { chunk in
        let rowCodes = UnsafeMutablePointer<UInt8>.allocate(capacity: columns)
        defer { rowCodes.deallocate() }
        for r in (chunk * chunkRows)..<min(rows, (chunk + 1) * chunkRows) {
          let rowParameters = parameterBase.pointer + r * parameterRowBytes
          let sourceRow = source + (rowOrder?(r) ?? r) * blocks * blockBytes
          for b in 0..<blocks {
            unpack(type, sourceRow + b * blockBytes, codes: rowCodes + blockSize * b, parameters: rowParameters + b * form.byteCount)
          }
          QuantizedMatrix.packRow(rowCodes, columns: columns, bits: bits, into: codeBase.pointer + r * rowBytes)
        }
      }
    }
  }

  /// The unsigned codes of one block of a held type, in element order, and its parameters in
  /// `QuantizedMatrix`'s form (`form.byteCount` bytes; f16 values copied as they are).
  private static func unpack(_ type: HeldType, _ block: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>, parameters: UnsafeMutableRawPointer) {
    @inline(__always) func byte(_ offset: Int) -> UInt8 { block.load(fromByteOffset: offset, as: UInt8.self) }
    @inline(__always) func copy(_ count: Int, from offset: Int, to destination: Int = 0) {
      parameters.advanced(by: destination).copyMemory(from: block + offset, byteCount: count)
    }
    switch type {
    case .q8_0:
      copy(2, from: 0)
      for i in 0..<32 { codes[i] = UInt8(Int(block.load(fromByteOffset: 2 + i, as: Int8.self)) + 128) }
    case .q4_0, .q4_1:
      // Element i in the low nibble of byte i, element 16 + i in the high one.
      let start = type == .q4_1 ? 4 : 2
      copy(start, from: 0)
      for i in 0..<16 {
        codes[i] = byte(start + i) & 0x0F
        codes[16 + i] = byte(start + i) >> 4
      }
    case .q5_0, .q5_1:
      // As Q4 with 32 high bits (bit i for element i) before the nibbles.
      let start = type == .q5_1 ? 4 : 2
      copy(start, from: 0)
      let high = block.loadUnaligned(fromByteOffset: start, as: UInt32.self).littleEndian
      for i in 0..<16 {
        codes[i] = byte(start + 4 + i) & 0x0F | UInt8(high >> UInt32(i) & 1) << 4
        codes[16 + i] = byte(start + 4 + i) >> 4 | UInt8(high >> UInt32(16 + i) & 1) << 4
      }
    case .q4_K, .q5_K:
      // d, dmin; the eight groups' 6-bit scales and minima, each packed into 48 bits.
      copy(4, from: 0)
      var scales: UInt64 = 0, minima: UInt64 = 0
      for group in 0..<8 {
        let (scale, minimum) = GGUFDequantizer.scaleAndMin(block + 4, group)
        scales |= UInt64(scale) << (6 * group)
        minima |= UInt64(minimum) << (6 * group)
      }
      for i in 0..<6 {
        parameters.storeBytes(of: UInt8(truncatingIfNeeded: scales >> (8 * i)), toByteOffset: 4 + i, as: UInt8.self)
        parameters.storeBytes(of: UInt8(truncatingIfNeeded: minima >> (8 * i)), toByteOffset: 10 + i, as: UInt8.self)
      }
      // Group g: nibble g % 2 of bytes 32·(g / 2) ..< +32 of the quants; Q5_K's bit g of
      // high-bit byte l is element 32g + l's fifth bit.
      let quants = type == .q5_K ? 48 : 16
      for group in 0..<8 {
        for l in 0..<32 {
          var code = byte(quants + 32 * (group / 2) + l) >> (4 * UInt8(group % 2)) & 0x0F
          if type == .q5_K { code |= (byte(16 + l) >> UInt8(group) & 1) << 4 }
          codes[32 * group + l] = code
        }
      }
    case .q6_K:  // ql[128], qh[64], int8 scales[16], f16 d → d, scales.
      copy(2, from: 208)
      copy(16, from: 192, to: 2)
      for half in 0..<2 {
        for e in 0..<128 {
          let low = byte(64 * half + e % 64) >> (e < 64 ? 0 : 4) & 0x0F
          let high = byte(128 + 32 * half + e % 32) >> UInt8(2 * (e / 32)) & 3
          codes[128 * half + e] = low | high << 4
        }
      }
    }
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
