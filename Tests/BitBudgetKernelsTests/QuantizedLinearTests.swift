import BitBudgetTestSupport
import Foundation
import Testing

@testable import BitBudgetKernels

/// The quantized linear kernels against the scalar definition over the dequantized weights
/// (`scale · (code − zero)`, accumulated in Double), for 4 and 8 bits, symmetric and asymmetric,
/// groups of 32 and groups that do and do not divide the width, act-order input orders, both
/// paths, f32 and (where the build has them) int8 activations, and token counts that exercise
/// every kernel and remainder.
@Suite struct QuantizedLinearTests {
  /// A random dense f32 matrix and its RTN quantization.
  final class Quantized {
    let values: [Float]
    let storage: QuantizedMatrixStorage

    init(rows: Int, columns: Int, _ quantization: WeightQuantization, random: inout TestRandom, shuffled: Bool = false) {
      // Rows of different magnitudes, as real weights have.
      values = (0..<(rows * columns)).map { i in random.signedUnit() * Float(1 + (i / columns) % 5) * 0.1 }
      let dense = values.withUnsafeBytes {
        WeightQuantizer.roundToNearest(
          DenseMatrix(base: $0.baseAddress!, rows: rows, columns: columns, elementType: .f32), quantization)
      }
      guard shuffled else {
        storage = dense
        return
      }
      // The same codes with stored columns in a random input order (as act-order checkpoints).
      var order = Array(0..<columns)
      order.shuffle(using: &random)
      let m = dense.matrix
      storage = QuantizedMatrixStorage(
        rows: rows, columns: columns, bits: m.bits, groupSize: m.groupSize, form: m.form, reordersInput: true
      ) { codes, parameters, inputOrder in
        for j in 0..<columns { inputOrder![j] = Int32(order[j]) }
        for r in 0..<rows {
          for j in 0..<columns {
            QuantizedMatrix.setCode(m.code(row: r, column: j), column: j, bits: m.bits, in: codes + r * m.rowBytes)
          }
        }
        // Row-major parameters, as every producer writes them (a row-blocked source is read through
        // `parameters(row:group:)`, exact: its scales are f16).
        if case .scale = m.form {
          for r in 0..<rows {
            for g in 0..<m.groups { parameters[r * m.groups + g] = floatToF16(m.parameters(row: r, group: g).scale) }
          }
        } else {
          for i in 0..<(rows * m.parameterRowBytes / 2) { parameters[i] = m.groupParameters.load(fromByteOffset: 2 * i, as: UInt16.self) }
        }
      }
    }

    var matrix: QuantizedMatrix { storage.matrix }
  }

  static let cases: [(rows: Int, columns: Int, quantization: WeightQuantization)] = [
    (37, 576, WeightQuantization(bits: 4, groupSize: 128)),
    (70, 128, WeightQuantization(bits: 8, groupSize: 64)),
    (33, 256, WeightQuantization(bits: 4, groupSize: nil, symmetric: false)),
    (64, 384, WeightQuantization(bits: 8, groupSize: 128, symmetric: false)),
    (45, 192, WeightQuantization(bits: 4, groupSize: 32)),
    (36, 320, WeightQuantization(bits: 8, groupSize: 32, symmetric: false)),
  ]
  /// The activation kinds this build runs.
  static let activations = LinearActivations.allCases.filter { $0 == .exact || LinearActivations.roundedAvailable }

  /// The activations a run of `m` on `path` multiplies: with the AVX2 int8 kernels only
  /// row-blocked weights in streaming runs are rounded; with VNNI every quantized weight.
  static func effective(_ activations: LinearActivations, _ m: QuantizedMatrix, _ path: Linear.Path) -> LinearActivations {
    guard activations == .rounded, !LinearActivations.int8Available else { return activations }
    return m.rowBlocked && path == .streaming ? .rounded : .exact
  }
  static let tokenCounts = [1, 2, 3, 4, 5, 8, 9, 13, 17, 32, 41]

  static func run(
    _ job: (UnsafeMutablePointer<Float>) -> LinearJob, rows: Int, input: [Float], stride: Int, tokens: Int,
    pool: ThreadPool, scratch: LinearScratch, path: Linear.Path?, activations: LinearActivations = .exact
  ) -> [Float] {
    var y = [Float](repeating: .nan, count: tokens * rows)
    input.withUnsafeBufferPointer { x in
      y.withUnsafeMutableBufferPointer { out in
        if let path {
          Linear.run([job(out.baseAddress!)], input: x.baseAddress!, inputStride: stride, tokens: tokens, pool: pool, scratch: scratch, path: path)
        } else {
          Linear.reference(job(out.baseAddress!), input: x.baseAddress!, inputStride: stride, tokens: tokens, activations: activations)
        }
      }
    }
    return y
  }

