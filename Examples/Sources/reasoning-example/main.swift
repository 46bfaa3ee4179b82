// Streams a reply of a reasoning model to one question, thinking shown apart from the answer,
// under a thinking budget and a compressed KV cache; then decodes four samples together.
//
//   swift run -c release reasoning-example MODEL [QUESTION]
//
// MODEL: a model folder, a GGUF file, or a Hub id in the local Hugging Face cache.
import BitBudgetEngine
import BitBudgetTokenizer
import Foundation

let arguments = CommandLine.arguments.dropFirst()
guard let path = arguments.first else {
  FileHandle.standardError.write(Data("usage: reasoning-example MODEL [QUESTION]\n".utf8))
  exit(1)
}
let question = arguments.dropFirst().first ?? "What is 17 × 23?"

do {
  let model = try ReasoningModel(path: path)
  var options = ReasoningOptions(maxTokens: 256, seed: 1)
  // Keep 128 tokens per layer and head (R-KV's choice), stored at 4 bits.
  options.kv = try KVCacheSpec.parse("rkv:128+hqq:4")
  if model.thinkingTags != nil { options.thinkingBudget = 192 }

  for try await event in model.generate(messages: [ChatMessage(role: .user, content: question)], options: options) {
    switch event {
    case .token(let token):
      print(token.text, terminator: "")
    case .budgetReached:
      print("\n[thinking budget reached]")
    case .thinkingEnded:
      print("\n[answer]")
    case .thinkingExtended:
      break
    case .finished(let result):
      let generation = result.generation
      let rate = generation.decodeSeconds > 0 ? Double(generation.decodedTokens) / generation.decodeSeconds : 0
      print("\n\(result.samples[0].finish.rawValue): \(generation.decodedTokens) tokens, \(String(format: "%.1f", rate)) tokens/s, KV \(generation.kvBytes) bytes")
    }
  }

  // Four samples decoded together; they differ only when sampling is random.
  options.sampling = SamplingParameters(temperature: 0.7, topP: 0.9)
  let four = try await model.sample(4, messages: [ChatMessage(role: .user, content: question)], options: options)
  for sample in four.samples {
    let answer = (sample.answer ?? "(no answer)").replacingOccurrences(of: "\n", with: " ")
    print("sample \(sample.index) (\(sample.finish.rawValue)): \(answer.prefix(100))")
  }
} catch {
  FileHandle.standardError.write(Data("reasoning-example: \(error)\n".utf8))
  exit(1)
}
