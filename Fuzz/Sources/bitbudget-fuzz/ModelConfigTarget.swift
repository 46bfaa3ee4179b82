import Foundation

@testable import BitBudgetEngine

/// A model folder's `config.json` (`ModelConfig.parse`, which `ModelConfig.load(directory:)` calls,
/// with `quantization_config` through `GPTQConfig.parse`); the same object is also read as a
/// `quantize_config.json` (`GPTQConfig.parse`, as `load` does when config.json has none).
enum ModelConfigTarget {
  static let target = FuzzTarget(
    name: "model-config", summary: "ModelConfig.parse(config.json) + GPTQConfig.parse"
  ) { input in
    let data = input.data
    if let config = try? ModelConfig.parse(data, path: "config.json") {
      invariant(
        config.queryHeads % config.kvHeads == 0 && config.headDim % 2 == 0 && config.vocabSize > 0 && config.layerCount > 0,
        "an inconsistent config was accepted: \(config)")
      blackHole(config.tensorShapes.count)
      blackHole(config.groupSize + config.queryWidth + config.kvWidth)
    }
    if let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
      if let gptq = try? GPTQConfig.parse(object, path: "quantize_config.json") {
        invariant([4, 8].contains(gptq.quantization.bits), "GPTQ bits \(gptq.quantization.bits) accepted")
        if let group = gptq.quantization.groupSize { invariant(group > 0, "GPTQ group size \(group) accepted") }
      }
    }
  }
}
