// Declarations only (include/CLinearAlgebra.h); the routines come from OpenBLAS or Accelerate.
#include "CLinearAlgebra.h"
