// SwiftPM needs one source file per C target; the module is a header-only build gate.
#include "CAVX512VNNI.h"
