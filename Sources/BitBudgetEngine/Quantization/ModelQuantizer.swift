import BitBudgetKernels
import Foundation

/// A model whose linear layers were quantized (by `ModelQuantizer`), ready to be written as a
/// GPTQ checkpoint (`GPTQExport`). The 16-bit tensors stay the source model's.
public struct QuantizedModel {
  /// How the weights were quantized: round-to-nearest or GPTQ.
  public enum Method: String, Sendable {
    case rtn, gptq
  }

  public let source: DecoderModel
  /// Per decoder layer, its linears in `LayerWeights.linears` order (q, k, v, o, then gate, up,
  /// down of the MLP or of each expert).
  public let layers: [[QuantizedMatrixStorage]]
  public let quantization: WeightQuantization
  public let actOrder: Bool
  public let method: Method
  /// GPTQ's dampening (the largest any layer needed), nil for RTN.
  public let dampening: Double?
}

/// Quantizes every linear layer of a 16-bit model: round-to-nearest, or GPTQ with calibration
/// text run through the model layer by layer.
public enum ModelQuantizer {
  /// Indices into `LayerWeights.linears` of the layers that read each site's input.
  static func linearIndices(_ site: LinearSite) -> [Int] {
    switch site {
    case .attentionInput: [0, 1, 2]
    case .attentionOutput: [3]
    case .mlpInput: [4, 5]
    case .mlpHidden: [6]
    }
  }

  /// Throws unless every linear can be quantized as `quantization` says and written as GPTQ.
  static func checkShapes(_ dense: [[DenseMatrix]], _ quantization: WeightQuantization) throws {
    for matrix in dense.flatMap({ $0 }) {
      if let problem = quantization.layoutError(columns: matrix.columns) ?? GPTQTensors.exportError(rows: matrix.rows, bits: quantization.bits) {
        throw EngineError.unsupported("quantizing to \(quantization): \(problem)")
      }
    }
  }

  static func denseWeights(_ model: DecoderModel) throws -> [[DenseMatrix]] {
    try model.weights.layers.map { layer in
      try layer.linears.map {
        guard case .dense(let matrix) = $0 else {
          throw EngineError.invalidInput("\(model.path) is already quantized (\(model.weights.format)); quantize its 16-bit original")
        }
        return matrix
      }
    }
  }

  /// Round-to-nearest quantization of every linear. Cost: one pass over the weights.
  public static func roundToNearest(
    _ model: DecoderModel, _ quantization: WeightQuantization, progress: (QuantizationProgress) -> Void = { _ in }
  ) throws -> QuantizedModel {
    let dense = try denseWeights(model)
    try checkShapes(dense, quantization)
    var layers: [[QuantizedMatrixStorage]] = []
    for (l, matrices) in dense.enumerated() {
      layers.append(matrices.map { WeightQuantizer.roundToNearest($0, quantization) })
      progress(QuantizationProgress(layersDone: l + 1, layers: dense.count, message: "layer \(l + 1)/\(dense.count) quantized"))
    }
    return QuantizedModel(source: model, layers: layers, quantization: quantization, actOrder: false, method: .rtn, dampening: nil)
  }

