import BitBudgetTestSupport
import Testing

@testable import BitBudgetKernels

/// The linear kernels against their scalar definition (accumulated in Double), for every weight
/// type, both paths, token counts that exercise every register tile and its remainders, and widths
/// that are and are not multiples of 32.
@Suite struct LinearTests {
  /// A matrix stored as `type`, with its values as the kernels will see them.
  final class Matrix {
    let storage: UnsafeMutableRawPointer
    let matrix: DenseMatrix

    init(rows: Int, columns: Int, type: ElementType, random: inout TestRandom, byteOffset: Int = 0) {
      let storage = UnsafeMutableRawPointer.allocate(byteCount: rows * columns * type.byteCount + 64, alignment: 64)
      let values = (0..<(rows * columns)).map { _ in random.signedUnit() }
      values.withUnsafeBufferPointer {
        storeConverted($0.baseAddress!, count: values.count, to: storage + byteOffset, at: 0, as: type)
      }
      self.storage = storage
      matrix = DenseMatrix(base: storage + byteOffset, rows: rows, columns: columns, elementType: type)
    }

    deinit { storage.deallocate() }
  }

  static let shapes: [(rows: Int, columns: Int)] = [(37, 64), (70, 72), (33, 100), (96, 256)]
  static let tokenCounts = [1, 2, 3, 4, 5, 8, 9, 13, 17, 32, 41]

  @Test(arguments: ElementType.allCases, [Linear.Path.streaming, .tiled])
  func matchesReference(type: ElementType, path: Linear.Path) {
    var random = TestRandom(seed: 7)
    let pool = ThreadPool(threadCount: 2)
    for shape in Self.shapes {
      // Odd byte offsets within a cache line, as in a safetensors file.
      let weight = Matrix(rows: shape.rows, columns: shape.columns, type: type, random: &random, byteOffset: 2 * type.byteCount)
      let biasValues = (0..<shape.rows).map { _ in random.signedUnit() }
      let scratch = LinearScratch(threadCount: 2, maxColumns: shape.columns)
      for tokens in Self.tokenCounts {
        let stride = shape.columns + 3
        let input = (0..<(tokens * stride)).map { _ in random.signedUnit() }
        var fast = [Float](repeating: .nan, count: tokens * shape.rows)
        var slow = fast
        biasValues.withUnsafeBytes { biasBytes in
          let bias = WeightVector(base: biasBytes.baseAddress!, count: shape.rows, elementType: .f32)
          input.withUnsafeBufferPointer { x in
            fast.withUnsafeMutableBufferPointer { y in
              Linear.run(
                [LinearJob(weight: weight.matrix, bias: bias, output: y.baseAddress!, outputStride: shape.rows)],
                input: x.baseAddress!, inputStride: stride, tokens: tokens, pool: pool, scratch: scratch, path: path)
            }
            slow.withUnsafeMutableBufferPointer { y in
              Linear.reference(
                LinearJob(weight: weight.matrix, bias: bias, output: y.baseAddress!, outputStride: shape.rows),
                input: x.baseAddress!, inputStride: stride, tokens: tokens)
            }
          }
        }
        // f32 sums of ≤ 256 products of values in [−1, 1]: rounding error ≲ 256 · 2⁻²⁴ · √256 ≈ 2.4e-4
        // in the worst case; typical is far below. 1e-4 absolute is tight enough to catch a wrong
        // element (each contributes up to 1).
        let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? .nan
        #expect(worst < 1e-4, "\(type) \(path) \(shape) tokens \(tokens): max |Δ| \(worst)")
      }
    }
  }

  /// The streaming kernel computes each output identically whatever block of token rows it is
  /// in: row t of a T-row run equals, bit for bit, a run on row t alone. (Batched decoding relies
  /// on this to give each sample the tokens it would get alone.)
  @Test(arguments: ElementType.allCases)
  func streamingOutputsDoNotDependOnTheBatch(type: ElementType) {
    var random = TestRandom(seed: 21)
    let pool = ThreadPool(threadCount: 2)
    for shape in Self.shapes {
      let weight = Matrix(rows: shape.rows, columns: shape.columns, type: type, random: &random, byteOffset: 2)
      let scratch = LinearScratch(threadCount: 2, maxColumns: shape.columns)
      let tokens = 17
      let input = (0..<(tokens * shape.columns)).map { _ in random.signedUnit() }
      func run(_ first: Int, _ count: Int) -> [Float] {
        var y = [Float](repeating: .nan, count: count * shape.rows)
        input.withUnsafeBufferPointer { x in
          y.withUnsafeMutableBufferPointer { out in
            Linear.run(
              [LinearJob(weight: weight.matrix, output: out.baseAddress!, outputStride: shape.rows)],
              input: x.baseAddress! + first * shape.columns, inputStride: shape.columns, tokens: count,
              pool: pool, scratch: scratch, path: .streaming)
          }
        }
        return y
      }
      let alone = (0..<tokens).flatMap { run($0, 1) }
      for count in 1...tokens {
        let together = run(0, count)
        #expect(together.map(\.bitPattern) == alone.prefix(count * shape.rows).map(\.bitPattern), "\(type) \(shape) \(count) rows")
      }
    }
  }

