/// What a group of samples may ask for: options in range, and room in the model's context.
extension DecodeBatch {
  /// Checks `options` and that `prompt` and the new tokens fit the model's context after what
  /// `cache` holds.
  public func validate(prompt: [Int], options: GenerationOptions, cache: any KVCache) throws {
    let config = session.model.config
    guard !prompt.isEmpty else { throw EngineError.invalidInput("the prompt is empty: give at least one token") }
    guard options.maxTokens >= 0 else { throw EngineError.invalidInput("the maximum number of new tokens must not be negative") }
    guard (1...256).contains(options.samples) else { throw EngineError.invalidInput("the number of samples must be in 1...256") }
    let sampling = options.sampling
    guard sampling.temperature.isFinite, sampling.topP.isFinite, sampling.minP.isFinite else {
      throw EngineError.invalidInput("the temperature, top-p and min-p must be finite numbers (\(sampling))")
    }
    if let top = options.logprobs, !(0...Self.maxTopLogprobs).contains(top) {
      throw EngineError.invalidInput("the number of alternative tokens with log-probabilities must be in 0...\(Self.maxTopLogprobs)")
    }
    let context = config.maxPositions
    if let limit = options.vocabularyLimit, limit < 1 { throw EngineError.invalidInput("the vocabulary limit must be at least 1") }
    var inserted = 0
    if let budget = options.thinkingBudget {
      guard (1...context).contains(budget.budget), (0...context).contains(budget.answerTokens),
        (0...budget.budget).contains(budget.minimumThinking)
      else {
        throw EngineError.invalidInput(
          "the thinking budget must be in 1...\(context), the answer allowance in 0...\(context), and the minimum thinking at most the budget")
      }
      guard budget.minimumThinking == 0 || !budget.waitTokens.isEmpty else {
        throw EngineError.invalidInput("a minimum thinking length needs the \"Wait\" tokens to insert")
      }
      guard budget.forcedTokens.count <= context, budget.waitTokens.count <= context else {
        throw EngineError.invalidInput("the forced or \"Wait\" text is longer than the model's context")
      }
      for token in [budget.endOfThinking] + budget.forcedTokens + budget.waitTokens where !(0..<config.vocabSize).contains(token) {
        throw EngineError.invalidInput("token id \(token) of the thinking budget is outside the vocabulary (0..<\(config.vocabSize))")
      }
      inserted = budget.maxInsertedTokens
    }
    // Positions needed: what the cache holds, the prompt, inserted tokens, and every sampled token
    // but the last (which is never fed back).
    let room = context - cache.nextPosition - prompt.count - inserted
    if room < 0 || options.maxTokens - 1 > room {
      throw EngineError.invalidInput(
        "\(cache.nextPosition + prompt.count) tokens of context and prompt, \(inserted) inserted and \(options.maxTokens) new tokens exceed the model's context of \(context) positions")
    }
    try session.validate(tokens: prompt, appendingTo: cache)
  }
}
