#ifndef BITBUDGET_CBF16_H
#define BITBUDGET_CBF16_H

// Swift cannot import the AVX512-BF16 intrinsics themselves (their `__m512bh` type has no Swift
// counterpart); these wrappers take and return vector types Swift has. The `target` attribute
// lets the header compile for any x86-64 CPU, so the module imports everywhere (like the
// kernels that use it, which are compiled only behind the CAVX512BF16 gate); inlined into Swift
// code compiled for a CPU with AVX512-BF16, each call is one instruction. Empty on other
// architectures.
#if defined(__x86_64__)
#include <immintrin.h>

#define BITBUDGET_BF16_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))

/// `acc[i] + a[2i]·b[2i] + a[2i+1]·b[2i+1]` for the 16 lanes, `a` and `b` each holding 32 bf16
/// values (`vdpbf16ps`).
BITBUDGET_BF16_INLINE __m512 bitbudget_dpbf16(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

/// The 32 floats `low[0..<16], high[0..<16]` rounded to bf16 (nearest, ties to even), in that
/// order (`vcvtne2ps2bf16`).
BITBUDGET_BF16_INLINE __m512i bitbudget_bf16_round(__m512 low, __m512 high) {
  return (__m512i)_mm512_cvtne2ps_pbh(high, low);
}
#endif

// The attention tile's micro-kernels.
#include "CBF16Attention.h"

#endif
