import BitBudgetKernels
import Foundation

/// The four tensors of a GPTQ-quantized linear layer (AutoGPTQ's `QuantLinear`), converted to and
/// from the runtime layout (`QuantizedMatrix`):
/// - `qweight` I32 `[in · bits/32, out]`: codes packed along the input dimension, input row
///   `r · (32/bits) + k` at bit offset `bits · k`;
/// - `qzeros` I32 `[groups, out · bits/32]`: zero points packed along the output dimension;
///   format v1 stores `zero − 1`, v2 `zero`;
/// - `scales` F16 `[groups, out]`;
/// - `g_idx` I32 `[in]`: the group of each input column (`j / G`, or a permutation's groups with
///   act-order). Missing means `j / G`.
/// Dequantized: `W[o, i] = scales[g_idx[i], o] · (q[i, o] − zero[g_idx[i], o])`.
public enum GPTQTensors {
  /// Tensor name suffixes, in the order they are written.
  public static let suffixes = ["qweight", "qzeros", "scales", "g_idx"]

  /// Whether `source` holds a GPTQ layer under `prefix` (e.g. `model.layers.0.self_attn.q_proj`).
  public static func isQuantized(_ prefix: String, in source: any WeightSource) -> Bool {
    source.contains(prefix + ".qweight")
  }

  /// The stored column order that makes each group contiguous: columns sorted by group, stably;
  /// nil when that is the identity. Throws unless every group gets exactly the columns a
  /// contiguous split into groups of `groupSize` gives it.
  static func inputOrder(
    groupIndex: [Int32], columns: Int, groupSize: Int, name: String
  ) throws -> [Int32]? {
    let groups = (columns + groupSize - 1) / groupSize
    var counts = [Int](repeating: 0, count: groups)
    for i in 0..<columns {
      let g = Int(groupIndex[i])
      guard (0..<groups).contains(g) else {
        throw EngineError.invalidWeights(reason: "\(name) names group \(g) for column \(i); there are \(groups) groups of \(groupSize)")
      }
      counts[g] += 1
    }
    for g in 0..<groups where counts[g] != min(groupSize, columns - g * groupSize) {
      throw EngineError.invalidWeights(
        reason: "\(name) puts \(counts[g]) columns in group \(g), not \(min(groupSize, columns - g * groupSize)); the kernels need equal groups")
    }
    var starts = [Int](repeating: 0, count: groups)
    for g in 1..<max(groups, 1) { starts[g] = starts[g - 1] + counts[g - 1] }
    var order = [Int32](repeating: 0, count: columns)
    var identity = true
    for i in 0..<columns {
      let g = Int(groupIndex[i])
      order[starts[g]] = Int32(i)
      identity = identity && starts[g] == i
      starts[g] += 1
    }
    return identity ? nil : order
  }

  /// Reads the layer `prefix` (`[rows, columns]` = `[out, in]`) of a GPTQ checkpoint into the
  /// runtime layout. Cost: one pass over the packed codes; memory: the repacked matrix.
  public static func load(
    from checkpoint: Checkpoint, prefix: String, rows: Int, columns: Int, config: GPTQConfig
  ) throws -> QuantizedMatrixStorage {
    let q = config.quantization
    let bits = q.bits
    let groupSize = q.groupSize(columns: columns)
    let groups = (columns + groupSize - 1) / groupSize
    let perWord = 32 / bits
    let mask = UInt32((1 << bits) - 1)
    func tensor(_ suffix: String, _ dtypes: [TensorDType], _ shape: [Int]) throws -> UnsafeRawPointer {
      let name = prefix + "." + suffix
      guard let info = checkpoint.tensor(name), let pointer = checkpoint.pointer(to: name) else {
        throw EngineError.invalidWeights(reason: "tensor \(name) is missing in \(checkpoint.directory) (a GPTQ layer needs \(suffixes.joined(separator: ", ")))")
      }
      guard dtypes.contains(info.dtype), info.shape == shape else {
        throw EngineError.invalidWeights(
          reason: "tensor \(name) is \(info.dtype.rawValue) \(info.shape); a \(bits)-bit GPTQ layer of [\(rows), \(columns)] with groups of \(groupSize) needs \(dtypes[0].rawValue) \(shape)")
      }
      return pointer
    }
    if let problem = QuantizedMatrix.layoutError(columns: columns, bits: bits, groupSize: groupSize) {
      throw EngineError.unsupported("GPTQ layer \(prefix): \(problem)")
    }
    guard rows % perWord == 0 else {
      throw EngineError.invalidWeights(reason: "GPTQ layer \(prefix) has \(rows) outputs, not a multiple of \(perWord) (qzeros packing)")
    }
    let qweight = try tensor("qweight", [.i32, .u32], [columns / perWord, rows])
    let qzeros = try tensor("qzeros", [.i32, .u32], [groups, rows / perWord])
    let scales = try tensor("scales", [.f16, .bf16, .f32], [groups, rows])
    let scaleType = checkpoint.tensor(prefix + ".scales")?.dtype.elementType ?? .f16
    var order: [Int32]?
    if checkpoint.tensor(prefix + ".g_idx") != nil {
      let groupIndex = readInt32s(try tensor("g_idx", [.i32], [columns]), count: columns)
      order = try inputOrder(groupIndex: groupIndex, columns: columns, groupSize: groupSize, name: prefix + ".g_idx")
    }
    var storedPosition = Array(0..<columns)
    if let order { for (j, i) in order.enumerated() { storedPosition[Int(i)] = j } }
    let zeroOffset: UInt32 = config.format == .v1 ? 1 : 0
    // A symmetric checkpoint is held as its scales alone (`WeightQuantization.heldForm`), so its
    // zeros must all be the symmetric one.
    let symmetricZero = UInt32(1 << (bits - 1))
    return try QuantizedMatrixStorage(
      rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: q.heldForm, reordersInput: order != nil
    ) { codes, parameters, inputOrder in
      if let order, let inputOrder { for j in 0..<columns { inputOrder[j] = order[j] } }
      for g in 0..<groups {
        for o in 0..<rows {
          let word = qzeros.loadUnaligned(fromByteOffset: (g * (rows / perWord) + o / perWord) * 4, as: UInt32.self)
          let zero = ((word >> UInt32(bits * (o % perWord))) & mask) + zeroOffset
          let scale = floatToF16(WeightVector(base: scales, count: groups * rows, elementType: scaleType)[g * rows + o])
          guard f16ToFloat(scale).isFinite else {
            throw EngineError.invalidWeights(reason: "\(prefix).scales[\(g), \(o)] is not a finite f16 value")
          }
          if q.symmetric {
            guard zero == symmetricZero else {
              throw EngineError.invalidWeights(
                reason: "\(prefix).qzeros[\(g), \(o)] is \(zero), but the checkpoint says sym: true, whose \(bits)-bit zeros are all \(symmetricZero)")
            }
            parameters[o * groups + g] = scale
          } else {
            parameters[(o * groups + g) * 2] = scale
            parameters[(o * groups + g) * 2 + 1] = floatToF16(Float(zero))
          }
        }
      }
      let rowBytes = columns * bits / 8
      var first = 0
      while first < rows {  // 64 output rows at a time, so the rows written stay in L1
        let last = min(rows, first + 64)
        for r in 0..<(columns / perWord) {
          let words = qweight + (r * rows) * 4
          for k in 0..<perWord {
            let j = storedPosition[r * perWord + k]
            for o in first..<last {
              let code = (words.loadUnaligned(fromByteOffset: o * 4, as: UInt32.self) >> UInt32(bits * k)) & mask
              QuantizedMatrix.setCode(Int(code), column: j, bits: bits, in: codes + o * rowBytes)
            }
          }
        }
        first = last
      }
    }
  }

