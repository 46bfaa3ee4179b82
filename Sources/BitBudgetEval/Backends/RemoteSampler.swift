import Foundation

/// One sample generated remotely, as the scenario runner stores it.
public struct RemoteSample: Sendable, Equatable {
  /// The generated text (thinking, forced text, answer), without the prompt.
  public var output: String
  /// Tokens the model generated (`usage.completion_tokens` summed over requests; a forced text is
  /// not counted, as the server did not generate it).
  public var tokens: Int
  /// Tokens before `</think>`: exact when the budget closed the thinking, else estimated from the
  /// text's share before `</think>` (a completion response has no token boundaries).
  public var thinkingTokens: Int
  /// `eos`, `length` or `budget`, as the local engine reports them.
  public var finish: String
}

/// Budget forcing over `/v1/completions` (algorithms.md §7): the first request may generate up to
/// the thinking budget; if it ends there still thinking, the forced text is appended and a second
/// request continues the raw prompt for the answer allowance. A thinking closed by the model
/// itself continues to the scenario's token limit, as on the local engine.
public struct RemoteSampler: Sendable {
  public let client: CompletionClient
  /// Appended when the budget is reached; must contain `</think>`.
  public let forcedText: String
  static let endOfThinking = "</think>"

  public init(client: CompletionClient, forcedText: String) {
    self.client = client
    self.forcedText = forcedText
  }

  public func sample(
    prompt: String, scenario: Scenario, answerTokens: Int, sampleIndex: Int, endpoint: URL
  ) async throws -> RemoteSample {
    let seed = scenario.seed &+ UInt64(sampleIndex)
    func complete(_ text: String, _ maxTokens: Int) async throws -> (Completion, Int) {
      let request = CompletionRequest(
        prompt: text, maxTokens: maxTokens, temperature: scenario.temperature, topP: scenario.topP, topK: scenario.topK, seed: seed)
      let completion = try await client.complete(request, endpoint: endpoint)
      guard let tokens = completion.completionTokens else {
        throw RemoteError.malformedResponse(
          endpoint: endpoint.absoluteString, reason: "no usage.completion_tokens (token budgets are counted with it)")
      }
      // Budgets, totals and rates are sums of these counts: one beyond what was asked for is a
      // broken server, and stored it would poison every later score of the database.
      guard tokens <= maxTokens else {
        throw RemoteError.malformedResponse(
          endpoint: endpoint.absoluteString, reason: "usage.completion_tokens \(tokens) exceeds the max_tokens \(maxTokens) asked for")
      }
      guard ["stop", "length", "eos"].contains(completion.finishReason) else {
        throw RemoteError.malformedResponse(endpoint: endpoint.absoluteString, reason: "unknown finish_reason \"\(completion.finishReason)\"")
      }
      return (completion, tokens)
    }
    let limit = scenario.maxTokens
    guard let budget = scenario.thinkingBudget else {
      let (first, tokens) = try await complete(prompt, limit)
      return RemoteSample(
        output: first.text, tokens: tokens, thinkingTokens: Self.thinkingEstimate(first.text, tokens: tokens),
        finish: first.finishReason == "length" ? "length" : "eos")
    }
    let (first, firstTokens) = try await complete(prompt, min(budget, limit))
    if first.text.contains(Self.endOfThinking) {
      // Closed by the model: the answer may go on to the scenario's limit.
      var output = first.text, tokens = firstTokens, finish = first.finishReason
      if first.finishReason == "length" && firstTokens < limit {
        let (rest, restTokens) = try await complete(prompt + first.text, limit - firstTokens)
        output += rest.text
        tokens += restTokens
        finish = rest.finishReason
      }
      return RemoteSample(
        output: output, tokens: tokens, thinkingTokens: Self.thinkingEstimate(first.text, tokens: firstTokens),
        finish: finish == "length" ? "length" : "eos")
    }
    guard first.finishReason == "length", firstTokens >= budget else {
      // Stopped while thinking, or the token limit is below the budget.
      return RemoteSample(
        output: first.text, tokens: firstTokens, thinkingTokens: firstTokens, finish: first.finishReason == "length" ? "length" : "eos")
    }
    let allowance = min(answerTokens, limit - firstTokens)
    var output = first.text + forcedText, tokens = firstTokens
    if allowance > 0 {
      let (answer, answerCount) = try await complete(prompt + output, allowance)
      output += answer.text
      tokens += answerCount
    }
    return RemoteSample(output: output, tokens: tokens, thinkingTokens: firstTokens, finish: "budget")
  }

  /// Tokens before `</think>` in `text` of `tokens` tokens, by the share of its bytes.
  static func thinkingEstimate(_ text: String, tokens: Int) -> Int {
    guard let close = text.range(of: endOfThinking) else { return tokens }
    let total = text.utf8.count
    guard total > 0 else { return 0 }
    let before = text[..<close.lowerBound].utf8.count
    return Int((Double(tokens) * Double(before) / Double(total)).rounded())
  }
}
