/// How activations meet weights in the linear kernels.
public enum LinearActivations: String, Sendable, CaseIterable {
  /// f32 activations times the weights widened to f32 (16-bit weights, quantization codes): equal
  /// to the product with the dequantized weights up to f32 rounding.
  case exact
  /// Activations rounded to what the weights' fastest kernel multiplies, where this build has it:
  /// - quantized weights, in decode and prefill: int8 per block of 32 (scale `max|x| / 127`,
  ///   codes `round(x / scale)`: llama.cpp's Q8_0), multiplied with the weight codes by
  ///   `vpdpbusd` (64 products per instruction, exact in int32). Each input moves by at most half
  ///   a step, 0.4% of its block's largest value. Needs AVX-512 VNNI; on CPUs with AVX2 but
  ///   not VNNI the same int8 blocks meet row-blocked weights (`QuantizedMatrix.rowBlocked`:
  ///   symmetric 4/8-bit, every GGUF type we hold) through `vpmaddubsw`, in decode, batches and
  ///   prompts whose weights are all row-blocked (`int8RowBlocksAvailable`, `Linear.streamsPrompts`).
  /// - bf16 weights, in the tiled (prefill) kernel: bf16 (nearest, ties to even: a relative
  ///   error of at most 2⁻⁸), multiplied by `vdpbf16ps` (two products per lane, f32 sums), twice
  ///   the multiply-adds per instruction of f32 FMAs. Needs AVX512-BF16 (and VNNI, whose helpers
  ///   the tile shares; every CPU with BF16 has it). Decoding them stays
  ///   exact: it is bandwidth bound, and rounding would buy nothing.
  /// - a bf16 KV cache, in attention (prefill and decode): queries and softmax weights bf16, with
  ///   the same instruction (`AttentionScratch.roundsToBF16`); at long contexts attention is
  ///   compute bound in prefill and in G samples' shared blocks.
  /// Other weights (f16, f32), f16 and f32 caches, and everything on builds without these
  /// instructions, run exact.
  case rounded

  /// Whether this build has the int8 kernels: x86-64 compiled for a CPU with AVX-512 VNNI. It
  /// is decided at build time, by the target CPU the package is compiled for (`-target-cpu
  /// native` in Package.swift), like every other instruction the kernels use; elsewhere (arm64,
  /// x86-64 without VNNI) the f32 kernels run.
  public static var int8Available: Bool {
    #if canImport(CAVX512VNNI)
    true
    #else
    false
    #endif
  }

  /// Whether this build has the bf16 tile: x86-64 compiled for a CPU with AVX512-BF16 (and VNNI).
  public static var bf16Available: Bool {
    #if canImport(CAVX512BF16) && canImport(CAVX512VNNI)
    true
    #else
    false
    #endif
  }

  /// Whether this build has the AVX2 int8 kernels instead: x86-64 compiled for a CPU
  /// with AVX2, FMA and F16C but not AVX-512 VNNI. They multiply int8 activations with weights
  /// in row blocks (`QuantizedMatrix.rowBlocked`: symmetric 4/8-bit, GGUF Q8_0, Q4_0, Q4_1,
  /// Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) in decode and batches, and in prompts when every weight of a
  /// call is row-blocked (`Linear.streamsPrompts`); other quantized weights (asymmetric GPTQ and
  /// round-to-nearest) stay exact.
  public static var int8RowBlocksAvailable: Bool {
    #if canImport(CAVX2) && !canImport(CAVX512VNNI)
    true
    #else
    false
    #endif
  }

  /// Whether `.rounded` changes anything in this build.
  public static var roundedAvailable: Bool { int8Available || bf16Available || int8RowBlocksAvailable }

  /// What runs unless told otherwise: `.rounded` where the build has any of the kernels, else `.exact`.
  public static var fastest: LinearActivations { roundedAvailable ? .rounded : .exact }
}