  @Test(arguments: [Linear.Path.streaming, .tiled], [false, true])
  func matchesReference(path: Linear.Path, shuffled: Bool) {
    var random = TestRandom(seed: 5)
    let pool = ThreadPool(threadCount: 2)
    for c in Self.cases {
      let weight = Quantized(rows: c.rows, columns: c.columns, c.quantization, random: &random, shuffled: shuffled)
      // Symmetric 4/8-bit cases run the row-block kernels (two or more blocks and a tail).
      #expect(weight.matrix.rowBlocked == (LinearActivations.int8RowBlocksAvailable && c.quantization.symmetric))
      let bias = (0..<c.rows).map { _ in random.signedUnit() }
      let scratch = LinearScratch(threadCount: 2, maxColumns: c.columns, quantized: true)
      for activations in Self.activations {
        scratch.activations = activations
        for tokens in Self.tokenCounts {
          let stride = c.columns + 5
          let input = (0..<(tokens * stride)).map { _ in random.signedUnit() }
          bias.withUnsafeBytes { b in
            let biasVector = WeightVector(base: b.baseAddress!, count: c.rows, elementType: .f32)
            let job = { (out: UnsafeMutablePointer<Float>) in
              LinearJob(weight: .quantized(weight.matrix), bias: biasVector, output: out, outputStride: c.rows)
            }
            let fast = Self.run(job, rows: c.rows, input: input, stride: stride, tokens: tokens, pool: pool, scratch: scratch, path: path)
            let slow = Self.run(
              job, rows: c.rows, input: input, stride: stride, tokens: tokens, pool: pool, scratch: scratch, path: nil,
              activations: Self.effective(activations, weight.matrix, path))
            // f32 sums of ≤ 576 products of magnitude ≤ 0.5: rounding error ≲ 576 · 2⁻²⁴ · 0.5 · √576
            // ≈ 4e-4 at worst, typically 1e-5; one wrong code moves an output by ≥ one step (≥ 1e-3),
            // and so does one int8 input rounded the other way (≥ 1/254 of a block's largest input
            // times a weight ≥ 0.1 · 2⁻⁸).
            let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? .nan
            #expect(worst < 2e-4, "\(c.quantization) \(path) \(activations) shuffled \(shuffled) tokens \(tokens): max |Δ| \(worst)")
          }
        }
      }
    }
  }

  /// `Linear.run` without a forced path: prompts of row-blocked weights stream through the int8
  /// kernels (where the AVX2 ones are built), and a call that mixes row-blocked and other
  /// weights gives each job its own prepared input and kernel (its prompt takes the tile).
  @Test func unforcedRunsPickEachWeightsKernel() {
    var random = TestRandom(seed: 21)
    let pool = ThreadPool(threadCount: 2)
    let (rows, columns) = (40, 256)
    let blocked = Quantized(rows: rows, columns: columns, WeightQuantization(bits: 4, groupSize: 64), random: &random)
    let other = Quantized(rows: rows, columns: columns, WeightQuantization(bits: 4, groupSize: 64, symmetric: false), random: &random)
    let scratch = LinearScratch(threadCount: 2, maxColumns: columns, quantized: true)
    for activations in Self.activations {
      scratch.activations = activations
      for tokens in [3, Linear.tiledMinimumTokens + 8] {
        let input = (0..<(tokens * columns)).map { _ in random.signedUnit() }
        for weights in [[blocked], [blocked, other]] {
          let outputs = weights.map { _ in UnsafeMutablePointer<Float>.allocate(capacity: tokens * rows) }
          defer { outputs.forEach { $0.deallocate() } }
          let jobs = zip(weights, outputs).map { LinearJob(weight: .quantized($0.matrix), output: $1, outputStride: rows) }
          let streams = Linear.streamsPrompts(jobs, scratch: scratch)
          #expect(streams == (LinearActivations.int8RowBlocksAvailable && activations == .rounded && weights.count == 1))
          input.withUnsafeBufferPointer { x in
            Linear.run(jobs, input: x.baseAddress!, inputStride: columns, tokens: tokens, pool: pool, scratch: scratch)
          }
          let path: Linear.Path = tokens >= Linear.tiledMinimumTokens && !streams ? .tiled : .streaming
          for (weight, output) in zip(weights, outputs) {
            let job = { (out: UnsafeMutablePointer<Float>) in LinearJob(weight: .quantized(weight.matrix), output: out, outputStride: rows) }
            let slow = Self.run(
              job, rows: rows, input: input, stride: columns, tokens: tokens, pool: pool, scratch: scratch, path: nil,
              activations: Self.effective(activations, weight.matrix, path))
            let worst = (0..<(tokens * rows)).map { abs(output[$0] - slow[$0]) }.max() ?? .nan
            #expect(worst < 2e-4, "\(activations) \(tokens) tokens, \(weights.count) jobs, blocked \(weight.matrix.rowBlocked): max |Δ| \(worst)")
          }
        }
      }
    }
  }

