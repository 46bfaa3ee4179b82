#ifndef BITBUDGET_CALLOCATOR_H
#define BITBUDGET_CALLOCATOR_H

#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif

/// Makes glibc map allocations of at least `bytes` directly (and return them to the system when
/// freed), fixing the threshold that glibc otherwise raises after each such free. Returns 1 on
/// success, 0 where there is no such setting (other C libraries).
static inline int bitbudget_set_mmap_threshold(int bytes) {
#if defined(__GLIBC__)
  return mallopt(M_MMAP_THRESHOLD, bytes);
#else
  (void)bytes;
  return 0;
#endif
}

#endif