  /// GPTQ of every linear, sequentially: the calibration sequences' hidden states pass through
  /// the already-quantized layers; inside a layer q/k/v, then o, then gate/up, then down are
  /// quantized in turn, each with the Hessian of its inputs as computed with the layers before
  /// it already quantized (AutoGPTQ's `true_sequential`); the layers of one site share one
  /// factorized Hessian. Memory: the hidden states of all calibration tokens (f32), plus while
  /// a site is quantized its Hessian and factor (a few `[in, in]` f32 arrays) and two f32
  /// copies of one weight.
  public static func gptq(
    _ model: DecoderModel, calibration sequences: [[Int]], options: GPTQ.Options, threads: Int,
    progress: (QuantizationProgress) -> Void = { _ in }
  ) throws -> QuantizedModel {
    if let experts = model.config.experts {
      // Each expert would need the Hessian of the rows routed to it, which the layer-by-layer
      // calibration does not collect.
      throw EngineError.unsupported(
        "GPTQ calibration of routed experts (\(model.config.architecture), \(experts.count) experts per layer); quantize it with --method rtn")
    }
    let dense = try denseWeights(model)
    _ = try LinearAlgebra.shared()  // fail before any work when there is no BLAS
    try checkShapes(dense, options.quantization)
    let sequences = sequences.filter { !$0.isEmpty }
    guard !sequences.isEmpty else { throw EngineError.invalidInput("GPTQ needs at least one calibration token") }
    let config = model.config
    let h = config.hiddenSize
    let session = try InferenceSession(model: model, threads: threads)
    // Later layers are calibrated on the outputs of the quantized earlier ones: exactly, as GPTQ.
    session.linearActivations = .exact
    var hidden: [UnsafeMutablePointer<Float>] = []
    defer { hidden.forEach { $0.deallocate() } }
    for tokens in sequences {
      let states = UnsafeMutablePointer<Float>.allocate(capacity: tokens.count * h)
      hidden.append(states)
      try session.embed(tokens, into: states)
    }
    let longest = sequences.map(\.count).max() ?? 0
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: longest * h)
    defer { scratch.deallocate() }

    var layers: [[QuantizedMatrixStorage?]] = Array(repeating: Array(repeating: nil, count: 7), count: config.layerCount)
    var dampening = options.dampening
    for l in 0..<config.layerCount {
      let start = Date()
      var losses: [String] = []
      for site in LinearSite.allCases {
        let indices = linearIndices(site)
        let hessian = GPTQ.Hessian(dimension: dense[l][indices[0]].columns)
        var failure: Error?
        session.linearInputObserver = { layer, observed, rows, stride, count in
          guard layer == l && observed == site else { return }
          do { try hessian.add(rows, stride: stride, count: count) } catch { failure = failure ?? error }
        }
        for (s, tokens) in sequences.enumerated() {
          scratch.update(from: hidden[s], count: tokens.count * h)
          try session.forwardLayer(l, hidden: scratch, count: tokens.count, cache: session.makeCache(elementType: .f32))
          hessian.finishSequence()
        }
        session.linearInputObserver = nil
        if let failure { throw failure }
        let prepared = try GPTQ.prepare(hessian: hessian.matrix(), columns: hessian.dimension, options: options)
        var replacements: [LinearWeight] = []
        for index in indices {
          let weight = dense[l][index]
          var values = [Float](repeating: 0, count: weight.rows * weight.columns)
          values.withUnsafeMutableBufferPointer { v in
            for r in 0..<weight.rows { weight.copyRow(r, into: v.baseAddress! + r * weight.columns) }
          }
          let result = try values.withUnsafeBufferPointer {
            try GPTQ.quantize(weight: $0.baseAddress!, rows: weight.rows, prepared: prepared, options: options)
          }
          layers[l][index] = result.storage
          replacements.append(.quantized(result.storage.matrix))
          dampening = max(dampening, result.dampening)
          losses.append(String(format: "%@ %.4g", config.linearNames(layer: l)[index].split(separator: ".").last.map(String.init) ?? "", result.loss))
        }
        try session.replaceLinears(layer: l, site: site, with: replacements)
      }
      // The layer's output with all its linears quantized feeds the next layer.
      for (s, tokens) in sequences.enumerated() {
        try session.forwardLayer(l, hidden: hidden[s], count: tokens.count, cache: session.makeCache(elementType: .f32))
      }
      progress(QuantizationProgress(
        layersDone: l + 1, layers: config.layerCount,
        message: String(format: "layer %d/%d quantized in %.1f s; loss %@", l + 1, config.layerCount, Date().timeIntervalSince(start), losses.joined(separator: ", "))))
    }
    return QuantizedModel(
      source: model, layers: layers.map { $0.compactMap { $0 } }, quantization: options.quantization,
      actOrder: options.actOrder, method: .gptq, dampening: dampening)
  }
}

/// A layer finished quantizing: how many of how many, and a line saying how it went (GPTQ: the
/// time and each linear's loss).
public struct QuantizationProgress: Sendable {
  public var layersDone: Int
  public var layers: Int
  public var message: String
}