  /// The int8 path differs from the exact one only by rounding the inputs: by less than
  /// half an int8 step of each block's largest input per weight.
  @Test(.enabled(if: LinearActivations.int8Available)) func int8StaysNearTheExactProduct() {
    var random = TestRandom(seed: 11)
    let pool = ThreadPool(threadCount: 2)
    for c in Self.cases {
      let weight = Quantized(rows: c.rows, columns: c.columns, c.quantization, random: &random)
      let scratch = LinearScratch(threadCount: 2, maxColumns: c.columns, quantized: true)
      let input = (0..<c.columns).map { _ in random.signedUnit() }
      let job = { (out: UnsafeMutablePointer<Float>) in LinearJob(weight: .quantized(weight.matrix), output: out, outputStride: c.rows) }
      scratch.activations = .rounded
      let int8 = Self.run(job, rows: c.rows, input: input, stride: c.columns, tokens: 1, pool: pool, scratch: scratch, path: .streaming)
      let exact = Self.run(job, rows: c.rows, input: input, stride: c.columns, tokens: 1, pool: pool, scratch: scratch, path: nil)
      for r in 0..<c.rows {
        // |Δ| ≤ Σ_c |w_c| · step/2 with step ≤ 1/127 (inputs in [−1, 1]).
        let bound = (0..<c.columns).map { abs(weight.matrix.dequantized(row: r, column: $0)) }.reduce(0, +) / 254 + 1e-4
        #expect(abs(int8[r] - exact[r]) <= bound, "\(c.quantization) row \(r): \(int8[r]) vs \(exact[r])")
      }
      #expect(int8 != exact, "\(c.quantization): the int8 path changed nothing — is it running?")
    }
  }

  /// The int8 quantizer of the kernels equals its scalar definition, including all-zero blocks.
  @Test(.enabled(if: LinearActivations.int8Available)) func int8InputsFollowTheScalarQuantizer() {
    var random = TestRandom(seed: 12)
    for (columns, group) in [(128, 32), (192, 128)] {
      var input = (0..<columns).map { _ in random.signedUnit() * 3 }
      for i in 32..<64 { input[i] = 0 }
      input[70] = -3.5
      let weight = Quantized(rows: 1, columns: columns, WeightQuantization(bits: 8, groupSize: group), random: &random)
      let scratch = LinearScratch(threadCount: 1, maxColumns: columns, quantized: true)
      scratch.activations = .rounded
      let pool = ThreadPool(threadCount: 1)
      let job = { (out: UnsafeMutablePointer<Float>) in LinearJob(weight: .quantized(weight.matrix), output: out, outputStride: 1) }
      _ = Self.run(job, rows: 1, input: input, stride: columns, tokens: 1, pool: pool, scratch: scratch, path: .streaming)
      let prepared = scratch.int8Inputs[0]
      input.withUnsafeBufferPointer { x in
        for block in 0..<(columns / 32) {
          let (scale, codes) = Int8Input.quantize(block: x.baseAddress! + 32 * block)
          #expect((0..<32).map { prepared.codes[32 * block + $0] } == codes, "block \(block)")
          #expect(prepared.scales[block / 2 * 16 + block % 2 * 8] == scale, "block \(block)")
        }
      }
    }
  }

  /// Max |fast − reference| and max |reference| of `m` on random inputs of 1, 3, 8 and 37 tokens,
  /// for the tiled path (f32) and the streaming path with each activation kind this build runs
  /// (against the int8 definition for int8), labelled by path, activations and tokens.
  static func everyPathAgainstReference(
    _ m: QuantizedMatrix, random: inout TestRandom, pool: ThreadPool
  ) -> [(label: String, worst: Float, scale: Float)] {
    let scratch = LinearScratch(threadCount: 2, maxColumns: m.columns, quantized: true)
    var results: [(String, Float, Float)] = []
    for (path, activations) in [Linear.Path.tiled, .streaming].flatMap({ path in Self.activations.map { (path, $0) } }) {
      scratch.activations = activations
      for tokens in [1, 3, 8, 37] {
        let input = (0..<(tokens * m.columns)).map { _ in random.signedUnit() }
        let job = { (out: UnsafeMutablePointer<Float>) in LinearJob(weight: .quantized(m), output: out, outputStride: m.rows) }
        let fast = Self.run(job, rows: m.rows, input: input, stride: m.columns, tokens: tokens, pool: pool, scratch: scratch, path: path)
        let slow = Self.run(
          job, rows: m.rows, input: input, stride: m.columns, tokens: tokens, pool: pool, scratch: scratch, path: nil,
          activations: Self.effective(activations, m, path))
        results.append((
          "\(path) \(activations) \(tokens) tokens", zip(fast, slow).map { abs($0 - $1) }.max() ?? .nan, slow.map(abs).max() ?? 1))
      }
    }
    return results
  }

