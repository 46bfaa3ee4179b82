// swift-tools-version:6.2
// An application that depends on BitBudget as any other package would, through public API only.
// Here by path; from elsewhere: .package(url: "https://github.com/…/BitBudget", from: "…").
import PackageDescription

let package = Package(
  name: "BitBudgetExamples",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(name: "BitBudget", path: ".."),
  ],
  targets: [
    .executableTarget(
      name: "reasoning-example",
      dependencies: [
        .product(name: "BitBudgetEngine", package: "BitBudget"),
        .product(name: "BitBudgetTokenizer", package: "BitBudget"),
      ]),
  ]
)
