// Header-only module; SwiftPM needs a source file.
#include "CBF16.h"
