#ifndef BITBUDGET_CBF16_ATTENTION_H
#define BITBUDGET_CBF16_ATTENTION_H

// The bf16 micro-kernels of the attention tile (`Attention+BF16.swift`). They are C rather than
// Swift because their register blocking is a loop over an array of accumulators, which clang
// keeps in registers once the vector count is a constant (the wrappers below fix it to 8, 4, 2
// or 1); the `target` attribute lets the header compile for any x86-64 CPU, and the Swift
// callers (compiled for a CPU with AVX512-BF16) inline them.
//
// `vdpbf16ps` multiplies 32-bit lanes holding two bf16 values each. Both operands are arranged
// as such pairs on the fly with one `vpunpck{l,h}wd` of two rows:
// - logits: rows are key dimensions 2p and 2p+1 of 32 consecutive tokens (the cache stores keys
//   dimension-major), so a lane pairs one token's dimensions 2p and 2p+1; the query word holds
//   the same two dimensions;
// - values: rows are tokens 2s and 2s+1 over 32 dimensions, so a lane pairs one dimension of
//   two tokens; the weight word holds those two tokens' softmax weights.
// The unpacks leave lanes in the order of 128-bit chunks (lane L of the low half is element
// 8·(L/4) + L%4, of the high half 8·(L/4) + 4 + L%4); one two-source permute per result vector
// puts them back.
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define BITBUDGET_BF16_KERNEL static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))

/// Logits of `n` query vectors against 32 tokens: `scores[v·scoreStride + t] = scale ·
/// Σ_p dot(queryWords[v·queryStride + p], keys of token t, dimensions 2p and 2p+1)`, for `pairs`
/// dimension pairs. `keys` points at dimension 0 of the first token, `capacity` elements between
/// dimensions. All 32 lanes are written (lanes past the block's tokens hold garbage to mask).
BITBUDGET_BF16_KERNEL void bitbudget_bf16_logits(
    int n, const uint16_t *keys, long capacity, const uint32_t *queryWords, long queryStride, long pairs,
    float scale, float *scores, long scoreStride) {
  __m512 low[8], high[8];
  for (int v = 0; v < n; v++) {
    low[v] = _mm512_setzero_ps();
    high[v] = _mm512_setzero_ps();
  }
  for (long p = 0; p < pairs; p++) {
    __m512i even = _mm512_loadu_si512(keys + 2 * p * capacity);
    __m512i odd = _mm512_loadu_si512(keys + (2 * p + 1) * capacity);
    __m512bh lowPairs = (__m512bh)_mm512_unpacklo_epi16(even, odd);
    __m512bh highPairs = (__m512bh)_mm512_unpackhi_epi16(even, odd);
    for (int v = 0; v < n; v++) {
      __m512bh q = (__m512bh)_mm512_set1_epi32((int)queryWords[v * queryStride + p]);
      low[v] = _mm512_dpbf16_ps(low[v], lowPairs, q);
      high[v] = _mm512_dpbf16_ps(high[v], highPairs, q);
    }
  }
  const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const __m512 s = _mm512_set1_ps(scale);
  for (int v = 0; v < n; v++) {
    _mm512_storeu_ps(scores + v * scoreStride, _mm512_mul_ps(_mm512_permutex2var_ps(low[v], first, high[v]), s));
    _mm512_storeu_ps(scores + v * scoreStride + 16, _mm512_mul_ps(_mm512_permutex2var_ps(low[v], second, high[v]), s));
  }
}

/// `outputs[v·d + …] += Σ_t w_v[t] · value_t` for `n` vectors over `tokens` value rows (`d`
/// elements each, `d` a multiple of 32), `weightWords[v·weightStride + s]` holding the weights of
/// tokens 2s and 2s+1. Each block of 32 outputs is in pair order (its even dimensions, then its
/// odd ones), as the f32 kernels keep bf16 values. An odd last token is paired with zeros rather
/// than the row after it, which may be an unwritten slot.
BITBUDGET_BF16_KERNEL void bitbudget_bf16_values(
    int n, const uint32_t *weightWords, long weightStride, const uint16_t *values, long tokens, long d,
    float *outputs) {
  const __m512i evens = _mm512_setr_epi32(0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30);
  const __m512i odds = _mm512_setr_epi32(1, 3, 17, 19, 5, 7, 21, 23, 9, 11, 25, 27, 13, 15, 29, 31);
  for (long i = 0; i < d; i += 32) {
    __m512 low[8], high[8];
    for (int v = 0; v < n; v++) {
      low[v] = _mm512_setzero_ps();
      high[v] = _mm512_setzero_ps();
    }
    for (long s = 0; 2 * s < tokens; s++) {
      __m512i first = _mm512_loadu_si512(values + 2 * s * d + i);
      __m512i second = 2 * s + 1 < tokens ? _mm512_loadu_si512(values + (2 * s + 1) * d + i) : _mm512_setzero_si512();
      __m512bh lowPairs = (__m512bh)_mm512_unpacklo_epi16(first, second);
      __m512bh highPairs = (__m512bh)_mm512_unpackhi_epi16(first, second);
      for (int v = 0; v < n; v++) {
        __m512bh w = (__m512bh)_mm512_set1_epi32((int)weightWords[v * weightStride + s]);
        low[v] = _mm512_dpbf16_ps(low[v], lowPairs, w);
        high[v] = _mm512_dpbf16_ps(high[v], highPairs, w);
      }
    }
    for (int v = 0; v < n; v++) {
      float *o = outputs + v * d + i;
      _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), _mm512_permutex2var_ps(low[v], evens, high[v])));
      _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), _mm512_permutex2var_ps(low[v], odds, high[v])));
    }
  }
}

// Fixed vector counts, so that the accumulators above live in registers.
#define BITBUDGET_BF16_FIXED(N)                                                                               \
  BITBUDGET_BF16_KERNEL void bitbudget_bf16_logits##N(                                                        \
      const uint16_t *keys, long capacity, const uint32_t *queryWords, long queryStride, long pairs,         \
      float scale, float *scores, long scoreStride) {                                                         \
    bitbudget_bf16_logits(N, keys, capacity, queryWords, queryStride, pairs, scale, scores, scoreStride);     \
  }                                                                                                           \
  BITBUDGET_BF16_KERNEL void bitbudget_bf16_values##N(                                                        \
      const uint32_t *weightWords, long weightStride, const uint16_t *values, long tokens, long d,            \
      float *outputs) {                                                                                       \
    bitbudget_bf16_values(N, weightWords, weightStride, values, tokens, d, outputs);                          \
  }
BITBUDGET_BF16_FIXED(8)
BITBUDGET_BF16_FIXED(4)
BITBUDGET_BF16_FIXED(2)
BITBUDGET_BF16_FIXED(1)
#undef BITBUDGET_BF16_FIXED
#endif

#endif