  /// With `.rounded` activations, calls whose weights are all bf16 take the bf16 tile: equal to
  /// the product of the bf16-rounded inputs (the f32 sums' rounding aside), for partial tiles
  /// (fewer than 8 tokens, widths and row counts off multiples of 32, an odd width) and runs
  /// longer than the scratch's rows (sliced). The exact product differs by far more than the
  /// bound, so the test would notice inputs left unrounded.
  @Test(.enabled(if: LinearActivations.bf16Available))
  func bf16TileMatchesTheRoundedReference() {
    var random = TestRandom(seed: 19)
    let pool = ThreadPool(threadCount: 2)
    var exactWorst: Float = 0
    for shape in Self.shapes + [(rows: 45, columns: 99)] {
      let weight = Matrix(rows: shape.rows, columns: shape.columns, type: .bf16, random: &random, byteOffset: 4)
      let biasValues = (0..<shape.rows).map { _ in random.signedUnit() }
      let scratch = LinearScratch(threadCount: 2, maxColumns: shape.columns, bf16: true, maxRows: 32)
      #expect(scratch.activations == .rounded)
      for tokens in [1, 8, 13, 32, 41, 77] {
        let stride = shape.columns + 5
        let input = (0..<(tokens * stride)).map { _ in random.signedUnit() }
        var fast = [Float](repeating: .nan, count: tokens * shape.rows)
        var rounded = fast, exact = fast
        biasValues.withUnsafeBytes { biasBytes in
          let bias = WeightVector(base: biasBytes.baseAddress!, count: shape.rows, elementType: .f32)
          input.withUnsafeBufferPointer { x in
            func job(_ y: UnsafeMutableBufferPointer<Float>) -> LinearJob {
              LinearJob(weight: weight.matrix, bias: bias, output: y.baseAddress!, outputStride: shape.rows)
            }
            fast.withUnsafeMutableBufferPointer {
              Linear.run([job($0)], input: x.baseAddress!, inputStride: stride, tokens: tokens, pool: pool, scratch: scratch, path: .tiled)
            }
            rounded.withUnsafeMutableBufferPointer {
              Linear.reference(job($0), input: x.baseAddress!, inputStride: stride, tokens: tokens, activations: .rounded)
            }
            exact.withUnsafeMutableBufferPointer {
              Linear.reference(job($0), input: x.baseAddress!, inputStride: stride, tokens: tokens)
            }
          }
        }
        // As `matchesReference`: f32 sums of ≤ 256 products in [−1, 1] (each exact in f32, as
        // bf16 × bf16 is).
        let worst = zip(fast, rounded).map { abs($0 - $1) }.max() ?? .nan
        #expect(worst < 1e-4, "\(shape) tokens \(tokens): max |Δ| \(worst)")
        exactWorst = max(exactWorst, zip(fast, exact).map { abs($0 - $1) }.max() ?? .nan)
      }
    }
    // Rounding inputs to bf16 moves each product by up to 2⁻⁹ of itself.
    #expect(exactWorst > 1e-3, "the bf16 tile's outputs are as close to the exact product as \(exactWorst)")
  }

  /// One call, three weight types: with room for bf16 rows and `.rounded` activations, a call
  /// that mixes types runs exact (the bf16 tile takes calls that are all bf16).
  @Test func severalJobsShareOneInput() {
    var random = TestRandom(seed: 11)
    let pool = ThreadPool(threadCount: 2)
    let a = Matrix(rows: 64, columns: 96, type: .bf16, random: &random)
    let b = Matrix(rows: 32, columns: 96, type: .f16, random: &random)
    let c = Matrix(rows: 40, columns: 96, type: .f32, random: &random)
    let scratch = LinearScratch(threadCount: 2, maxColumns: 96, bf16: true)
    for tokens in [1, 6, 40] {
      let input = (0..<(tokens * 96)).map { _ in random.signedUnit() }
      var outputs = [a, b, c].map { [Float](repeating: .nan, count: tokens * $0.matrix.rows) }
      input.withUnsafeBufferPointer { x in
        let pointers = outputs.indices.map { i in
          UnsafeMutablePointer<Float>.allocate(capacity: outputs[i].count)
        }
        defer { pointers.forEach { $0.deallocate() } }
        let matrices = [a, b, c]
        Linear.run(
          matrices.indices.map { LinearJob(weight: matrices[$0].matrix, output: pointers[$0], outputStride: matrices[$0].matrix.rows) },
          input: x.baseAddress!, inputStride: 96, tokens: tokens, pool: pool, scratch: scratch)
        for i in matrices.indices {
          var expected = [Float](repeating: 0, count: outputs[i].count)
          expected.withUnsafeMutableBufferPointer { y in
            Linear.reference(LinearJob(weight: matrices[i].matrix, output: y.baseAddress!, outputStride: matrices[i].matrix.rows), input: x.baseAddress!, inputStride: 96, tokens: tokens)
          }
          outputs[i] = Array(UnsafeBufferPointer(start: pointers[i], count: outputs[i].count))
          let worst = zip(outputs[i], expected).map { abs($0 - $1) }.max() ?? .nan
          #expect(worst < 1e-4, "job \(i) tokens \(tokens): max |Δ| \(worst)")
        }
      }
    }
  }
}
