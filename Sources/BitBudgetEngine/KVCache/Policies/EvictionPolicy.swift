import Foundation
import Synchronization

/// Which tokens an evicting KV cache keeps when it compresses a layer.
///
/// A policy only chooses rows: keys and values keep their absolute positions (RoPE was applied
/// before they were stored), and `CompressedKVCache` moves the rows, quantizes them with HQQ when
/// the spec adds `+hqq:…`, and runs the schedule — after every multi-token pass (a prefill
/// chunk) and at each decode step whose preceding length is a multiple of `interval`, for a layer
/// holding at least `budget` tokens. The memory model reads the same properties, so a policy's
/// memory is estimated exactly without further code.
///
/// A new policy is one type conforming to this protocol plus `KVPolicies.register(_:)`: `--kv`
/// parsing, the accepted forms in help and errors, scenario keys (`description`) and the
/// conformance tests then include it.
public protocol EvictionPolicy: Sendable, CustomStringConvertible {
  /// The policy's name in a `--kv` spec (`rkv` in `rkv:2048`).
  static var name: String { get }
  /// The spec's form with every option at its default, for help and errors:
  /// `rkv:B[,window=8,kernel=7]`.
  static var form: String { get }
  /// Specs with small budgets (≤ 64 tokens) that the conformance suite runs on this policy, alone
  /// and with HQQ.
  static var conformanceSpecs: [String] { get }

  /// The policy for `budget` tokens per KV head (already checked to be in 2...2²⁴), reading its
  /// options from `options`; unknown options are left there for the parser to refuse.
  init(budget: Int, options: inout KVSpecOptions) throws

  /// Tokens per KV head right after a compression.
  var budget: Int { get }
  /// Queries per layer the cache must remember for the policy (an observation window), f32.
  var queryWindow: Int { get }
  /// Decode steps between compressions.
  var interval: Int { get }
  /// Bytes per layer and KV head that the policy keeps from one compression to the next (R-KV's
  /// `KeyMarks`, one per kept row).
  var markBytesPerHead: Int { get }
  /// Whether the cache keeps, per held row and KV head, the attention weight every query so far
  /// gave it (summed over the group's query heads; H2O's accumulated attention), for
  /// `EvictionRequest.attentionTotals`. Costs the attention's logits once more at every pass.
  var accumulatesAttention: Bool { get }

  /// The rows to keep for each KV head, exactly `budget` distinct rows of `0..<length` per head,
  /// in the order the compressed cache stores them (the cache checks the counts and the range).
  /// Called only when the layer holds at least `budget` tokens and the cache has `queryWindow`
  /// queries (`request.queries` is then set); may run on several layers at once.
  func keptRows(_ request: EvictionRequest) -> [[Int]]
}

extension EvictionPolicy {
  public var queryWindow: Int { 0 }
  public var interval: Int { 128 }
  public var markBytesPerHead: Int { 0 }
  public var accumulatesAttention: Bool { false }
}

/// What a policy may read when it compresses one layer. Every pointer is valid for the call only.
public struct EvictionRequest {
  /// Keys in cache order, `[kvHeads][length][headDim]` f32 (as stored: rounded to the cache's
  /// type, or dequantized).
  public var keys: UnsafePointer<Float>
  public var length: Int
  public var kvHeads: Int
  public var headDim: Int
  /// The last `queryWindow` queries of the layer, oldest first, `[queryHeads][queryWindow][headDim]`
  /// (after q-norm and RoPE); nil when the policy has no window.
  public var queries: UnsafePointer<Float>?
  public var queryHeads: Int
  /// What the last compression stored about each key, `[kvHeads][length]` (the first
  /// `markBytesPerHead` rows of each head; later rows are unmarked); nil knows nothing. The rows
  /// kept must be the same with or without them.
  public var marks: UnsafePointer<KeyMarks>?
  /// If given, `[kvHeads][length]`, for the policy to set per key what the next compression's
  /// marks should say (R-KV: that no other key resembled it).
  public var isolated: UnsafeMutablePointer<Bool>?
  /// With `accumulatesAttention`, `[kvHeads][length]`: the attention weight each key has
  /// received from every query since it entered the cache, summed over the group's query heads.
  public var attentionTotals: UnsafePointer<Float>?