  /// The GGUF parameter forms (one zero for the matrix; scale and minimum), with random codes
  /// and f16 parameters, on every path against the reference.
  @Test(arguments: [
    (QuantizedMatrix.GroupParameters.scale(zero: 8), 4), (.scale(zero: 128), 8), (.scaleAndMinimum, 4), (.scaleAndMinimum, 8),
  ])
  func groupParameterFormsMatchReference(form: QuantizedMatrix.GroupParameters, bits: Int) {
    var random = TestRandom(seed: 13)
    let pool = ThreadPool(threadCount: 2)
    let (rows, columns) = (23, 192)
    for groupSize in [32, 64] {
      let storage = QuantizedMatrixStorage(rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, reordersInput: false) {
        codes, parameters, _ in
        for r in 0..<rows {
          for c in 0..<columns {
            QuantizedMatrix.setCode(Int(random.next() % UInt64(1 << bits)), column: c, bits: bits, in: codes + r * columns * bits / 8)
          }
        }
        let perGroup = form.byteCount / 2
        for i in 0..<(rows * columns / groupSize) {
          parameters[i * perGroup] = Float16(0.01 + abs(random.signedUnit()) * 0.05).bitPattern
          if perGroup == 2 { parameters[i * perGroup + 1] = Float16(random.signedUnit() * 0.3).bitPattern }
        }
      }
      #expect(storage.matrix.byteCount == rows * columns * bits / 8 + rows * columns / groupSize * form.byteCount)
      for (label, worst, _) in Self.everyPathAgainstReference(storage.matrix, random: &random, pool: pool) {
        #expect(worst < 2e-4, "\(form) \(bits)-bit g\(groupSize) \(label): max |Δ| \(worst)")
      }
      for activations in Self.activations {
        #expect(Self.batchDependentCounts(storage.matrix, activations: activations, random: &random, pool: pool) == [])
      }
      // The documented formulas.
      let m = storage.matrix
      let (scale, second) = m.parameters(row: 5, group: 1)
      let code = Float(m.code(row: 5, column: groupSize + 3))
      #expect(m.dequantized(row: 5, column: groupSize + 3) == (form == .scaleAndMinimum ? code * scale + second : (code - second) * scale))
    }
  }

  /// A matrix in a GGUF form with random codes and random raw parameter bytes (sane f16
  /// factors; 6-bit scales and minima, int8 scales as they come), built over `pool`; also the
  /// codes and the row-major parameter bytes as written, before any row blocks.
  static func ggufMatrix(
    form: QuantizedMatrix.GroupParameters, bits: Int, groupSize: Int, rows: Int, columns: Int, random: inout TestRandom, pool: ThreadPool? = nil
  ) -> (storage: QuantizedMatrixStorage, codes: [Int], parameters: [UInt8]) {
    var madeCodes = [Int](), written = [UInt8]()
    let storage = QuantizedMatrixStorage(rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, reordersInput: false, pool: pool) {
      codes, parameters, _ in
      for r in 0..<rows {
        for c in 0..<columns {
          madeCodes.append(Int(random.next() % UInt64(1 << bits)))
          QuantizedMatrix.setCode(madeCodes.last!, column: c, bits: bits, in: codes + r * columns * bits / 8)
        }
      }
      let bytes = UnsafeMutableRawPointer(parameters)
      let rowBytes = form.rowBytes(columns: columns, groupSize: groupSize)
      for i in 0..<(rows * rowBytes) { bytes.storeBytes(of: UInt8(truncatingIfNeeded: random.next()), toByteOffset: i, as: UInt8.self) }
      // Sane f16 factors where the form has them (random bytes could be NaN or huge).
      for header in stride(from: 0, to: rows * rowBytes, by: form.byteCount) {
        let p = bytes + header
        switch form {
        case .superBlockScaleAndMinimum:
          p.storeBytes(of: Float16(0.0005 + abs(random.signedUnit()) * 0.005).bitPattern, as: UInt16.self)
          p.storeBytes(of: Float16(0.0005 + abs(random.signedUnit()) * 0.005).bitPattern, toByteOffset: 2, as: UInt16.self)
        case .superBlockScale:
          p.storeBytes(of: Float16(0.0005 + abs(random.signedUnit()) * 0.005).bitPattern, as: UInt16.self)
        default:
          p.storeBytes(of: Float16(0.01 + abs(random.signedUnit()) * 0.05).bitPattern, as: UInt16.self)
          if form.byteCount == 4 { p.storeBytes(of: Float16(random.signedUnit() * 0.3).bitPattern, toByteOffset: 2, as: UInt16.self) }
        }
      }
      written = Array(UnsafeRawBufferPointer(start: bytes, count: rows * rowBytes))
    }
    return (storage, madeCodes, written)
  }

