/// A run of cached tokens whose keys and values are stored densely as f32, f16 or bf16. A KV
/// cache hands the attention kernel its tokens as a list of segments, in cache order.
///
/// Layout, for storage of `capacity` token slots (a multiple of 32):
/// - keys `[kvHeads][headDim][capacity]`: for each dimension, the values of consecutive tokens are
///   adjacent, so the kernel computes 32 tokens' logits at once with one broadcast query value per
///   dimension and no horizontal sums;
/// - values `[kvHeads][capacity][headDim]`: one token's value vector is contiguous.
/// Slots `tokens..<capacity` are read (and ignored), so they must be allocated.
///
/// A segment may instead hold HQQ-quantized rows (`quantized`; `capacity` is then the row stride
/// of its layout, and `keys`/`values` point at the codes).
public struct KVSegment: @unchecked Sendable {
  public let keys: UnsafeRawPointer
  public let values: UnsafeRawPointer
  public let tokens: Int
  public let capacity: Int
  public let elementType: ElementType
  public let quantized: QuantizedKVRows?

  public init(
    keys: UnsafeRawPointer, values: UnsafeRawPointer, tokens: Int, capacity: Int,
    elementType: ElementType
  ) {
    precondition(capacity % 32 == 0 && tokens <= capacity, "segment capacity must be a multiple of 32")
    self.keys = keys
    self.values = values
    self.tokens = tokens
    self.capacity = capacity
    self.elementType = elementType
    quantized = nil
  }

  /// A segment of the first `tokens` token slots of quantized rows.
  public init(quantized: QuantizedKVRows, tokens: Int) {
    precondition(tokens <= quantized.capacity)
    keys = quantized.keyCodes
    values = quantized.valueCodes
    self.tokens = tokens
    capacity = quantized.capacity
    elementType = quantized.metaType
    self.quantized = quantized
  }

  /// Key `dimension` of `token` of `kvHead`, widened (for reference code and tests).
  public func key(kvHead: Int, token: Int, dimension: Int, headDim: Int) -> Float {
    if let quantized { return quantized.key(kvHead: kvHead, token: token, dimension: dimension) }
    return load1(keys, (kvHead * headDim + dimension) * capacity + token, elementType)
  }

  /// Value `dimension` of `token` of `kvHead`, widened (for reference code and tests).
  public func value(kvHead: Int, token: Int, dimension: Int, headDim: Int) -> Float {
    if let quantized { return quantized.value(kvHead: kvHead, token: token, dimension: dimension) }
    return load1(values, (kvHead * capacity + token) * headDim + dimension, elementType)
  }
}

/// The geometry of grouped-query attention.
public struct AttentionShape: Sendable, Equatable {
  public let queryHeads: Int
  public let kvHeads: Int
  public let headDim: Int

  public init(queryHeads: Int, kvHeads: Int, headDim: Int) {
    self.queryHeads = queryHeads
    self.kvHeads = kvHeads
    self.headDim = headDim
  }

  /// Query heads per KV head; query head `h` reads KV head `h / groupSize`.
  public var groupSize: Int { queryHeads / kvHeads }
  /// `1/√D`.
  public var scale: Float { 1 / Float(headDim).squareRoot() }
}
