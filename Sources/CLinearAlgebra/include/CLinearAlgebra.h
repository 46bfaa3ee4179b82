#ifndef BITBUDGET_CLINEARALGEBRA_H
#define BITBUDGET_CLINEARALGEBRA_H

// The few BLAS/LAPACK routines GPTQ needs (Cholesky factorization and inverse of Hessians up to
// a few thousand columns, and their matrix products), declared here rather than through a
// vendor header so that one declaration serves OpenBLAS on Linux and Accelerate on macOS, which
// both export these reference-BLAS/LAPACK symbols. Fortran conventions: arguments by pointer,
// column-major matrices.

// LAPACK: Cholesky factorization of a symmetric positive-definite matrix (uplo 'U' or 'L').
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
// LAPACK: inverse of a symmetric positive-definite matrix from its Cholesky factor.
void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info);
// BLAS: C = alpha·op(A)·op(B) + beta·C.
void sgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k,
            const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
            const float *beta, float *c, const int *ldc);
// BLAS: C = alpha·A·Aᵀ + beta·C (trans 'N') or alpha·Aᵀ·A + beta·C (trans 'T'), one triangle.
void ssyrk_(const char *uplo, const char *trans, const int *n, const int *k, const float *alpha,
            const float *a, const int *lda, const float *beta, float *c, const int *ldc);

#endif