  /// The GGUF forms with 5- and 6-bit codes (bit planes) and the k-quants' super-blocks, with
  /// random codes and random raw headers (6-bit scales and minima, int8 scales), on every path
  /// against the reference — and the documented formulas. 39 rows: two row blocks and 7 rows
  /// past them.
  @Test(arguments: [
    (QuantizedMatrix.GroupParameters.scale(zero: 16), 5, 32), (.scaleAndMinimum, 5, 32), (.superBlockScaleAndMinimum, 4, 32),
    (.superBlockScaleAndMinimum, 5, 32), (.superBlockScale, 6, 16),
  ])
  func ggufFormsMatchReference(form: QuantizedMatrix.GroupParameters, bits: Int, groupSize: Int) {
    var random = TestRandom(seed: 17)
    let pool = ThreadPool(threadCount: 2)
    let (rows, columns) = (39, 512)
    let (storage, madeCodes, written) = Self.ggufMatrix(form: form, bits: bits, groupSize: groupSize, rows: rows, columns: columns, random: &random)
    #expect(storage.matrix.rowBlocked == LinearActivations.int8RowBlocksAvailable)
    #expect((0..<rows).allSatisfy { r in (0..<columns).allSatisfy { storage.matrix.code(row: r, column: $0) == madeCodes[r * columns + $0] } })
    // Their prompts stream through the int8 kernels where those are built, as 4/8-bit ones do.
    let scratch = LinearScratch(threadCount: 2, maxColumns: columns, quantized: true)
    scratch.activations = .rounded
    let output = UnsafeMutablePointer<Float>.allocate(capacity: rows)
    defer { output.deallocate() }
    #expect(
      Linear.streamsPrompts([LinearJob(weight: .quantized(storage.matrix), output: output, outputStride: rows)], scratch: scratch)
        == LinearActivations.int8RowBlocksAvailable)
    #expect(storage.matrix.byteCount == rows * (columns * bits / 8 + form.rowBytes(columns: columns, groupSize: groupSize)))
    for (label, worst, scale) in Self.everyPathAgainstReference(storage.matrix, random: &random, pool: pool) {
      #expect(worst <= 1e-5 * scale + 1e-6, "\(form) \(bits)-bit \(label): max |Δ| \(worst) of \(scale)")
    }
    for activations in Self.activations {
      #expect(Self.batchDependentCounts(storage.matrix, activations: activations, random: &random, pool: pool) == [])
    }
    // The documented formulas, from the bytes as written (rows 0–31 are row-blocked where the
    // AVX2 int8 kernels are built).
    let m = storage.matrix
    for (row, column) in [(0, 0), (5, 100), (22, 511), (13, 300), (15, 257), (16, 31), (31, 480), (38, 200)] {
      let code = Float(m.code(row: row, column: column))
      let expected: Float = written.withUnsafeBytes { raw in
        let header = raw.baseAddress! + row * m.parameterRowBytes
        func f16(_ offset: Int) -> Float { Float(Float16(bitPattern: header.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) }
        switch form {
        case .superBlockScaleAndMinimum:
          let block = column / 256 * 16, j = column % 256 / 32
          // 6-bit fields: scale j at bit 6j of bytes 4–9, minimum j at bit 6j of bytes 10–15.
          func field(_ start: Int) -> Float {
            var value = 0
            for bit in 0..<6 { value |= Int(header.load(fromByteOffset: block + start + (6 * j + bit) / 8, as: UInt8.self) >> UInt8((6 * j + bit) % 8) & 1) << bit }
            return Float(value)
          }
          return f16(block) * field(4) * code - f16(block + 2) * field(10)
        case .superBlockScale:
          let block = column / 256 * 18
          return f16(block) * Float(header.load(fromByteOffset: block + 2 + column % 256 / 16, as: Int8.self)) * (code - 32)
        case .scale(let zero):
          return (code - Float(zero)) * f16(column / groupSize * 2)
        default:
          return code * f16(column / groupSize * 4) + f16(column / groupSize * 4 + 2)
        }
      }
      #expect(m.dequantized(row: row, column: column) == expected, "\(form) (\(row), \(column))")
    }
  }

  /// One call of several GGUF forms of one input width, as a Q4_K_M file's layers make (Q4_K,
  /// Q6_K, Q5_0, Q8_0 sharing the prepared input), and over a loader's pool: each job equals the
  /// reference, on both paths and every activation kind.
  @Test func ggufFormsShareOneCall() {
    var random = TestRandom(seed: 23)
    let pool = ThreadPool(threadCount: 2)
    let (rows, columns) = (300, 256)  // > 256 rows: the row blocks are rearranged in two tasks
    let forms: [(QuantizedMatrix.GroupParameters, Int, Int)] = [
      (.superBlockScaleAndMinimum, 4, 32), (.superBlockScale, 6, 16), (.scale(zero: 16), 5, 32), (.scale(zero: 128), 8, 32),
    ]
    let made = forms.map { Self.ggufMatrix(form: $0.0, bits: $0.1, groupSize: $0.2, rows: rows, columns: columns, random: &random, pool: pool) }
    for (storage, codes, _) in made {
      #expect((0..<rows).allSatisfy { r in (0..<columns).allSatisfy { storage.matrix.code(row: r, column: $0) == codes[r * columns + $0] } })
    }
    let scratch = LinearScratch(threadCount: 2, maxColumns: columns, quantized: true)
    for activations in Self.activations {
      scratch.activations = activations
      for (tokens, path) in [(1, Linear.Path.streaming), (3, .streaming), (Linear.tiledMinimumTokens + 3, nil)] {
        let input = (0..<(tokens * columns)).map { _ in random.signedUnit() }
        let outputs = made.map { _ in UnsafeMutablePointer<Float>.allocate(capacity: tokens * rows) }
        defer { outputs.forEach { $0.deallocate() } }
        let jobs = zip(made, outputs).map { LinearJob(weight: .quantized($0.storage.matrix), output: $1, outputStride: rows) }
        input.withUnsafeBufferPointer { x in
          Linear.run(jobs, input: x.baseAddress!, inputStride: columns, tokens: tokens, pool: pool, scratch: scratch, path: path)
        }
        let taken: Linear.Path = path ?? (Linear.streamsPrompts(jobs, scratch: scratch) ? .streaming : .tiled)
        for ((storage, _, _), output) in zip(made, outputs) {
          let m = storage.matrix
          let job = { (out: UnsafeMutablePointer<Float>) in LinearJob(weight: .quantized(m), output: out, outputStride: rows) }
          let slow = Self.run(
            job, rows: rows, input: input, stride: columns, tokens: tokens, pool: pool, scratch: scratch, path: nil,
            activations: Self.effective(activations, m, taken))
          let worst = (0..<(tokens * rows)).map { abs(output[$0] - slow[$0]) }.max() ?? .nan
          let scale = slow.map(abs).max() ?? 1
          #expect(worst <= 1e-5 * scale + 1e-6, "\(m.form) \(activations) \(tokens) tokens: max |Δ| \(worst) of \(scale)")
        }
      }
    }
  }

