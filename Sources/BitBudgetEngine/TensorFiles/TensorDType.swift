import BitBudgetKernels

/// The element types a safetensors header can name. Only `F32`, `F16` and `BF16` hold weights the
/// dense kernels read; the integer types carry quantized layouts (packed codes, zeros, indices).
public enum TensorDType: String, Sendable, CaseIterable {
  case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
  case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
  case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
  case bool = "BOOL", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

  /// Bytes per element.
  public var byteCount: Int {
    switch self {
    case .f64, .i64, .u64: 8
    case .f32, .i32, .u32: 4
    case .f16, .bf16, .i16, .u16: 2
    case .i8, .u8, .bool, .f8e4m3, .f8e5m2: 1
    }
  }

  /// The kernels' element type for floating-point weights, or nil.
  public var elementType: ElementType? {
    switch self {
    case .f32: .f32
    case .f16: .f16
    case .bf16: .bf16
    default: nil
    }
  }
}