  /// `count` int32 values at `pointer`, which a safetensors file need not align.
  static func readInt32s(_ pointer: UnsafeRawPointer, count: Int) -> [Int32] {
    (0..<count).map { pointer.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self) }
  }

  /// Why `GPTQTensors.tensors(of:)` cannot write a `[rows, …]` matrix at `bits`, or nil: zero
  /// points are packed along the output dimension, `32 / bits` to a word.
  public static func exportError(rows: Int, bits: Int) -> String? {
    rows % (32 / bits) == 0 ? nil : "\(rows) outputs are not a multiple of \(32 / bits), which GPTQ's qzeros packing needs"
  }

  /// Shapes of the GPTQ tensors of `m` (`suffixes` order).
  public static func shapes(of m: QuantizedMatrix) -> [[Int]] {
    let perWord = 32 / m.bits
    return [[m.columns / perWord, m.rows], [m.groups, m.rows / perWord], [m.groups, m.rows], [m.columns]]
  }

  /// The GPTQ tensors of `matrix` (`suffixes` order: qweight, qzeros, scales, g_idx), codes in
  /// the original input order. Format v1 cannot store a zero point of 0 (it stores `zero − 1`):
  /// `format(for:)` picks v2 for such matrices.
  public static func tensors(of m: QuantizedMatrix, format: GPTQConfig.Format) -> [(dtype: TensorDType, shape: [Int], data: Data)] {
    let bits = m.bits, perWord = 32 / bits, mask = UInt32((1 << bits) - 1)
    var storedPosition = Array(0..<m.columns)
    if let order = m.inputOrder { for j in 0..<m.columns { storedPosition[Int(order[j])] = j } }
    var qweight = [UInt32](repeating: 0, count: m.columns / perWord * m.rows)
    for i in 0..<m.columns {
      let j = storedPosition[i]
      let shift = UInt32(bits * (i % perWord))
      for o in 0..<m.rows { qweight[(i / perWord) * m.rows + o] |= UInt32(m.code(row: o, column: j)) << shift }
    }
    var qzeros = [UInt32](repeating: 0, count: m.groups * (m.rows / perWord))
    var scales = [UInt16](repeating: 0, count: m.groups * m.rows)
    let zeroOffset = format == .v1 ? 1 : 0
    for g in 0..<m.groups {
      for o in 0..<m.rows {
        let (scale, zero) = m.parameters(row: o, group: g)
        let stored = UInt32(truncatingIfNeeded: Int(zero) - zeroOffset) & mask
        qzeros[g * (m.rows / perWord) + o / perWord] |= stored << UInt32(bits * (o % perWord))
        scales[g * m.rows + o] = floatToF16(scale)
      }
    }
    let groupIndex = (0..<m.columns).map { Int32(storedPosition[$0] / m.groupSize) }
    return [
      (.i32, [m.columns / perWord, m.rows], qweight.withUnsafeBytes { Data($0) }),
      (.i32, [m.groups, m.rows / perWord], qzeros.withUnsafeBytes { Data($0) }),
      (.f16, [m.groups, m.rows], scales.withUnsafeBytes { Data($0) }),
      (.i32, [m.columns], groupIndex.withUnsafeBytes { Data($0) }),
    ]
  }

  /// v1 (what most tools read: zeros 1 ... 2^bits) unless some zero point is 0, which only v2
  /// (zeros 0 ... 2^bits − 1) stores — asymmetric groups whose minimum is 0 or above.
  public static func format(for matrices: [QuantizedMatrix]) -> GPTQConfig.Format {
    for m in matrices {
      for o in 0..<m.rows {
        for g in 0..<m.groups where m.parameters(row: o, group: g).zero < 1 { return .v2 }
      }
    }
    return .v1
  }
}
