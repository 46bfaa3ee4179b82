import BitBudgetEngine

/// Bytes of a model's weights at 16, 8 or 4 bits.
///
/// `paper` convention (the paper's Table 1, reconstructed in paper.md §3.2): the linear layers
/// (q, k, v, o, gate, up, down) of a GPTQ checkpoint carry `bits + (16 + bits)/128` bits per
/// weight (the codes, an fp16 scale and a packed zero per group of 128) plus an int32 `g_idx` per
/// input column; embeddings, `lm_head` and norms stay at 2 bytes per value; 16-bit is 2 bytes per
/// parameter. A tied `lm_head` counts once, except in the 16-bit figures of the presets whose
/// checkpoints store it (`paperCountsTiedHead`).
///
/// `engine` convention: what the engine holds, `WeightLayout.byteCount`: quantized linears in the
/// runtime layout carry `bits + 16/groupSize` bits per weight when symmetric (codes and an f16
/// scale per group; the zero is implied) and `bits + 32/groupSize` when not (an f16 scale and
/// zero); no g_idx unless act-order, then an int32 per input column; everything else as stored.
public enum WeightMemory {
  /// The quantized linear layers' (out, in) shapes, all layers: q, k, v, o and the MLP's gate,
  /// up, down — or each routed expert's, in a mixture-of-experts layer (the router stays 16-bit).
  static func linearShapes(_ c: ModelConfig) -> [(rows: Int, columns: Int)] {
    let h = c.hiddenSize
    var shapes: [(rows: Int, columns: Int)] = []
    for layer in 0..<c.layerCount {
      shapes += [(c.queryWidth, h), (c.kvWidth, h), (c.kvWidth, h), (h, c.queryWidth)]
      if let experts = c.experts, !experts.denseLayers.contains(layer) {
        let width = experts.intermediateSize
        for _ in 0..<experts.count { shapes += [(width, h), (width, h), (h, width)] }
      } else {
        shapes += [(c.intermediateSize, h), (c.intermediateSize, h), (h, c.intermediateSize)]
      }
    }
    return shapes
  }

  /// Parameters outside the linear layers: embedding (and `lm_head` when counted), norms, biases,
  /// routers.
  static func otherParameters(_ c: ModelConfig, countTiedHead: Bool) -> Int {
    let all = c.tensorShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
    let linear = linearShapes(c).reduce(0) { $0 + $1.rows * $1.columns }
    let extraHead = c.tiedEmbeddings && countTiedHead ? c.vocabSize * c.hiddenSize : 0
    return all - linear + extraHead
  }

  public static func paperBytes(_ c: ModelConfig, bits: Int, countTiedHead: Bool) -> Double {
    let shapes = linearShapes(c)
    let linear = shapes.reduce(0) { $0 + $1.rows * $1.columns }
    if bits == 16 { return 2 * Double(linear + otherParameters(c, countTiedHead: countTiedHead)) }
    let gIdx = shapes.reduce(0) { $0 + $1.columns }
    let b = Double(bits)
    return Double(linear) * (b + (16 + b) / 128) / 8 + 4 * Double(gIdx) + 2 * Double(otherParameters(c, countTiedHead: false))
  }
}