  /// The row-block kernels' integer sums at their bounds: every code at its largest, every input
  /// at ±127 in int8 (one sign per token), Q6_K's scales at −128 and Q4_K's 6-bit fields at 63 —
  /// the 16-bit pair sums must not saturate.
  @Test func rowBlockSumsAtTheirBoundsMatchReference() {
    let pool = ThreadPool(threadCount: 2)
    let (rows, columns) = (16, 512)
    let forms: [(QuantizedMatrix.GroupParameters, Int, Int)] = [
      (.scale(zero: 8), 4, 32), (.scale(zero: 16), 5, 32), (.scaleAndMinimum, 5, 32), (.scale(zero: 128), 8, 32),
      (.superBlockScaleAndMinimum, 4, 32), (.superBlockScaleAndMinimum, 5, 32), (.superBlockScale, 6, 16),
    ]
    for (form, bits, groupSize) in forms {
      for largest in [true, false] {  // codes at the top, or at 0 (8-bit: −128 as a signed weight)
        let storage = QuantizedMatrixStorage(rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: form, reordersInput: false) {
          codes, parameters, _ in
          for r in 0..<rows {
            for c in 0..<columns { QuantizedMatrix.setCode(largest ? (1 << bits) - 1 : 0, column: c, bits: bits, in: codes + r * columns * bits / 8) }
          }
          let bytes = UnsafeMutableRawPointer(parameters), rowBytes = form.rowBytes(columns: columns, groupSize: groupSize)
          for header in stride(from: 0, to: rows * rowBytes, by: form.byteCount) {
            let p = bytes + header
            switch form {
            case .superBlockScaleAndMinimum:
              p.storeBytes(of: Float16(0.001).bitPattern, as: UInt16.self)
              p.storeBytes(of: Float16(0.002).bitPattern, toByteOffset: 2, as: UInt16.self)
              for i in 4..<16 { p.storeBytes(of: UInt8(0xFF), toByteOffset: i, as: UInt8.self) }
            case .superBlockScale:
              p.storeBytes(of: Float16(0.001).bitPattern, as: UInt16.self)
              for i in 2..<18 { p.storeBytes(of: UInt8(0x80), toByteOffset: i, as: UInt8.self) }
            default:
              p.storeBytes(of: Float16(0.01).bitPattern, as: UInt16.self)
              if form.byteCount == 4 { p.storeBytes(of: Float16(-0.1).bitPattern, toByteOffset: 2, as: UInt16.self) }
            }
          }
        }
        let m = storage.matrix
        let scratch = LinearScratch(threadCount: 2, maxColumns: columns, quantized: true)
        for activations in Self.activations {
          scratch.activations = activations
          // 5 tokens of alternating sign: a pass of 4 and one of 1.
          let tokens = 5
          let input = (0..<tokens).flatMap { t in [Float](repeating: t % 2 == 0 ? 1 : -1, count: columns) }
          let job = { (out: UnsafeMutablePointer<Float>) in LinearJob(weight: .quantized(m), output: out, outputStride: rows) }
          let fast = Self.run(job, rows: rows, input: input, stride: columns, tokens: tokens, pool: pool, scratch: scratch, path: .streaming)
          let slow = Self.run(
            job, rows: rows, input: input, stride: columns, tokens: tokens, pool: pool, scratch: scratch, path: nil,
            activations: Self.effective(activations, m, .streaming))
          let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? .nan, scale = slow.map(abs).max() ?? 1
          #expect(worst <= 1e-5 * scale + 1e-6, "\(form) \(bits)-bit, codes \(largest ? "largest" : "0"), \(activations): max |Δ| \(worst) of \(scale)")
        }
      }
    }
  }

