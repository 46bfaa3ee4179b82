#ifndef BITBUDGET_CAVX512VNNI_H
#define BITBUDGET_CAVX512VNNI_H

// Nothing to declare: this module only gates the int8 kernels (see module.modulemap). The
// intrinsics themselves come from `_Builtin_intrinsics.intel`.
#define BITBUDGET_AVX512VNNI 1

#endif
