import BitBudgetKernels

/// The plain cache: every token's keys and values, stored as bf16, f16 or f32.
///
/// Storage is paged in blocks of `blockTokens` tokens per layer, so that the cache grows without
/// copying and forks share all blocks (copy-on-write: a fork copies a shared block only when it
/// appends into it). A block holds keys `[kvHeads][headDim][blockTokens]` (dimension-major, as
/// the attention kernel reads them; see `KVSegment`) followed by values
/// `[kvHeads][blockTokens][headDim]`.
///
/// Memory: `layers × ⌈tokens / blockTokens⌉ × blockBytes` with `blockBytes = 2 · kvHeads · headDim
/// · blockTokens · elementBytes` (a Qwen3-0.6B bf16 block holds 64 tokens in 256 KiB per layer).
/// Attention reads every resident byte once per decode step.
public final class FullKVCache: KVCache, KVCacheStorage {
  /// Tokens per storage block.
  public static let blockTokens = 64

  public let geometry: KVCacheGeometry
  public let elementType: ElementType
  public private(set) var nextPosition = 0
  private var layers: [Layer]

  final class Block {
    let storage: UnsafeMutableRawPointer
    let byteCount: Int

    /// A zeroed block: the attention kernel reads whole 32-token groups, including slots not yet
    /// written (their lanes are discarded); zeroing keeps those reads defined and makes the block
    /// resident at once, so measured memory follows `residentBytes`.
    init(byteCount: Int) {
      self.byteCount = byteCount
      storage = .allocate(byteCount: byteCount, alignment: 64)
      storage.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    }

    init(copying other: Block) {
      byteCount = other.byteCount
      storage = .allocate(byteCount: byteCount, alignment: 64)
      storage.copyMemory(from: other.storage, byteCount: byteCount)
    }

    deinit { storage.deallocate() }
  }

  struct Layer {
    var blocks: [Block] = []
    var segments: [KVSegment] = []
    var tokens = 0
  }

  public init(geometry: KVCacheGeometry, elementType: ElementType = .bf16) {
    self.geometry = geometry
    self.elementType = elementType
    layers = Array(repeating: Layer(), count: geometry.layers)
  }

  private init(copying other: FullKVCache) {
    geometry = other.geometry
    elementType = other.elementType
    nextPosition = other.nextPosition
    layers = other.layers
  }

  /// Bytes of one block (keys and values of `blockTokens` tokens of one layer).
  public var blockBytes: Int { Self.blockBytes(geometry: geometry, elementType: elementType) }

  /// The allocation plan, which the memory model replays: one block of this many bytes per
  /// `blockTokens` tokens of a layer, allocated by the first token that falls into it.
  public static func blockBytes(geometry: KVCacheGeometry, elementType: ElementType) -> Int {
    2 * geometry.rowWidth * blockTokens * elementType.byteCount
  }

  /// Blocks a layer of `tokens` tokens holds.
  public static func blocks(tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }

  public var residentTokens: Int { layers.map(\.tokens).max() ?? 0 }

  /// Bytes of the blocks this cache references. Forks share blocks until they write into them, so
  /// the caches of G samples together hold less than the sum of their `residentBytes`.
  public var residentBytes: Int { layers.reduce(0) { $0 + $1.blocks.count } * blockBytes }

  package func append(layer index: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int) {
    let d = geometry.headDim
    let width = geometry.rowWidth
    let perBlock = Self.blockTokens
    let valueOffset = width * perBlock  // elements from keys to values in a block
    for t in 0..<count {
      let slot = layers[index].tokens % perBlock
      if slot == 0 {
        layers[index].blocks.append(Block(byteCount: blockBytes))
      } else if !isKnownUniquelyReferenced(&layers[index].blocks[layers[index].blocks.count - 1]) {
        let last = layers[index].blocks.count - 1
        layers[index].blocks[last] = Block(copying: layers[index].blocks[last])
      }
      let storage = layers[index].blocks[layers[index].blocks.count - 1].storage
      for h in 0..<geometry.kvHeads {
        storeConverted(
          keys + t * width + h * d, count: d, to: storage, at: h * d * perBlock + slot, stride: perBlock,
          as: elementType)
        storeConverted(
          values + t * width + h * d, count: d, to: storage, at: valueOffset + (h * perBlock + slot) * d,
          as: elementType)
      }
      layers[index].tokens += 1
      let segment = KVSegment(
        keys: storage, values: storage + valueOffset * elementType.byteCount, tokens: slot + 1,
        capacity: perBlock, elementType: elementType)
      if slot == 0 { layers[index].segments.append(segment) } else {
        layers[index].segments[layers[index].segments.count - 1] = segment
      }
    }
  }

  package func attend(
    layer index: Int, queries: UnsafePointer<Float>, rows: Int, shape: AttentionShape,
    output: UnsafeMutablePointer<Float>, pool: ThreadPool, scratch: AttentionScratch
  ) {
    let visibleBefore = layers[index].tokens - rows
    layers[index].segments.withUnsafeBufferPointer { segments in
      Attention.attend(
        queries: queries, rows: rows, visibleBefore: visibleBefore, segments: segments, shape: shape,
        output: output, pool: pool, scratch: scratch)
    }
  }

  /// Layer `index`'s blocks as segments: forks list the blocks they share with the same storage.
  package func attentionSegments(layer index: Int, queries: UnsafePointer<Float>, rows: Int) -> [KVSegment]? {
    layers[index].segments
  }

  package func commit(tokens: Int) {
    nextPosition += tokens
  }

  package func forEachStorage(_ body: (ObjectIdentifier, Int) -> Void) {
    for layer in layers {
      for block in layer.blocks { body(ObjectIdentifier(block), block.byteCount) }
    }
  }

  /// A cache that shares every block with this one until either appends into a shared block.
  public func fork() -> any KVCache {
    FullKVCache(copying: self)
  }

  /// A fork of this cache as its own type.
  func forkFull() -> FullKVCache {
    FullKVCache(copying: self)
  }

  /// Layer `index`'s keys and values widened to f32, token-major `[tokens][rowWidth]` each.
  func rows(layer index: Int) -> (keys: [Float], values: [Float]) {
    let d = geometry.headDim
    let width = geometry.rowWidth
    let perBlock = Self.blockTokens
    let valueOffset = width * perBlock
    let tokens = layers[index].tokens
    var keys = [Float](repeating: 0, count: tokens * width)
    var values = [Float](repeating: 0, count: tokens * width)
    keys.withUnsafeMutableBufferPointer { k in
      values.withUnsafeMutableBufferPointer { v in
        guard let k = k.baseAddress, let v = v.baseAddress else { return }
        for t in 0..<tokens {
          let storage = UnsafeRawPointer(layers[index].blocks[t / perBlock].storage)
          let slot = t % perBlock
          for h in 0..<geometry.kvHeads {
            for i in 0..<d {
              loadConverted(from: storage, at: (h * d + i) * perBlock + slot, count: 1, as: elementType, into: k + t * width + h * d + i)
            }
            loadConverted(from: storage, at: valueOffset + (h * perBlock + slot) * d, count: d, as: elementType, into: v + t * width + h * d)
          }
        }
      }
    }
    return (keys, values)
  }

  /// Drops layer `index`'s tokens (its blocks are released; forks keep theirs).
  func clear(layer index: Int) {
    layers[index] = Layer()
  }
}