  /// Row blocks (4-, 5- and 8-bit codes with one zero, where the int8 kernels are built) keep
  /// every code and scale of the row-major layout they are made from: whole blocks interleaved
  /// (at 5 bits with their planes), the rows past the last whole block in place; other forms
  /// and short matrices stay row-major.
  @Test(arguments: [4, 5, 8], [32, 128, 256])
  func rowBlocksKeepEveryCodeAndScale(bits: Int, groupSize: Int) {
    let (rows, columns) = (37, 256)
    let code = { (r: Int, c: Int) in (r * 7 + c * 3 + r * c / 5) % (1 << bits) }
    let scale = { (r: Int, g: Int) in Float(r + 1) / 64 + Float(g) / 1024 }
    let groups = columns / groupSize
    let storage = QuantizedMatrixStorage(rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: .scale(zero: 1 << (bits - 1)), reordersInput: false) {
      codes, parameters, _ in
      for r in 0..<rows {
        for c in 0..<columns { QuantizedMatrix.setCode(code(r, c), column: c, bits: bits, in: codes + r * columns * bits / 8) }
        for g in 0..<groups { parameters[r * groups + g] = floatToF16(scale(r, g)) }
      }
    }
    let m = storage.matrix
    #expect(m.rowBlocked == LinearActivations.int8RowBlocksAvailable)
    #expect(m.blockedRows == (LinearActivations.int8RowBlocksAvailable ? 32 : 0))
    var wrong = 0
    for r in 0..<rows {
      for c in 0..<columns where m.code(row: r, column: c) != code(r, c) { wrong += 1 }
      for g in 0..<groups where m.parameters(row: r, group: g).scale != Float(Float16(scale(r, g))) { wrong += 1 }
    }
    #expect(wrong == 0)
    if bits != 5 {  // (scale, zero) pairs come with 4 and 8 bits only
      let asymmetric = QuantizedMatrixStorage(rows: rows, columns: columns, bits: bits, groupSize: groupSize, reordersInput: false) { _, _, _ in }
      #expect(!asymmetric.matrix.rowBlocked)
    }
    let short = QuantizedMatrixStorage(rows: 15, columns: columns, bits: bits, groupSize: groupSize, form: .scale(zero: 1 << (bits - 1)), reordersInput: false) { _, _, _ in }
    #expect(!short.matrix.rowBlocked)
    // Scale and minimum (GGUF Q4_1, Q5_1): 4- and 5-bit codes; both parameters kept.
    let minimum = { (r: Int, g: Int) in -Float(r) / 32 - Float(g) / 512 }
    let withMinimum = QuantizedMatrixStorage(rows: rows, columns: columns, bits: bits, groupSize: groupSize, form: .scaleAndMinimum, reordersInput: false) {
      codes, parameters, _ in
      for r in 0..<rows {
        for c in 0..<columns { QuantizedMatrix.setCode(code(r, c), column: c, bits: bits, in: codes + r * columns * bits / 8) }
        for g in 0..<groups { (parameters[2 * (r * groups + g)], parameters[2 * (r * groups + g) + 1]) = (floatToF16(scale(r, g)), floatToF16(minimum(r, g))) }
      }
    }
    let q = withMinimum.matrix
    #expect(q.rowBlocked == (LinearActivations.int8RowBlocksAvailable && bits != 8))
    wrong = 0
    for r in 0..<rows {
      for c in 0..<columns where q.code(row: r, column: c) != code(r, c) { wrong += 1 }
      for g in 0..<groups where q.parameters(row: r, group: g) != (Float(Float16(scale(r, g))), Float(Float16(minimum(r, g)))) { wrong += 1 }
    }
    #expect(wrong == 0)
  }

  /// `packRow` writes the bytes `setCode` writes column by column, and `code` and `unpackRow`
  /// read them back.
  @Test(arguments: [4, 5, 6, 8])
  func packRowEqualsSetCode(bits: Int) {
    var random = TestRandom(seed: UInt64(bits))
    let columns = 192
    let codes = (0..<columns).map { _ in UInt8(random.next() % UInt64(1 << bits)) }
    let rowBytes = columns * bits / 8
    let packed = UnsafeMutableRawPointer.allocate(byteCount: rowBytes, alignment: 64), bySetCode = UnsafeMutableRawPointer.allocate(byteCount: rowBytes, alignment: 64)
    defer { packed.deallocate(); bySetCode.deallocate() }
    packed.initializeMemory(as: UInt8.self, repeating: 0xAA, count: rowBytes)
    bySetCode.initializeMemory(as: UInt8.self, repeating: 0, count: rowBytes)
    codes.withUnsafeBufferPointer { QuantizedMatrix.packRow($0.baseAddress!, columns: columns, bits: bits, into: packed) }
    for (c, code) in codes.enumerated() { QuantizedMatrix.setCode(Int(code), column: c, bits: bits, in: bySetCode) }
    #expect(memcmp(packed, bySetCode, rowBytes) == 0)
    let m = QuantizedMatrix(
      rows: 1, columns: columns, bits: bits, groupSize: 32, form: bits == 5 || bits == 6 ? .scale(zero: 16) : .scaleAndZero, codes: packed,
      groupParameters: packed, inputOrder: nil)
    #expect((0..<columns).map { UInt8(m.code(row: 0, column: $0)) } == codes)
    var unpacked = [UInt8](repeating: 0xFF, count: columns)
    unpacked.withUnsafeMutableBufferPointer { QuantizedMatrix.unpackRow(packed, columns: columns, bits: bits, into: $0.baseAddress!) }
    #expect(unpacked == codes)
  }

