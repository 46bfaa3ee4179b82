import BitBudgetTokenizer
import Foundation

// One libFuzzer executable for all targets: BITBUDGET_FUZZ_TARGET names the parser to fuzz
// (libFuzzer reads every non-flag argument as a corpus folder, so the target cannot be an argument).
//
//   BITBUDGET_FUZZ_TARGET=gguf .build/debug/bitbudget-fuzz -dict=dict/gguf.dict corpus/gguf
//
// A thrown Swift error is the correct answer to bad input and is ignored; a crash, a trap (overflow,
// out-of-range index, failed precondition or harness invariant), an ASan report, a leak, a timeout
// or running out of memory is a finding.

/// One fuzz target: a parser fed the fuzz input.
struct FuzzTarget: Sendable {
  let name: String
  let summary: String
  let run: @Sendable (UnsafeRawBufferPointer) -> Void
}

enum FuzzTargets {
  static let all: [FuzzTarget] = [
    SafetensorsTarget.target,
    GGUFTarget.target,
    TokenizerJSONTarget.target,
    TokenizerEncodeTarget.target,
    ChatTemplateTarget.target,
    SweepGridTarget.target,
    TaskJSONLTarget.target,
    TaskGPQATarget.target,
    CompletionResponseTarget.target,
    ModelConfigTarget.target,
  ]

  static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

nonisolated(unsafe) var selectedTarget: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
  _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
  let name = ProcessInfo.processInfo.environment["BITBUDGET_FUZZ_TARGET"] ?? ""
  guard let target = FuzzTargets.named(name) else {
    var message = name.isEmpty
      ? "bitbudget-fuzz: set BITBUDGET_FUZZ_TARGET to one of:\n"
      : "bitbudget-fuzz: unknown BITBUDGET_FUZZ_TARGET \"\(name)\"; the targets are:\n"
    for target in FuzzTargets.all { message += "  \(target.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(target.summary)\n" }
    FileHandle.standardError.write(Data(message.utf8))
    exit(2)
  }
  selectedTarget = target
  Scratch.prepare()
  return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  guard let target = selectedTarget else { return 0 }
  let input = UnsafeRawBufferPointer(start: size > 0 ? data : nil, count: size)
  target.run(input)
  return 0
}

/// A harness-level check: a parser returned something that breaks its documented contract.
/// Traps, so libFuzzer records the input as a crash.
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
  if !condition() {
    FileHandle.standardError.write(Data("bitbudget-fuzz invariant failed: \(message())\n".utf8))
    fatalError("invariant failed: \(message())", file: file, line: line)
  }
}

/// Short texts for a loaded tokenizer: ASCII words, digits, contractions, whitespace runs, CRLF,
/// CJK, emoji, combining marks, Hangul jamo, invalid-looking markup and special-token spellings.
let sampleTexts: [String] = [
  "Hello, world! It's 2025: 12345 tokens.",
  "  leading\tand trailing  \r\n\n  ",
  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4",
  "数学の問題 — naïve café ﬁ e\u{301} \u{1100}\u{1161}\u{11A8} \u{0CCA}\u{0CD5} 🤖👩‍💻",
  "I'm you're we'll they'd DON'T x=\\boxed{70} $$\\frac{7}{2}$$",
  "\u{0}\u{7F}\u{FEFF}\u{10FFFF}",
]

/// Encodes `sampleTexts` (and, when given, `extra`) and checks that every id decodes.
func exerciseTokenizer(_ tokenizer: Tokenizer, extra: [String] = []) {
  for text in sampleTexts + extra {
    let ids = tokenizer.encode(text)
    for id in ids {
      invariant(id >= 0 && id < tokenizer.vocabularySize, "encode produced id \(id) outside 0..<\(tokenizer.vocabularySize)")
    }
    do {
      _ = try tokenizer.decode(ids)
      _ = try tokenizer.decode(ids, skipSpecialTokens: true)
    } catch {
      invariant(false, "decode rejected ids that encode produced: \(error)")
    }
  }
}
