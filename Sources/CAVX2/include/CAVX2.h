#ifndef BITBUDGET_CAVX2_H
#define BITBUDGET_CAVX2_H

// Nothing to declare: this module only gates the AVX2 int8 kernels (see
// module.modulemap). The intrinsics themselves come from `_Builtin_intrinsics.intel`.
#define BITBUDGET_AVX2 1

#endif
