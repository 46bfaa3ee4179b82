import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few BLAS/LAPACK routines GPTQ needs (Cholesky factorization and inverse of Hessians of a
/// few thousand columns, and the products around them), loaded at run time from the system's
/// library — OpenBLAS on Linux (Debian's `libopenblas0`), Accelerate on macOS — so that building
/// and running models needs no BLAS; only `quantize --method gptq` does. Reference-LAPACK
/// (Fortran) conventions: arguments by pointer, column-major matrices.
public final class LinearAlgebra: @unchecked Sendable {
  typealias Factorize = @convention(c) (
    UnsafePointer<CChar>, UnsafePointer<Int32>, UnsafeMutablePointer<Float>, UnsafePointer<Int32>, UnsafeMutablePointer<Int32>
  ) -> Void
  typealias Multiply = @convention(c) (
    UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>,
    UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Int32>, UnsafePointer<Float>, UnsafePointer<Int32>,
    UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Int32>
  ) -> Void
  typealias RankUpdate = @convention(c) (
    UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Float>,
    UnsafePointer<Float>, UnsafePointer<Int32>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Int32>
  ) -> Void

  /// LAPACK `spotrf`: Cholesky factor of a symmetric positive-definite matrix.
  let spotrf: Factorize
  /// LAPACK `spotri`: the inverse from the Cholesky factor.
  let spotri: Factorize
  /// BLAS `sgemm`: C = α·op(A)·op(B) + β·C.
  let sgemm: Multiply
  /// BLAS `ssyrk`: C = α·A·Aᵀ + β·C, one triangle.
  let ssyrk: RankUpdate

  private init(handle: UnsafeMutableRawPointer) throws {
    func symbol<T>(_ name: String, _: T.Type) throws -> T {
      guard let address = dlsym(handle, name) else {
        throw EngineError.unsupported("the BLAS/LAPACK library has no \(name)")
      }
      return unsafeBitCast(address, to: T.self)
    }
    spotrf = try symbol("spotrf_", Factorize.self)
    spotri = try symbol("spotri_", Factorize.self)
    sgemm = try symbol("sgemm_", Multiply.self)
    ssyrk = try symbol("ssyrk_", RankUpdate.self)
  }

  /// Library file names tried in order.
  static let candidates: [String] = {
    #if os(macOS)
    return ["/System/Library/Frameworks/Accelerate.framework/Accelerate"]
    #else
    return ["libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0", "liblapack.so.3"]
    #endif
  }()

  private static let loaded: Result<LinearAlgebra, EngineError> = {
    for name in candidates {
      guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
      if let library = try? LinearAlgebra(handle: handle) { return .success(library) }
      dlclose(handle)  // lacks a routine: try the next one
    }
    return .failure(.unsupported(
      "GPTQ needs a BLAS/LAPACK library at run time and none with spotrf, spotri, sgemm and ssyrk was found (tried \(candidates.joined(separator: ", "))); on Debian/Ubuntu: apt-get install libopenblas0"))
  }()

  /// The process-wide library; throws a message that says what to install when there is none.
  public static func shared() throws -> LinearAlgebra {
    try loaded.get()
  }
}
