#ifndef BITBUDGET_CAVX512BF16_H
#define BITBUDGET_CAVX512BF16_H

// Nothing to declare: this module only gates the bf16 tile (see module.modulemap). The
// instructions themselves come from the CBF16 wrappers.
#define BITBUDGET_AVX512BF16 1

#endif
