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

  enum CodingKeys: String, CodingKey {
    case questions, samples, errors
    case passAt1 = "pass_at_1"
    case majorityAtK = "maj_at_k"
    case generatedTokens = "generated_tokens"
    case seconds
  }

  public init(task: EvalTask, records: [SampleRecord], majorityK: Int? = nil) {
    let golds = Dictionary(task.items.map { ($0.id, $0.gold) }, uniquingKeysWith: { a, _ in a })
    let byQuestion = Dictionary(grouping: records.filter { golds[$0.questionId] != nil }, by: \.questionId)
    questions = byQuestion.count
    samples = byQuestion.values.reduce(0) { $0 + $1.count }
    errors = records.filter { $0.error != nil }.count
    generatedTokens = records.reduce(0) { $0 + $1.tokens }
    seconds = records.reduce(0) { $0 + $1.seconds }
    var pass = 0.0, majority = 0.0
    for (id, group) in byQuestion {
      let ordered = group.sorted { $0.sampleIndex < $1.sampleIndex }
      pass += AccuracyMetrics.passAt1(ordered.map(\.correct))
      guard let gold = golds[id] else { continue }
      let answers = ordered.map { $0.error == nil ? $0.answer : nil }
      let k = min(majorityK ?? answers.count, answers.count)
      majority += AccuracyMetrics.majorityAtK(answers, gold: gold, k: k, draws: 200, seed: 0)
    }
    passAt1 = questions == 0 ? 0 : pass / Double(questions)
    majorityAtK = questions == 0 ? 0 : majority / Double(questions)
  }
}
