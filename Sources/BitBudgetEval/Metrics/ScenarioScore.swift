/// A scenario's accuracy from its stored samples: per question pass@1 (mean correctness) and
/// maj@K (over all its samples when K is nil or their number, else averaged over 200 seeded
/// random K-subsets), averaged over questions; samples that failed count as wrong.
public struct ScenarioScore: Codable, Sendable, Equatable {
  public var questions: Int
  public var samples: Int
  public var errors: Int
  public var passAt1: Double
  /// maj@K.
  public var majorityAtK: Double
  public var generatedTokens: Int
  public var seconds: Double
  /// Per question, in question-id order (not encoded: reports use them for uncertainties).
  public var perQuestion: [QuestionScore] = []

  enum CodingKeys: String, CodingKey {
    case questions, samples, errors
    case passAt1 = "pass_at_1"
    case majorityAtK = "maj_at_k"
    case generatedTokens = "generated_tokens"
    case seconds
  }

  /// Scores the records of `task`'s questions (records of other questions are ignored).
  public init(task: EvalTask, records: [SampleRecord], majorityK: Int? = nil) {
    let ids = Set(task.items.map(\.id))
    self.init(records: records.filter { ids.contains($0.questionId) }, majorityK: majorityK)
  }

  /// Scores records by their stored `correct` flags: the majority answer of a subset is right when
  /// the samples that gave it were scored right (the same answer text always scores the same).
  public init(records: [SampleRecord], majorityK: Int? = nil) {
    let byQuestion = Dictionary(grouping: records, by: \.questionId)
    questions = byQuestion.count
    samples = records.count
    errors = records.filter { $0.error != nil }.count
    // Saturating: a database written by an older version may hold any count a server claimed.
    generatedTokens = records.reduce(0) { total, record in
      let (sum, overflow) = total.addingReportingOverflow(max(0, record.tokens))
      return overflow ? .max : sum
    }
    seconds = records.reduce(0) { $0 + $1.seconds }
    perQuestion = byQuestion.keys.sorted().compactMap { id in
      guard let group = byQuestion[id] else { return nil }
      let ordered = group.sorted { $0.sampleIndex < $1.sampleIndex }
      var correctAnswers: [String: Bool] = [:]
      for record in ordered where record.error == nil {
        if let answer = record.answer { correctAnswers[answer] = (correctAnswers[answer] ?? false) || record.correct }
      }
      let answers = ordered.map { $0.error == nil ? $0.answer : nil }
      let k = min(majorityK ?? answers.count, answers.count)
      return QuestionScore(
        questionId: id, samples: ordered.count, passAt1: AccuracyMetrics.passAt1(ordered.map(\.correct)),
        majorityAtK: AccuracyMetrics.majorityAtK(answers, isCorrect: { correctAnswers[$0] ?? false }, k: k, draws: 200, seed: 0))
    }
    passAt1 = questions == 0 ? 0 : perQuestion.reduce(0) { $0 + $1.passAt1 } / Double(questions)
    majorityAtK = questions == 0 ? 0 : perQuestion.reduce(0) { $0 + $1.majorityAtK } / Double(questions)
  }
}

/// One question's scores within a scenario.
public struct QuestionScore: Sendable, Equatable {
  public var questionId: String
  public var samples: Int
  public var passAt1: Double
  public var majorityAtK: Double
}
