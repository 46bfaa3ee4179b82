import BitBudgetKernels

extension CompressedKVCache {
  /// One layer's storage by counts, and the schedule that changes it. The cache follows it — it
  /// decides when a layer compresses or quantizes, and how large every allocation is — and the
  /// memory model (`KVMemory`) replays it without the cache, so both count the same bytes by
  /// construction.
  ///
  /// Per layer: zero or more quantized blocks (`blocks`, tokens each, slots rounded up to 32), one
  /// dense block of `denseCapacity` token slots (a multiple of 32), the policy's query window and
  /// its marks, and for a policy that accumulates attention one f32 total per token slot and KV
  /// head (`totalsCapacity` slots: `budget + interval` rounded up to 32, more while a prefill
  /// chunk holds more tokens).
  public struct LayerPlan: Sendable {
    /// A quantized block: its tokens, and whether forks share it (set by the memory model's
    /// replay; the cache shares blocks by reference).
    public struct Block: Sendable, Equatable {
      public var tokens: Int
      public var shared = false
    }

    /// What a forward pass's end does to the layer.
    public struct Commit: Sendable, Equatable {
      /// The policy keeps `budget` rows per KV head.
      public var compresses = false
      /// The dense rows (after a compression: the kept rows) become one quantized block, which
      /// replaces every block when the pass compressed and follows them otherwise.
      public var quantizes = false
    }

    public let geometry: KVCacheGeometry
    public let queryHeads: Int
    public let spec: KVCacheSpec
    public let elementType: ElementType
    /// The type of the quantization scales and zeros: f16, or f32 for an f32 cache.
    public let metaType: ElementType
    /// Dense token slots the policy needs between compressions (the dense block's usual size):
    /// eviction alone holds `budget + interval` rows there; with quantization every dense row
    /// moves into a quantized block at each flush or compression.
    public let steadyCapacity: Int
    public private(set) var blocks: [Block] = []
    public private(set) var denseTokens = 0
    public private(set) var denseCapacity: Int
    /// Token slots of the attention totals (0 unless the policy accumulates attention).
    public private(set) var totalsCapacity: Int
    /// Tokens committed so far (each attended with its query: the window holds the last
    /// `queryWindow` of them).
    public private(set) var position = 0

    public init(geometry: KVCacheGeometry, queryHeads: Int, spec: KVCacheSpec, elementType: ElementType) {
      self.geometry = geometry
      self.queryHeads = queryHeads
      self.spec = spec
      self.elementType = elementType
      metaType = elementType == .f32 ? .f32 : .f16
      let steady: Int
      switch (spec.eviction, spec.quantization) {
      case (let eviction?, nil): steady = eviction.budget + eviction.interval
      case (let eviction?, let quantization?): steady = min(eviction.interval, quantization.residual)
      case (nil, let quantization?): steady = quantization.residual
      case (nil, nil): steady = 64
      }
      steadyCapacity = Self.roundUp(steady)
      denseCapacity = steadyCapacity
      totalsCapacity = spec.eviction.map { $0.accumulatesAttention ? Self.roundUp($0.budget + $0.interval) : 0 } ?? 0
    }

    static func roundUp(_ tokens: Int) -> Int { (tokens + 31) / 32 * 32 }

    public var quantizedTokens: Int { blocks.reduce(0) { $0 + $1.tokens } }
    public var tokens: Int { quantizedTokens + denseTokens }

    /// `count` new tokens: the dense block grows, 32 slots at a time, to hold them (beyond its
    /// steady size for a prefill chunk, cut back by the pass's commit; and with eviction and HQQ
    /// whose residual exceeds the interval, while the layer holds fewer than `budget` tokens).
    public mutating func append(_ count: Int) {
      if denseTokens + count > denseCapacity { denseCapacity = Self.roundUp(denseTokens + count) }
      denseTokens += count
      if totalsCapacity > 0 && tokens > totalsCapacity { totalsCapacity = Self.roundUp(tokens) }
    }

    /// The end of a pass of `count` tokens: compression after a multi-token pass or at a decode
    /// step whose preceding length is a multiple of `interval`, when the layer holds at least
    /// `budget` tokens and the window is full; quantization of the dense rows after a prefill
    /// pass, a compression, or when they reach `residual`.
    public mutating func commit(_ count: Int) -> Commit {
      let before = position
      position += count
      let isPrefill = count > 1
      var step = Commit()
      if let e = spec.eviction, isPrefill || before % e.interval == 0, position >= e.queryWindow, tokens >= e.budget {
        step.compresses = true
      }
      let kept = step.compresses ? spec.eviction?.budget : nil
      if let e = spec.eviction, kept != nil, totalsCapacity > 0 { totalsCapacity = Self.roundUp(e.budget + e.interval) }
      if let q = spec.quantization {
        if kept != nil || isPrefill || denseTokens >= q.residual {
          let rows = kept ?? denseTokens
          if rows > 0 {
            step.quantizes = true
            if kept != nil { blocks = [Block(tokens: rows)] } else { blocks.append(Block(tokens: rows)) }
            denseTokens = 0
            denseCapacity = min(denseCapacity, steadyCapacity)
          }
        }
      } else if let kept {
        denseTokens = kept
        denseCapacity = Self.roundUp(max(kept, steadyCapacity))
      }
      return step
    }

    /// Marks every block as shared by forks made now.
    public mutating func markShared() {
      for i in blocks.indices { blocks[i].shared = true }
    }

    // MARK: Bytes

    /// Bytes of a dense block of `capacity` token slots: keys and values.
    public func denseBytes(capacity: Int) -> Int { 2 * geometry.rowWidth * capacity * elementType.byteCount }

    /// Bytes of a quantized block of `tokens` tokens (slots rounded up to 32).
    public func blockBytes(tokens: Int) -> Int {
      guard let q = spec.quantization else { return 0 }
      return QuantizedKVRows.byteCount(
        kvHeads: geometry.kvHeads, headDim: geometry.headDim, capacity: Self.roundUp(tokens), bits: q.bits,
        groupSize: q.groupSize, metaType: metaType)
    }

    /// Bytes of the policy's query window (f32).
    public var queryWindowBytes: Int { (spec.eviction?.queryWindow ?? 0) * queryHeads * geometry.headDim * 4 }
    /// Bytes of the policy's marks.
    public var markBytes: Int { (spec.eviction?.markBytesPerHead ?? 0) * geometry.kvHeads }
    /// Bytes of the attention totals.
    public var totalsBytes: Int { totalsCapacity * geometry.kvHeads * 4 }

    /// Bytes of this layer for G samples on the same schedule: shared blocks once, the rest G
    /// times.
    public func bytes(samples: Int) -> Int {
      let shared = blocks.filter(\.shared).reduce(0) { $0 + blockBytes(tokens: $1.tokens) }
      let own = blocks.filter { !$0.shared }.reduce(0) { $0 + blockBytes(tokens: $1.tokens) }
      return shared + samples * (denseBytes(capacity: denseCapacity) + queryWindowBytes + markBytes + totalsBytes + own)
    }
  }
}
