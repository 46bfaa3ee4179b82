import Foundation

@testable import BitBudgetEval

/// A sweep grid (YAML) read as `SweepGrid.load` reads it: UTF-8 text, then `SweepGrid.parse`.
enum SweepGridTarget {
  static let target = FuzzTarget(
    name: "sweep-grid", summary: "SweepGrid.parse of YAML (Yams/libyaml, axes, backends)"
  ) { input in
    guard let text = String(data: input.data, encoding: .utf8) else { return }
    guard let grid = try? SweepGrid.parse(text, path: "fuzz.yaml") else { return }
    invariant(!grid.points.isEmpty, "a grid without points was accepted")
    for point in grid.points {
      invariant(!point.model.isEmpty && !point.task.isEmpty, "a point without model or task was accepted")
      if let parallel = point.parallel { invariant(parallel <= point.samples, "parallel > samples was accepted") }
    }
  }
}

/// A JSONL task file (`EvalTask.jsonl`) read with each answer type; for the questions it yields,
/// the prompt is built and the answer extractor runs on the question text.
enum TaskJSONLTarget {
  static let target = FuzzTarget(
    name: "task-jsonl", summary: "EvalTask.jsonl (all answer types) + prompt/extractAnswer"
  ) { input in
    let path = Scratch.write(input, to: "task.jsonl")
    for type in AnswerType.allCases {
      guard let task = try? EvalTask.jsonl(path: path, answerType: type) else { continue }
      exercise(task, uniqueIDs: true)
    }
  }

  /// `uniqueIDs`: the loader promises distinct question ids (`jsonl` rejects duplicates; `gpqa`
  /// takes `Record ID` as it is and does not).
  static func exercise(_ task: EvalTask, uniqueIDs: Bool) {
    invariant(!task.items.isEmpty, "a task without questions was accepted")
    if uniqueIDs { invariant(Set(task.items.map(\.id)).count == task.items.count, "duplicate question ids were accepted") }
    for item in task.items.prefix(16) {
      if let choices = item.choices { invariant((2...10).contains(choices.count), "\(choices.count) choices were accepted") }
      blackHole(task.prompt(for: item))
      let extracted = task.extractAnswer(item.question)
      blackHole(task.isCorrect(extracted, gold: item.gold))
      blackHole(task.isCorrect(item.gold, gold: item.gold))
    }
  }
}

/// GPQA's CSV (`EvalTask.gpqa(csvPath:seed:)`, SwiftCSV underneath).
enum TaskGPQATarget {
  static let target = FuzzTarget(
    name: "task-gpqa-csv", summary: "EvalTask.gpqa(csvPath:) (SwiftCSV) + prompt/extractAnswer"
  ) { input in
    let path = Scratch.write(input, to: "gpqa.csv")
    guard let task = try? EvalTask.gpqa(csvPath: path, seed: UInt64(input.count)) else { return }
    for item in task.items.prefix(16) {
      invariant(item.choices?.count == 4 && ["A", "B", "C", "D"].contains(item.gold), "a GPQA item without 4 choices and a letter")
    }
    TaskJSONLTarget.exercise(task, uniqueIDs: false)
  }
}

/// The body of an OpenAI-compatible server's reply: `CompletionClient.decode` (success) and
/// `CompletionClient.errorMessage` (HTTP error), as `send` reads it (bytes decoded as UTF-8 with
/// replacement).
enum CompletionResponseTarget {
  static let target = FuzzTarget(
    name: "completion-response", summary: "CompletionClient.decode + errorMessage of a response body"
  ) { input in
    let body = input.text
    if let completion = try? CompletionClient.decode(body, endpoint: "http://fuzz/v1") {
      if let tokens = completion.completionTokens { invariant(tokens >= 0, "negative completion_tokens accepted") }
    }
    let message = CompletionClient.errorMessage(body)
    blackHole(message)
  }
}