  /// Row t of a T-row streaming run equals, bit for bit, a run on row t alone.
  @Test(arguments: [false, true], Self.activations)
  func streamingOutputsDoNotDependOnTheBatch(shuffled: Bool, activations: LinearActivations) {
    var random = TestRandom(seed: 8)
    let pool = ThreadPool(threadCount: 2)
    for c in Self.cases {
      let weight = Quantized(rows: c.rows, columns: c.columns, c.quantization, random: &random, shuffled: shuffled)
      #expect(Self.batchDependentCounts(weight.matrix, activations: activations, random: &random, pool: pool) == [], "\(c.quantization)")
    }
  }

  /// The token counts `1...17` at which a streaming run's rows differ in any bit from runs on
  /// each row alone (the decode kernel takes one row at a time, batches four).
  static func batchDependentCounts(
    _ m: QuantizedMatrix, activations: LinearActivations, random: inout TestRandom, pool: ThreadPool
  ) -> [Int] {
    let scratch = LinearScratch(threadCount: 2, maxColumns: m.columns, quantized: true)
    scratch.activations = activations
    let tokens = 17
    let input = (0..<(tokens * m.columns)).map { _ in random.signedUnit() }
    let job = { (out: UnsafeMutablePointer<Float>) in LinearJob(weight: .quantized(m), output: out, outputStride: m.rows) }
    let alone = (0..<tokens).flatMap { t in
      Self.run(
        job, rows: m.rows, input: Array(input[(t * m.columns)..<((t + 1) * m.columns)]), stride: m.columns, tokens: 1, pool: pool,
        scratch: scratch, path: .streaming)
    }
    return (1...tokens).filter { count in
      let together = Self.run(
        job, rows: m.rows, input: Array(input.prefix(count * m.columns)), stride: m.columns, tokens: count, pool: pool,
        scratch: scratch, path: .streaming)
      return together.map(\.bitPattern) != alone.prefix(count * m.rows).map(\.bitPattern)
    }
  }

  /// Codes and parameters of the documented formulas: every stored value is within half a step
  /// of the original (inside the range), and the layout round-trips codes.
  @Test func roundToNearestFollowsGPTQsQuantizer() {
    // One row, two groups of 64: hand-checked parameters.
    var values = [Float](repeating: 0, count: 128)
    for i in 0..<64 { values[i] = Float(i - 32) / 32 }  // [−1, 0.97]
    for i in 64..<128 { values[i] = Float(i - 64) / 64 * 0.5 }  // [0, 0.49]: all non-negative
    let symStorage = values.withUnsafeBytes {
      WeightQuantizer.roundToNearest(DenseMatrix(base: $0.baseAddress!, rows: 1, columns: 128, elementType: .f32), WeightQuantization(bits: 4, groupSize: 64))
    }
    let sym = symStorage.matrix
    // Group 0: xmax = max(|−1|, 0.97) = 1, xmin = −1, scale = 2/15 (to f16), zero 8.
    #expect(sym.parameters(row: 0, group: 0).scale == Float(Float16(Float(2) / 15)))
    #expect(sym.parameters(row: 0, group: 0).zero == 8)
    // Group 1: xmin = 0 stays 0 (no negative values), scale = 0.4921875 / 15, zero still 8 —
    // AutoGPTQ's quirk, which clamps the top half of the range to code 15.
    #expect(sym.parameters(row: 0, group: 1).scale == Float(Float16(Float(0.4921875) / 15)))
    #expect(sym.code(row: 0, column: 127) == 15)
    #expect(sym.code(row: 0, column: 0) == 0)  // −1 / (2/15) = −7.5 → −8 (half to even) + 8
    let asymStorage = values.withUnsafeBytes {
      WeightQuantizer.roundToNearest(DenseMatrix(base: $0.baseAddress!, rows: 1, columns: 128, elementType: .f32), WeightQuantization(bits: 8, groupSize: 64, symmetric: false))
    }
    let asym = asymStorage.matrix
    for c in 0..<128 {
      let (scale, _) = asym.parameters(row: 0, group: c / 64)
      #expect(abs(asym.dequantized(row: 0, column: c) - values[c]) <= scale / 2 * 1.001, "column \(c)")
    }
    withExtendedLifetime((symStorage, asymStorage)) {}
    // Layout: setCode/code round-trip every position of both widths.
    // The documented positions: at 4 bits column 40 of the second chunk is the high nibble of
    // byte 32 + 8; at 8 bits every column is its own byte.
    #expect(QuantizedMatrix.codePosition(column: 104, bits: 4) == (byte: 40, shift: 4))
    #expect(QuantizedMatrix.codePosition(column: 65, bits: 4) == (byte: 33, shift: 0))
    #expect(QuantizedMatrix.codePosition(column: 77, bits: 8) == (byte: 77, shift: 0))
    for bits in [4, 8] {
      let bytes = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 64)
      defer { bytes.deallocate() }
      bytes.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
      let codes = (0..<256).map { ($0 * 7 + 3) % (1 << bits) }
      for c in 0..<256 { QuantizedMatrix.setCode(codes[c], column: c, bits: bits, in: bytes) }
      let m = QuantizedMatrix(rows: 1, columns: 256, bits: bits, groupSize: 64, codes: bytes, groupParameters: bytes, inputOrder: nil)
      #expect((0..<256).map { m.code(row: 0, column: $0) } == codes)
    }
  }
}
