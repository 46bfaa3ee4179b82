import BitBudgetKernels
import Foundation

/// The `quantization_config` of a GPTQ checkpoint (in config.json, or `quantize_config.json`
/// beside it): AutoGPTQ's, GPTQModel's and transformers/optimum's spellings.
public struct GPTQConfig: Sendable, Equatable {
  /// How zero points are stored: v1 (AutoGPTQ, the common one) stores `zero − 1`, v2 `zero`.
  public enum Format: String, Sendable {
    case v1 = "gptq"
    case v2 = "gptq_v2"
  }

  public var quantization: WeightQuantization
  /// Act-order: columns were quantized in the order of decreasing Hessian diagonal; `g_idx`
  /// carries each column's group.
  public var descendingActivationOrder: Bool
  public var format: Format

  public init(quantization: WeightQuantization, descendingActivationOrder: Bool = false, format: Format = .v1) {
    self.quantization = quantization
    self.descendingActivationOrder = descendingActivationOrder
    self.format = format
  }

  /// Parses a `quantization_config` object (a missing `quant_method` means GPTQ, as in
  /// AutoGPTQ's `quantize_config.json`). Other methods (AWQ, FP8, bitsandbytes) are refused by
  /// name.
  static func parse(_ object: [String: Any], path: String) throws -> GPTQConfig {
    let reader = ConfigReader(root: object, path: path, prefix: "quantization_config.")
    let method = try reader.optionalString("quant_method") ?? "gptq"
    guard method.lowercased() == "gptq" else {
      throw EngineError.unsupported("quant_method \"\(method)\" in \(path) (BitBudget reads GPTQ checkpoints; quantize a 16-bit model with `bitbudget quantize` instead)")
    }
    let bits = try reader.positiveInt("bits", max: 64)
    guard bits == 4 || bits == 8 else {
      throw EngineError.unsupported("\(bits)-bit GPTQ weights in \(path) (4 and 8 bits are supported)")
    }
    var groupSize: Int? = 128
    if let value = object["group_size"], !(value is NSNull) {
      guard let size = JSONNumbers.integer(value), size == -1 || size > 0 else {
        throw reader.fail("\"quantization_config.group_size\" must be -1 or a positive integer, found \(value)")
      }
      groupSize = size == -1 ? nil : size
    }
    if try reader.optionalBool("lm_head") == true {
      throw EngineError.unsupported("a GPTQ-quantized lm_head in \(path) (the head stays 16-bit)")
    }
    let formatName = try reader.optionalString("checkpoint_format") ?? reader.optionalString("format") ?? "gptq"
    guard let format = Format(rawValue: formatName) else {
      throw EngineError.unsupported("GPTQ checkpoint format \"\(formatName)\" in \(path) (gptq and gptq_v2 are supported)")
    }
    return GPTQConfig(
      quantization: WeightQuantization(bits: bits, groupSize: groupSize, symmetric: try reader.optionalBool("sym") ?? true),
      descendingActivationOrder: try reader.optionalBool("desc_act") ?? false,
      format: format)
  }

  /// The `quantization_config` object this checkpoint writer emits (AutoGPTQ's keys, which
  /// transformers, optimum, GPTQModel and vLLM read).
  public func jsonObject(dampening: Double?, method: String) -> [String: Any] {
    var object: [String: Any] = [
      "quant_method": "gptq", "bits": quantization.bits, "group_size": quantization.groupSize ?? -1,
      "desc_act": descendingActivationOrder, "sym": quantization.symmetric, "checkpoint_format": format.rawValue,
      "static_groups": false, "true_sequential": true, "lm_head": false,
      "meta": ["quantizer": "bitbudget", "method": method],
    ]
    if let dampening { object["damp_percent"] = dampening }
    return object
  }
}
