import Foundation
import BitBudgetKernels

/// HQQ quantization of KV rows as transformers' `QuantizedCache` (HQQ backend) does it: `bits`
/// per value, one (scale, zero) pair per group of `groupSize` values, the newest tokens (fewer
/// than `residual`) kept unquantized.
///
/// - `axis` 1 (the default here): a group is `groupSize` values of one token's head vector
///   (`CompressedKVCache`, which stores the codes).
/// - `axis` 0 (transformers' default): the layer's whole history, viewed as `[groupSize, N /
///   groupSize]`, is grouped down columns — a group takes one value from tokens and heads spread
///   over the history — and re-quantized from its dequantized values every `residual` tokens
///   (`RequantizingKVCache`, for measuring quality: it holds the dequantized history densely).
public struct KVQuantization: Sendable, Equatable {
  public var bits: Int
  public var groupSize = 64
  public var residual = 128
  public var axis = 1

  public init(bits: Int) { self.bits = bits }
}

/// A KV-cache configuration as `--kv` spells it: `full`, `streaming:B[,sinks=S]`,
/// `rkv:B[,window=…,kernel=…,lambda=…,threshold=…,buffer=…]`, `hqq:BITS[,group=G,residual=R,axis=A]`,
/// or an eviction policy and quantization joined by `+` (`rkv:2048+hqq:4`).
public struct KVCacheSpec: Sendable, Equatable, CustomStringConvertible {
  public var eviction: EvictionPolicy?
  public var quantization: KVQuantization?

  public init(eviction: EvictionPolicy? = nil, quantization: KVQuantization? = nil) {
    self.eviction = eviction
    self.quantization = quantization
  }

  public static let full = KVCacheSpec()

  public static let acceptedForms = """
    full | streaming:B[,sinks=4] | rkv:B[,window=8,kernel=7,lambda=0.1,threshold=0.5,buffer=128] | \
    hqq:2|4|8[,group=64,residual=128,axis=1|0] | rkv:…+hqq:… | streaming:…+hqq:…
    """

  public var isFull: Bool { eviction == nil && quantization == nil }

  /// Token slots of a `CompressedKVCache`'s dense block between compressions (a multiple of 32):
  /// eviction alone holds `budget + interval` there; with quantization every dense row moves into
  /// a quantized block at each flush or compression.
  public var denseSteadyTokens: Int {
    let tokens: Int
    switch (eviction, quantization) {
    case (let eviction?, nil): tokens = eviction.budget + eviction.interval
    case (let eviction?, let quantization?): tokens = min(eviction.interval, quantization.residual)
    case (nil, let quantization?): tokens = quantization.residual
    case (nil, nil): tokens = 64
    }
    return (tokens + 31) / 32 * 32
  }

  public var description: String {
    var parts: [String] = []
    switch eviction {
    case .streaming(let budget, let sinks)?: parts.append("streaming:\(budget),sinks=\(sinks)")
    case .rkv(let p)?:
      parts.append("rkv:\(p.budget),window=\(p.window),kernel=\(p.kernel),lambda=\(p.lambda),threshold=\(p.threshold),buffer=\(p.buffer)")
    case nil: break
    }
    // axis 1 is left out, so specs written before axes existed keep their text (and scenario keys).
    if let q = quantization { parts.append("hqq:\(q.bits),group=\(q.groupSize),residual=\(q.residual)" + (q.axis == 0 ? ",axis=0" : "")) }
    return parts.isEmpty ? "full" : parts.joined(separator: "+")
  }

