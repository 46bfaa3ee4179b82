#ifndef BITBUDGET_CPREFETCH_H
#define BITBUDGET_CPREFETCH_H

/// A software prefetch hint (Swift has no prefetch intrinsic). Kernels whose loop bodies are long,
/// like the batched linear kernels, keep too few loads in flight for the hardware prefetcher to
/// hide DRAM latency; asking for a line a few iterations ahead does. Inlined into Swift callers.
static inline __attribute__((always_inline)) void bitbudget_prefetch(const void *address) {
  __builtin_prefetch(address, 0, 3);
}

#endif
