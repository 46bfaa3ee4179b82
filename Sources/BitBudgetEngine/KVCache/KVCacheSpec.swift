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

/// A KV-cache configuration as `--kv` spells it: `full`, a registered eviction policy
/// (`streaming:B[,sinks=S]`, `rkv:B[,window=…]`, `snapkv:B[,…]`, `h2o:B[,…]`, see `KVPolicies`), an HQQ
/// quantization `hqq:BITS[,group=G,residual=R,axis=A]`, or a policy and a quantization joined by
/// `+` (`rkv:2048+hqq:4`).
///
/// Two specs are equal when their canonical text (`description`, every option spelled out) is:
/// that text is also the scenario key results are stored under.
public struct KVCacheSpec: Sendable, Equatable, CustomStringConvertible {
  public var eviction: (any EvictionPolicy)?
  public var quantization: KVQuantization?

  public init(eviction: (any EvictionPolicy)? = nil, quantization: KVQuantization? = nil) {
    self.eviction = eviction
    self.quantization = quantization
  }

  public static func == (lhs: KVCacheSpec, rhs: KVCacheSpec) -> Bool { lhs.description == rhs.description }

  public static let full = KVCacheSpec()

  static let quantizationForm = "hqq:2|4|8[,group=64,residual=128,axis=1|0]"

  /// Every form a spec may take, from the registered policies (for help and errors).
  public static var acceptedForms: String {
    let forms = ["full"] + KVPolicies.evictionPolicies.map { $0.form } + [quantizationForm]
    return forms.joined(separator: ", ") + ", or a policy and hqq joined by + (e.g. rkv:2048+hqq:4)"
  }

  public var isFull: Bool { eviction == nil && quantization == nil }

  public var description: String {
    var parts: [String] = []
    if let eviction { parts.append(eviction.description) }
    // axis 1 is left out, so specs written before axes existed keep their text (and scenario keys).
    if let q = quantization { parts.append("hqq:\(q.bits),group=\(q.groupSize),residual=\(q.residual)" + (q.axis == 0 ? ",axis=0" : "")) }
    return parts.isEmpty ? "full" : parts.joined(separator: "+")
  }

  /// The spec as a person reads it: options at their defaults left out (`rkv:2048` for
  /// `rkv:2048,window=8,kernel=7,…`). For display only: `description` is the canonical key.
  public var shortDescription: String {
    let short = description.split(separator: "+").map { part -> String in
      let fields = part.split(separator: ",").map(String.init)
      guard let head = fields.first, let defaults = try? KVCacheSpec.parse(head) else { return String(part) }
      let defaultFields = Set(defaults.description.split(separator: ",").map(String.init))
      return ([head] + fields.dropFirst().filter { !defaultFields.contains($0) }).joined(separator: ",")
    }.joined(separator: "+")
    // A default that moves with another option (the interval follows a long window) must stay.
    return (try? KVCacheSpec.parse(short)) == self ? short : description
  }

  /// `text` as `shortDescription` shows it, or unchanged when it is not a spec (a stored key
  /// of a policy this build lacks).
  public static func shortDescription(of text: String) -> String {
    (try? parse(text))?.shortDescription ?? text
  }

  /// Parses a spec; the error shows the accepted forms.
  public static func parse(_ text: String) throws -> KVCacheSpec {
    let accepted = acceptedForms
    let invalid: @Sendable (String) -> EngineError = { reason in
      .invalidInput("invalid KV cache spec \"\(text)\": \(reason) (accepted: \(accepted))")
    }
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if trimmed == "full" { return .full }
    var spec = KVCacheSpec()
    let parts = trimmed.split(separator: "+", omittingEmptySubsequences: false)
    guard (1...2).contains(parts.count) else { throw invalid("at most one eviction policy and one quantization") }
    for part in parts {
      let fields = part.split(separator: ",", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
      }
      let head = fields[0].split(separator: ":", maxSplits: 1).map(String.init)
      guard head.count == 2, let main = Int(head[1]) else { throw invalid("\"\(fields[0])\" is not NAME:NUMBER") }
      var pairs: [String: String] = [:]
      for field in fields.dropFirst() {
        let pair = field.split(separator: "=", maxSplits: 1).map(String.init)
        guard pair.count == 2, pairs[pair[0]] == nil else { throw invalid("\"\(field)\" is not a single key=value") }
        pairs[pair[0]] = pair[1]
      }
      var options = KVSpecOptions(pairs, invalid: invalid)
      if head[0] == "hqq" {
        guard spec.quantization == nil else { throw invalid("one quantization") }
        guard [2, 4, 8].contains(main) else { throw invalid("hqq bits must be 2, 4 or 8") }
        var q = KVQuantization(bits: main)
        q.groupSize = try options.int("group", default: q.groupSize, in: 8...1024)
        guard q.groupSize % 8 == 0 else { throw invalid("group must be a multiple of 8") }
        q.residual = try options.int("residual", default: q.residual, in: 1...1 << 20)
        q.axis = try options.int("axis", default: q.axis, in: 0...1)
        if q.axis == 0, spec.eviction != nil {
          throw invalid("axis=0 re-quantizes the whole history; it does not combine with eviction")
        }
        spec.quantization = q
      } else if let policy = KVPolicies.policy(named: head[0]) {
        guard spec.eviction == nil, spec.quantization == nil else { throw invalid("the eviction policy comes first, once") }
        guard (2...1 << 24).contains(main) else { throw invalid("the budget must be in 2...\(1 << 24)") }
        spec.eviction = try policy.init(budget: main, options: &options)
      } else {
        throw invalid("unknown policy \"\(head[0])\"")
      }
      if let unknown = options.unread.first { throw invalid("unknown option \"\(unknown)\" for \(head[0])") }
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
