// swift-tools-version:6.2
// 6.2, not lower: from tools version 6.2 on, SwiftPM accepts a package whose targets use
// `unsafeFlags` as a versioned dependency (`from: "…"`); at 6.0/6.1 it refuses it ("contains unsafe
// build flags"). The flags below are what the kernels need, so this line is what lets other
// packages depend on BitBudget by version.
import PackageDescription

/// Swift emits AVX2/AVX-512 for `SIMD16<Float>` only when it is told the target CPU; without it,
/// `addProduct` lowers to per-lane `fmaf` calls (≈35× slower). The default, `native`, builds for
/// the machine that compiles (and so picks the AVX-512 VNNI/BF16 kernels where it has them). To
/// build a binary for other machines, name their CPU: `BITBUDGET_TARGET_CPU=haswell swift build`
/// (AVX2+FMA; the VNNI/BF16 kernels are then left out and the portable SIMD kernels run). On
/// macOS the compiler's default CPU already has the SIMD the kernels use. The kernels are also
/// optimized in debug builds so that `swift test` runs real models in reasonable time.
let targetCPU = Context.environment["BITBUDGET_TARGET_CPU"].flatMap { $0.isEmpty ? nil : $0 } ?? "native"
let nativeCPU: [SwiftSetting] = [
  .unsafeFlags(["-target-cpu", targetCPU], .when(platforms: [.linux])),
]
let optimizedKernels: [SwiftSetting] =
  nativeCPU + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
  name: "BitBudget",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "bitbudget", targets: ["bitbudget"]),
    .library(name: "BitBudgetAnalysis", targets: ["BitBudgetAnalysis"]),
    .library(name: "BitBudgetEngine", targets: ["BitBudgetEngine"]),
    .library(name: "BitBudgetEval", targets: ["BitBudgetEval"]),
    .library(name: "BitBudgetHub", targets: ["BitBudgetHub"]),
    .library(name: "BitBudgetKernels", targets: ["BitBudgetKernels"]),
    .library(name: "BitBudgetLab", targets: ["BitBudgetLab"]),
    .library(name: "BitBudgetMemory", targets: ["BitBudgetMemory"]),
    .library(name: "BitBudgetServer", targets: ["BitBudgetServer"]),
    .library(name: "BitBudgetTokenizer", targets: ["BitBudgetTokenizer"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    // `swift package generate-documentation` (the DocC catalogs in Sources/*/*.docc).
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
  ],
  targets: [
    .target(name: "CPrefetch"),
    .target(name: "CAllocator"),
    // A header-only gate: importable only when compiling for a CPU with AVX-512 VNNI.
    .target(name: "CAVX512VNNI"),
    // The same kind of gate for AVX2 (with FMA and F16C): the int8 decode kernels of CPUs without VNNI.
    .target(name: "CAVX2"),
    // The same kind of gate for AVX512-BF16; CBF16 wraps its instructions in inline C functions.
    .target(name: "CAVX512BF16"),
    .target(name: "CBF16"),
    .target(
      name: "BitBudgetKernels",
      dependencies: ["CPrefetch", "CAVX512VNNI", "CAVX2", "CAVX512BF16", "CBF16"],
      swiftSettings: optimizedKernels),
    .target(
      name: "BitBudgetEngine",
      dependencies: ["BitBudgetKernels", "BitBudgetTokenizer"],
      swiftSettings: optimizedKernels),
    .target(
      name: "BitBudgetTokenizer",
      swiftSettings: nativeCPU),
    .target(
      name: "BitBudgetMemory",
      dependencies: ["BitBudgetEngine"],
      swiftSettings: nativeCPU),
    .target(
      name: "BitBudgetEval",
      dependencies: [
        .product(name: "SwiftCSV", package: "SwiftCSV"),
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "Yams", package: "Yams"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
      ],
      swiftSettings: nativeCPU),
    // Downloads from the Hugging Face Hub into its cache (the engine only reads the cache).
    .target(
      name: "BitBudgetHub",
      dependencies: [
        "BitBudgetEngine",
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Crypto", package: "swift-crypto"),
      ],
      swiftSettings: nativeCPU),
    // The OpenAI-compatible server: continuous batching over the engine, HTTP on Hummingbird.
    .target(
      name: "BitBudgetServer",
      dependencies: [
        "BitBudgetEngine", "BitBudgetLab", "BitBudgetMemory", "BitBudgetTokenizer",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdCore", package: "hummingbird"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: nativeCPU),
    .target(
      name: "BitBudgetAnalysis",
      dependencies: ["BitBudgetMemory", "BitBudgetEngine"],
      swiftSettings: nativeCPU),
    // The lab: scenario backends (local engine, OpenAI-compatible servers), sweeps, results as
    // the analysis's points. The CLI is argument parsing and printing over it.
    .target(
      name: "BitBudgetLab",
      dependencies: ["BitBudgetAnalysis", "BitBudgetEngine", "BitBudgetEval", "BitBudgetKernels", "BitBudgetMemory", "BitBudgetTokenizer"],
      swiftSettings: nativeCPU),
    .target(
      name: "BitBudgetCLI",
      dependencies: [
        "BitBudgetAnalysis",
        "BitBudgetLab",
        "BitBudgetEngine",
        "BitBudgetEval",
        "BitBudgetHub",
        "BitBudgetMemory",
        "BitBudgetServer",
        "BitBudgetTokenizer",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Metrics", package: "swift-metrics"),
      ],
      swiftSettings: nativeCPU),
    .executableTarget(
      name: "bitbudget",
      dependencies: ["BitBudgetCLI", "CAllocator"],
      swiftSettings: nativeCPU),
    .target(
      name: "BitBudgetTestSupport",
      path: "Tests/BitBudgetTestSupport"),
    .testTarget(
      name: "BitBudgetKernelsTests",
      dependencies: ["BitBudgetKernels", "BitBudgetTestSupport"],
      swiftSettings: nativeCPU),
    .testTarget(
      name: "BitBudgetEngineTests",
      dependencies: [
        "BitBudgetEngine", "BitBudgetTestSupport",
        // The KV-cache properties compare the caches with the memory model's replay.
        "BitBudgetMemory",
        .product(name: "PropertyBased", package: "swift-property-based"),
      ],
      swiftSettings: nativeCPU),
    .testTarget(
      name: "BitBudgetMemoryTests",
      dependencies: ["BitBudgetMemory", "BitBudgetEngine", "BitBudgetTestSupport"],
      swiftSettings: nativeCPU),
    .testTarget(
      name: "BitBudgetEvalTests",
      dependencies: [
        "BitBudgetEval", "BitBudgetTestSupport",
        .product(name: "PropertyBased", package: "swift-property-based"),
      ],
      swiftSettings: nativeCPU),
    .testTarget(
      name: "BitBudgetHubTests",
      dependencies: ["BitBudgetHub", "BitBudgetEngine", "BitBudgetTestSupport"],
      swiftSettings: nativeCPU),
    .testTarget(
      name: "BitBudgetAnalysisTests",
      dependencies: ["BitBudgetAnalysis", "BitBudgetMemory", "BitBudgetTestSupport"],
      swiftSettings: nativeCPU),
    .testTarget(
      name: "BitBudgetLabTests",
      dependencies: ["BitBudgetLab", "BitBudgetEval", "BitBudgetEngine", "BitBudgetTestSupport"],
      swiftSettings: nativeCPU),
    .testTarget(
      name: "BitBudgetTokenizerTests",
      dependencies: ["BitBudgetTokenizer", "BitBudgetTestSupport"],
      swiftSettings: nativeCPU),
    .testTarget(
      name: "BitBudgetCLITests",
      dependencies: ["BitBudgetCLI", "BitBudgetEval", "bitbudget", "BitBudgetTestSupport"],
      swiftSettings: nativeCPU),
  ]
)
