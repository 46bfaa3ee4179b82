import Foundation

/// Generates one or more samples after a prompt.
///
/// The prompt is prefilled once; each sample then continues in its own KV cache forked from the
/// prompt's (blocks shared until written; see `FullKVCache`). All live samples are decoded together
/// in one forward pass per step — one matrix–matrix product over their rows, so the weights are
/// read once per step for all of them — and finished samples drop out. Each sample has its own
/// random stream, and the kernels compute a row the same way whatever other rows share its pass,
/// so a sample's tokens do not depend on G, on the other samples or on the thread count.
public struct Generator {
  public let session: InferenceSession

  public init(session: InferenceSession) {
    self.session = session
  }

  /// Generates `options.samples` samples after `prompt` into caches forked from `cache` (which
  /// may already hold context; sample 0 continues in `cache` itself). `onToken` sees every token
  /// appended to a sample, as it happens; an error it throws ends generation.
  public func generate(
    prompt: [Int], options: GenerationOptions, cache: any KVCache,
    onToken: DecodeBatch.TokenHandler? = nil
  ) throws -> GenerationResult {
    let batch = DecodeBatch(session: session)
    let start = Date()
    let group = try batch.add(prompt: prompt, options: options, cache: cache, onToken: onToken)
    while batch.hasWork { try batch.step() }
    // Decoding: everything after the prompt's passes (the first tokens' draws included).
    let decodeSeconds = Date().timeIntervalSince(start) - batch.prefillSeconds
    let (samples, kvBytes) = batch.remove(group)
    return GenerationResult(
      samples: samples, promptTokens: prompt.count, prefillSeconds: batch.prefillSeconds, decodeSeconds: decodeSeconds,
      decodeSteps: batch.passes, decodedTokens: batch.decodedTokens, kvBytes: kvBytes)
  }

  /// Greedy decoding of one sequence, as transformers' `generate(do_sample=False)`.
  public func generateGreedy(
    prompt: [Int], maxTokens: Int, stopTokens: Set<Int>, cache: any KVCache
  ) throws -> GenerationResult {
    try generate(prompt: prompt, options: GenerationOptions(maxTokens: maxTokens, stopTokens: stopTokens), cache: cache)
  }

  /// The index of the largest value (the first one on ties, as `torch.argmax`). NaN logits mean
  /// the model produced garbage and are an error.
  public static func argmax(_ values: UnsafeBufferPointer<Float>) throws -> Int {
    guard !values.isEmpty else { throw EngineError.invalidInput("no logits to choose from") }
    var best = 0
    var bestValue = values[0]
    var sawNaN = bestValue.isNaN
    for i in 1..<values.count {
      let v = values[i]
      sawNaN = sawNaN || v.isNaN
      if v > bestValue {
        best = i
        bestValue = v
      }
    }
    if sawNaN { throw EngineError.numericalFailure("the model produced NaN logits (corrupt weights, or an f16 overflow)") }
    return best
  }
}
