/// What a drawn token does to its sample: stop tokens, the token limit, and budget forcing (the
/// thinking budget's forced close, "Wait" before the minimum, the answer allowance).
extension DecodeBatch {
  func accept(_ token: Int, logprobs: TokenLogprobs?, state: inout Sample, member: Member) throws {
    let options = member.options
    let index = state.index
    let onToken = member.onToken
    /// Appends the drawn token (with its log-probabilities) or inserted ones (without).
    func append(_ tokens: [Int], origin: AppendedToken.Origin = .drawn) throws {
      for (offset, token) in tokens.enumerated() {
        state.result.tokens.append(token)
        try onToken?(
          AppendedToken(
            sample: index, token: token, logprobs: origin == .drawn ? logprobs : nil, origin: origin,
            startsInsertion: origin != .drawn && offset == 0))
      }
    }
    /// Budget reached: the forced text closes the thinking; the answer allowance counts from here.
    func force(_ budget: ThinkingBudget) throws {
      try append(budget.forcedTokens, origin: .forced)
      state.result.forced = true
      state.result.finish = .budget
      state.pending += budget.forcedTokens
      state.answerTokens = 0
      state.phase = budget.answerTokens > 0 ? .answering : .done
    }
    state.sampled += 1
    let isStop = options.stopTokens.contains(token)
    switch state.phase {
    case .done:
      return
    case .free:
      try append([token])
      if isStop {
        state.result.finish = .eos
        state.phase = .done
        return
      }
      state.pending = [token]
    case .thinking:
      guard let budget = options.thinkingBudget else { return }
      let closes = token == budget.endOfThinking || isStop
      if closes && state.result.thinkingTokens < budget.minimumThinking {
        // Too early: "Wait" instead, and think on. The insertion stops at the budget, so a sample
        // forced there has thought exactly `budget` tokens.
        let wait = Array(budget.waitTokens.prefix(budget.budget - state.result.thinkingTokens))
        try append(wait, origin: .wait)
        state.result.thinkingTokens += wait.count
        state.result.waits += 1
        state.pending = wait
        if state.result.thinkingTokens >= budget.budget {
          try force(budget)
          if state.phase == .done { return }
        }
      } else if token == budget.endOfThinking {
        try append([token])
        state.phase = .answering
        state.pending = [token]
      } else if isStop {
        try append([token])
        state.result.finish = .eos
        state.phase = .done
        return
      } else {
        try append([token])
        state.result.thinkingTokens += 1
        state.pending = [token]
        if state.result.thinkingTokens >= budget.budget {
          try force(budget)
          if state.phase == .done { return }
        }
      }
    case .answering:
      guard let budget = options.thinkingBudget else { return }
      try append([token])
      state.answerTokens += 1
      if isStop {
        if !state.result.forced { state.result.finish = .eos }
        state.phase = .done
        return
      }
      if state.result.forced && state.answerTokens >= budget.answerTokens {
        state.phase = .done
        return
      }
      state.pending = [token]
    }
    if state.sampled >= options.maxTokens {
      if !state.result.forced { state.result.finish = .length }
      state.phase = .done
    }
  }
}