  public init(
    keys: UnsafePointer<Float>, length: Int, kvHeads: Int, headDim: Int, queries: UnsafePointer<Float>?,
    queryHeads: Int, marks: UnsafePointer<KeyMarks>? = nil, isolated: UnsafeMutablePointer<Bool>? = nil,
    attentionTotals: UnsafePointer<Float>? = nil
  ) {
    self.keys = keys
    self.length = length
    self.kvHeads = kvHeads
    self.headDim = headDim
    self.queries = queries
    self.queryHeads = queryHeads
    self.marks = marks
    self.isolated = isolated
    self.attentionTotals = attentionTotals
  }

  /// Query heads per KV head.
  public var groupSize: Int { queryHeads / kvHeads }
  /// The keys of one KV head, `[length][headDim]`.
  public func keys(head: Int) -> UnsafePointer<Float> { keys + head * length * headDim }
}

/// The `key=value` options of one part of a `--kv` spec, taken out as a policy reads them.
public struct KVSpecOptions {
  private var values: [String: String]
  private let invalid: @Sendable (String) -> EngineError

  init(_ values: [String: String], invalid: @escaping @Sendable (String) -> EngineError) {
    self.values = values
    self.invalid = invalid
  }

  /// The option's integer value, or `fallback` when absent; throws unless the value, given or
  /// default, lies in `range` (a default that does not fit this spec would not parse back from
  /// its canonical text).
  public mutating func int(_ key: String, default fallback: Int, in range: ClosedRange<Int>) throws -> Int {
    try value(key, fallback, range, kind: "an integer")
  }

  /// The option's number, or `fallback` when absent; throws unless the value, given or default,
  /// lies in `range`.
  public mutating func float(_ key: String, default fallback: Float, in range: ClosedRange<Float>) throws -> Float {
    try value(key, fallback, range, kind: "a number")
  }

  private mutating func value<Value: LosslessStringConvertible & Comparable>(
    _ key: String, _ fallback: Value, _ range: ClosedRange<Value>, kind: String
  ) throws -> Value {
    guard let text = values.removeValue(forKey: key) else {
      guard range.contains(fallback) else { throw invalid("the default \(key)=\(fallback) does not fit: set \(key) in \(range)") }
      return fallback
    }
    guard let value = Value(text), range.contains(value) else { throw invalid("\(key) must be \(kind) in \(range)") }
    return value
  }

  /// An error about this spec that names the accepted forms.
  public func error(_ reason: String) -> EngineError { invalid(reason) }

  /// Options no reader took, sorted.
  var unread: [String] { values.keys.sorted() }
}

/// The eviction policies `--kv` knows, by name. StreamingLLM, R-KV, SnapKV and H2O are built in; a
/// package adds its own with `register(_:)` before parsing specs.
public enum KVPolicies {
  private static let registered = Mutex<[any EvictionPolicy.Type]>([
    StreamingLLMPolicy.self, RKVPolicy.self, SnapKVPolicy.self, H2OPolicy.self,
  ])

  /// Every registered policy, in registration order.
  public static var evictionPolicies: [any EvictionPolicy.Type] { registered.withLock { $0 } }

  /// Adds a policy; a later registration of the same name replaces the earlier one.
  public static func register(_ policy: any EvictionPolicy.Type) {
    registered.withLock { list in
      list.removeAll { $0.name == policy.name }
      list.append(policy)
    }
  }

  static func policy(named name: String) -> (any EvictionPolicy.Type)? {
    evictionPolicies.first { $0.name == name }
  }
}
