import Foundation

/// One sample generated remotely, as the scenario runner stores it.
public struct RemoteSample: Sendable, Equatable {
  /// The generated text (thinking, forced text, answer), without the prompt.
  public var output: String
  /// Tokens the model generated (`usage.completion_tokens` summed over requests; a forced text is
  /// not counted, as the server did not generate it).
  public var tokens: Int
  /// Tokens before `</think>`: exact when the budget closed the thinking (in `paper` mode the
  /// budget itself, "Wait"s counted one each), else estimated from the text's share before
  /// `</think>` (a completion response has no token boundaries).
  public var thinkingTokens: Int
  /// `eos`, `length` or `budget`, as the local engine reports them.
  public var finish: String
}

/// Budget forcing over `/v1/completions` (algorithms.md §7), by continuing the raw prompt:
///
/// - `cap`: the first request may generate up to the thinking budget; if it ends there still
///   thinking, the forced text is appended and a second request continues for the answer
///   allowance. A thinking closed by the model itself continues to the scenario's token limit,
///   as on the local engine.
/// - `paper`: requests stop at `</think>`; while the thinking is shorter than the budget, an
///   early stop (at `</think>` or the end of sequence) is followed by "Wait" and another request
///   for the rest of the budget. At the budget the forced text is appended and the answer
///   requested. Thinking counts the tokens the server generated but the stop, plus one per "Wait"
///   (one token in Qwen3's vocabulary), as the local engine counts them, so it ends at exactly the
///   budget (servers count the stop token in `completion_tokens`, as vLLM does).
/// - `none` (no budget): one request up to the token limit.
public struct RemoteSampler: Sendable {
  public let client: CompletionClient
  /// Appended when the budget is reached; must contain `</think>`.
  public let forcedText: String
  /// Appended after an early end of thinking in `paper` mode.
  public let waitText: String
  static let endOfThinking = "</think>"
  /// "Wait"s answered by an immediate end of thinking, in a row, before the answer is forced.
  static let maxEmptyWaits = 16

  public init(client: CompletionClient, forcedText: String, waitText: String) {
    self.client = client
    self.forcedText = forcedText
    self.waitText = waitText
  }

  public func sample(
    prompt: String, scenario: Scenario, answerTokens: Int, sampleIndex: Int, endpoint: URL
  ) async throws -> RemoteSample {
    let seed = scenario.seed &+ UInt64(sampleIndex)
    func complete(_ text: String, _ maxTokens: Int, stop: [String] = []) async throws -> (Completion, Int) {
      let request = CompletionRequest(
        prompt: text, maxTokens: maxTokens, temperature: scenario.temperature, topP: scenario.topP, topK: scenario.topK, seed: seed,
        stop: stop)
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
    if scenario.budgetForcing == .paper {
      var thinking = 0, generated = 0, emptyInARow = 0
      var output = ""
      while thinking < budget && generated < limit {
        let (part, tokens) = try await complete(prompt + output, min(budget - thinking, limit - generated), stop: [Self.endOfThinking])
        var text = part.text
        // A stop (at `</think>` or the end of sequence) is counted in `completion_tokens` but is
        // not thinking: the local engine replaces that token by "Wait" without counting it.
        var counted = part.finishReason == "length" ? tokens : max(0, tokens - 1)
        let closed = text.range(of: Self.endOfThinking)
        if let closed {
          // A server that ignores `stop`: the thinking ends where `</think>` begins.
          counted = Self.thinkingEstimate(text, tokens: tokens)
          text = String(text[..<closed.lowerBound])
        }
        output += text
        generated += tokens
        thinking += counted
        if (part.finishReason == "length" && closed == nil) || thinking >= budget { break }
        // A model that closes its thinking right after every "Wait" would take a request per
        // token of the budget: after `maxEmptyWaits` such answers in a row its answer is forced
        // early (and its thinking recorded as it is, short of the budget).
        emptyInARow = counted == 0 ? emptyInARow + 1 : 0
        if emptyInARow >= Self.maxEmptyWaits { break }
        output += waitText
        thinking += 1
      }
      guard thinking >= budget || emptyInARow >= Self.maxEmptyWaits else {
        // The token limit came first (a scenario whose max_tokens is below its budget).
        return RemoteSample(output: output, tokens: generated, thinkingTokens: thinking, finish: "length")
      }
      output += forcedText
      let allowance = min(answerTokens, limit - generated)
      if allowance > 0 {
        let (answer, answerCount) = try await complete(prompt + output, allowance)
        output += answer.text
        generated += answerCount
      }
      return RemoteSample(output: output, tokens: generated, thinkingTokens: thinking, finish: "budget")
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