  /// Parses a spec; the error shows the accepted forms.
  public static func parse(_ text: String) throws -> KVCacheSpec {
    func fail(_ reason: String) -> EngineError {
      .invalidInput("invalid KV cache spec \"\(text)\": \(reason) (accepted: \(acceptedForms))")
    }
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if trimmed == "full" { return .full }
    var spec = KVCacheSpec()
    let parts = trimmed.split(separator: "+", omittingEmptySubsequences: false)
    guard (1...2).contains(parts.count) else { throw fail("at most one eviction policy and one quantization") }
    for part in parts {
      let fields = part.split(separator: ",", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
      }
      let head = fields[0].split(separator: ":", maxSplits: 1).map(String.init)
      guard head.count == 2, let main = Int(head[1]) else { throw fail("\"\(fields[0])\" is not NAME:NUMBER") }
      var options: [String: String] = [:]
      for field in fields.dropFirst() {
        let pair = field.split(separator: "=", maxSplits: 1).map(String.init)
        guard pair.count == 2, options[pair[0]] == nil else { throw fail("\"\(field)\" is not a single key=value") }
        options[pair[0]] = pair[1]
      }
      func int(_ key: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
        guard let text = options.removeValue(forKey: key) else { return fallback }
        guard let value = Int(text), range.contains(value) else { throw fail("\(key) must be an integer in \(range)") }
        return value
      }
      func float(_ key: String, _ fallback: Float, _ range: ClosedRange<Float>) throws -> Float {
        guard let text = options.removeValue(forKey: key) else { return fallback }
        guard let value = Float(text), range.contains(value) else { throw fail("\(key) must be a number in \(range)") }
        return value
      }
      switch head[0] {
      case "streaming", "rkv":
        guard spec.eviction == nil, spec.quantization == nil else { throw fail("the eviction policy comes first, once") }
        guard (2...1 << 24).contains(main) else { throw fail("the budget must be in 2...\(1 << 24)") }
        if head[0] == "streaming" {
          let sinks = try int("sinks", 4, 0...main - 1)
          spec.eviction = .streaming(budget: main, sinks: sinks)
        } else {
          var p = RKVParameters(budget: main)
          p.window = try int("window", p.window, 1...main - 1)
          p.kernel = try int("kernel", p.kernel, 1...255)
          guard p.kernel % 2 == 1 else { throw fail("kernel must be odd") }
          p.lambda = try float("lambda", p.lambda, 0...1)
          p.threshold = try float("threshold", p.threshold, -1...1)
          p.buffer = try int("buffer", p.buffer, p.window...1 << 20)
          spec.eviction = .rkv(p)
        }
      case "hqq":
        guard spec.quantization == nil else { throw fail("one quantization") }
        guard [2, 4, 8].contains(main) else { throw fail("hqq bits must be 2, 4 or 8") }
        var q = KVQuantization(bits: main)
        q.groupSize = try int("group", q.groupSize, 8...1024)
        guard q.groupSize % 8 == 0 else { throw fail("group must be a multiple of 8") }
        q.residual = try int("residual", q.residual, 1...1 << 20)
        q.axis = try int("axis", q.axis, 0...1)
        if q.axis == 0, spec.eviction != nil {
          throw fail("axis=0 re-quantizes the whole history; it does not combine with eviction")
        }
        spec.quantization = q
      default:
        throw fail("unknown policy \"\(head[0])\"")
      }
      if let unknown = options.keys.sorted().first { throw fail("unknown option \"\(unknown)\" for \(head[0])") }
    }
    return spec
  }

  /// A new empty cache of this kind. Throws when the quantization group does not divide the
  /// head dimension.
  public func makeCache(geometry: KVCacheGeometry, queryHeads: Int, elementType: ElementType = .bf16) throws -> any KVCache {
    if isFull { return FullKVCache(geometry: geometry, elementType: elementType) }
    if let q = quantization, geometry.headDim % q.groupSize != 0 {
      throw EngineError.invalidInput(
        "hqq group size \(q.groupSize) does not divide the model's head dimension \(geometry.headDim) (use group=…)")
    }
    if let q = quantization, q.axis == 0 {
      return RequantizingKVCache(geometry: geometry, quantization: q, elementType: elementType)
    }
    return CompressedKVCache(spec: self, geometry: geometry, queryHeads: queryHeads, elementType: elementType)
  }
}
