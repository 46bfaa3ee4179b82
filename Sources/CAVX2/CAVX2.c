// SwiftPM needs one source file per C target; the module is a header-only build gate, tested
// with `#if canImport(CAVX2)` and never imported.
#include "CAVX2.h"
