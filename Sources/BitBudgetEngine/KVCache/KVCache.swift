import BitBudgetKernels

/// The geometry of a model's KV cache: per layer and token, `kvHeads × headDim` keys and as many
/// values.
public struct KVCacheGeometry: Sendable, Equatable {
  public let layers: Int
  public let kvHeads: Int
  public let headDim: Int

  public init(layers: Int, kvHeads: Int, headDim: Int) {
    self.layers = layers
    self.kvHeads = kvHeads
    self.headDim = headDim
  }

  public init(_ config: ModelConfig) {
    self.init(layers: config.layerCount, kvHeads: config.kvHeads, headDim: config.headDim)
  }

  /// Floats per token and layer for keys (and again for values).
  public var rowWidth: Int { kvHeads * headDim }
}

/// The KV cache of one sequence, for all layers. A forward pass over `n` new tokens stores, for
/// each layer in order, their keys and values and attends with their queries; after the last layer
/// it commits the `n` tokens, where eviction policies may compress. Those calls are the engine's
/// own (`package`); make caches with `InferenceSession.makeCache(spec:elementType:)`.
///
/// Keys arrive after q/k-norm and RoPE at their absolute positions, so a policy may drop or reorder
/// tokens without re-rotating anything; `nextPosition` keeps counting every token ever appended.
public protocol KVCache: AnyObject {
  var geometry: KVCacheGeometry { get }
  /// The absolute position the next token will get: the number of tokens committed so far.
  var nextPosition: Int { get }
  /// Tokens whose keys and values are held (per layer; the largest over layers).
  var residentTokens: Int { get }
  /// Bytes of memory the cache holds for keys, values and any policy state, exactly (storage
  /// shared with a fork counts in both).
  var residentBytes: Int { get }

  /// An independent cache that starts with this one's contents (for parallel samples). Policies
  /// that can share storage with the original do; see each type.
  func fork() -> any KVCache
}

/// The calls the forward pass makes on a cache, with raw pointers into its buffers. Only the
/// engine's caches (``FullKVCache``, ``CompressedKVCache``, ``RequantizingKVCache``) have them: a
/// new eviction policy plugs into ``CompressedKVCache`` through ``EvictionPolicy``.
package protocol KVCacheStorage: KVCache {
  /// Stores the keys and values of `count` new tokens of `layer`: `[count, kvHeads·headDim]` f32
  /// rows each.
  func append(layer: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int)

  /// Causal attention of the `rows` tokens just appended to `layer` (queries `[rows,
  /// queryHeads·headDim]`) over everything the cache holds for that layer.
  func attend(
    layer: Int, queries: UnsafePointer<Float>, rows: Int, shape: AttentionShape,
    output: UnsafeMutablePointer<Float>, pool: ThreadPool, scratch: AttentionScratch)

  /// In place of `attend`, for a caller that runs the attention itself: records what the cache
  /// needs from the queries of the `rows` new rows of `layer` (after `append`), as `attend` would,
  /// and returns the segments they attend to. For caches whose storage may be shared with forks:
  /// attention for one new row of each of several such caches reads the segments they have in
  /// common once (`Attention.attendSharing`). nil where `attend` must run (then nothing was
  /// recorded); nil by default.
  func attentionSegments(layer: Int, queries: UnsafePointer<Float>, rows: Int) -> [KVSegment]?

  /// Ends a forward pass that appended `tokens` tokens to every layer.
  func commit(tokens: Int)

  /// Calls `body` with the identity and size in bytes of every storage allocation the cache
  /// references, so that the memory of several caches sharing storage can be counted once.
  func forEachStorage(_ body: (ObjectIdentifier, Int) -> Void)
}

extension KVCacheStorage {
  package func attentionSegments(layer: Int, queries: UnsafePointer<Float>, rows: Int) -> [KVSegment]? { nil }
}

extension KVCache {
  /// This cache as the forward pass drives it; an error for a cache type from outside the engine.
  package func storage() throws(EngineError) -> any KVCacheStorage {
    guard let storage = self as? any KVCacheStorage else {
      throw .invalidInput(
        "\(type(of: self)) is not one of the engine's KV caches; make caches with makeCache(spec:) (a new eviction policy plugs in through EvictionPolicy)")
    }
    return storage
  }
}
