// OpenBLAS's CBLAS interface (Debian: libopenblas-dev). Used only for f32 prefill GEMMs.
#include <cblas.h>
// Not part of the CBLAS standard, declared by OpenBLAS's cblas.h on Debian; repeated here so that
// the shim also compiles against a cblas.h that omits them.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
