// SwiftPM needs one source file per C target; the module is a header-only build gate, tested
// with `#if canImport(CAVX512BF16)` and never imported.
#include "CAVX512BF16.h"
