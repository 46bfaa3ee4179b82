// swift-tools-version:6.0
// libFuzzer harnesses for BitBudget's parsers of untrusted input. Not part of the root package:
// build and run it with scripts/fuzz.sh (which passes --sanitize=fuzzer --sanitize=address and
// -enable-testing, so the harness can reach internal entry points with @testable import).
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which depends on where the repository was
// cloned; derive it instead of spelling it.
let rootIdentity = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
  name: "BitBudgetFuzz",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "bitbudget-fuzz", targets: ["bitbudget-fuzz"]),
  ],
  dependencies: [
    .package(path: ".."),
  ],
  targets: [
    .executableTarget(
      name: "bitbudget-fuzz",
      dependencies: [
        .product(name: "BitBudgetEngine", package: rootIdentity),
        .product(name: "BitBudgetTokenizer", package: rootIdentity),
        .product(name: "BitBudgetEval", package: rootIdentity),
      ],
      // libFuzzer provides main(); the harness only exports LLVMFuzzerTestOneInput.
      swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
  ]
)
