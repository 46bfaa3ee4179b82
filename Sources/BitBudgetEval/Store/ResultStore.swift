import Foundation
import GRDB

/// Results in SQLite (GRDB, write-ahead log): scenarios and every finished sample, each sample
/// committed in its own transaction the moment it is recorded, so a killed run (even `kill -9`)
/// loses nothing finished and a rerun skips what is stored (`finishedSamples`).
///
/// Schema: `scenario(key PRIMARY KEY, task, config JSON, created_at, estimated_bytes,
/// peak_rss_bytes, wall_seconds, generated_tokens)`; `sample(scenario_key, question_id,
/// sample_index, output, tokens, thinking_tokens, finish, answer, correct, error, seconds,
/// kv_bytes, created_at; PRIMARY KEY (scenario_key, question_id, sample_index))`.
public final class ResultStore: @unchecked Sendable {
  public let path: String
  private let database: DatabasePool

  public init(path: String) throws {
    self.path = path
    do {
      var configuration = Configuration()
      configuration.busyMode = .timeout(10)
      database = try DatabasePool(path: path, configuration: configuration)
      try Self.migrator.migrate(database)
    } catch let error as DatabaseError {
      throw EvalError.unreadableFile(path: path, reason: "not a BitBudget results database (\(error.message ?? error.description))")
    }
  }

  static var migrator: DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1") { db in
      try db.create(table: "scenario") { t in
        t.primaryKey("key", .text)
        t.column("task", .text).notNull()
        t.column("config", .text).notNull()
        t.column("created_at", .datetime).notNull()
      }
      try db.create(table: "sample") { t in
        t.column("scenario_key", .text).notNull().references("scenario", onDelete: .cascade)
        t.column("question_id", .text).notNull()
        t.column("sample_index", .integer).notNull()
        t.column("output", .text).notNull()
        t.column("tokens", .integer).notNull()
        t.column("thinking_tokens", .integer).notNull()
        t.column("finish", .text).notNull()
        t.column("answer", .text)
        t.column("correct", .boolean).notNull()
        t.column("error", .text)
        t.column("seconds", .double).notNull()
        t.column("created_at", .datetime).notNull()
        t.primaryKey(["scenario_key", "question_id", "sample_index"])
      }
    }
    migrator.registerMigration("v2") { db in
      try db.alter(table: "scenario") { t in
        t.add(column: "estimated_bytes", .integer)
        t.add(column: "peak_rss_bytes", .integer)
        t.add(column: "wall_seconds", .double).notNull().defaults(to: 0)
        t.add(column: "generated_tokens", .integer).notNull().defaults(to: 0)
      }
    }
    migrator.registerMigration("v3") { db in
      try db.alter(table: "sample") { t in t.add(column: "kv_bytes", .integer) }
    }
    return migrator
  }

  /// Adds one run's measurements to a scenario: its memory estimate (weights + KV peak of G
  /// samples + scratch, the engine convention), the process's peak RSS (the largest seen), wall
  /// time and tokens generated (summed over runs, so tokens/s survives a resume).
  /// `peakRssBytes` is nil for remote backends (the memory is not this process's).
  public func recordRun(_ scenarioKey: String, estimatedBytes: Int?, peakRssBytes: Int?, seconds: Double, generatedTokens: Int) throws {
    try write { db in
      try db.execute(
        sql: """
          UPDATE scenario SET estimated_bytes = ?,
            peak_rss_bytes = CASE WHEN ? IS NULL THEN peak_rss_bytes ELSE MAX(COALESCE(peak_rss_bytes, 0), ?) END,
            wall_seconds = wall_seconds + ?, generated_tokens = generated_tokens + ? WHERE key = ?
          """,
        arguments: [estimatedBytes, peakRssBytes, peakRssBytes, seconds, generatedTokens, scenarioKey])
    }
  }

  /// A scenario's run measurements, or nil if it is not stored.
  public func runMeasurements(_ scenarioKey: String) throws -> RunMeasurements? {
    try read { db in
      try Row.fetchOne(
        db, sql: "SELECT estimated_bytes, peak_rss_bytes, wall_seconds, generated_tokens FROM scenario WHERE key = ?",
        arguments: [scenarioKey]
      ).map { RunMeasurements(estimatedBytes: $0[0], peakRssBytes: $0[1], wallSeconds: $0[2], generatedTokens: $0[3]) }
    }
  }

  /// Stores the scenario if it is new (its key identifies it).
  public func register(_ scenario: Scenario) throws {
    try write { db in
      try db.execute(
        sql: "INSERT OR IGNORE INTO scenario (key, task, config, created_at) VALUES (?, ?, ?, ?)",
        arguments: [scenario.key, scenario.task, scenario.canonicalJSON, Date()])
    }
  }

  /// Commits one sample (replacing an earlier record of the same sample, e.g. a retried error).
  public func record(_ sample: SampleRecord) throws {
    try record([sample])
  }

  /// Commits samples in one transaction (all or none).
  public func record(_ samples: [SampleRecord]) throws {
    try write { db in
      for sample in samples {
        try db.execute(
          sql: """
            INSERT OR REPLACE INTO sample (scenario_key, question_id, sample_index, output, tokens, thinking_tokens,
              finish, answer, correct, error, seconds, kv_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
          arguments: [
            sample.scenarioKey, sample.questionId, sample.sampleIndex, sample.output, sample.tokens, sample.thinkingTokens,
            sample.finish, sample.answer, sample.correct, sample.error, sample.seconds, sample.kvBytes, Date(),
          ])
      }
    }
  }

  /// Copies into `scenario` the finished samples of stored scenarios that differ from it only in
  /// G (`parallel`): sample i of a question is the same whatever G is (the local engine decodes
  /// batch-invariantly; remote requests carry the same seed), so a grid over G generates each
  /// sample once. Returns the samples copied.
  @discardableResult
  public func reuseSamples(for scenario: Scenario) throws -> Int {
    let siblings = try scenarios().filter { other in
      var same = other
      same.parallel = scenario.parallel
      return other.key != scenario.key && same == scenario
    }
    guard !siblings.isEmpty else { return 0 }
    var copied = 0
    try write { db in
      for sibling in siblings {
        try db.execute(
          sql: """
            INSERT OR REPLACE INTO sample (scenario_key, question_id, sample_index, output, tokens, thinking_tokens,
              finish, answer, correct, error, seconds, kv_bytes, created_at)
            SELECT ?, s.question_id, s.sample_index, s.output, s.tokens, s.thinking_tokens, s.finish, s.answer, s.correct,
              s.error, s.seconds, s.kv_bytes, s.created_at FROM sample s
            WHERE s.scenario_key = ? AND s.error IS NULL AND NOT EXISTS (
              SELECT 1 FROM sample t WHERE t.scenario_key = ? AND t.question_id = s.question_id
                AND t.sample_index = s.sample_index AND t.error IS NULL)
            """,
          arguments: [scenario.key, sibling.key, scenario.key])
        copied += db.changesCount
      }
    }
    return copied
  }

  /// (question id, sample index) of every stored sample of a scenario without an error.
  public func finishedSamples(_ scenarioKey: String) throws -> Set<SampleKey> {
    try read { db in
      let rows = try Row.fetchAll(
        db, sql: "SELECT question_id, sample_index FROM sample WHERE scenario_key = ? AND error IS NULL", arguments: [scenarioKey])
      return Set(rows.map { SampleKey(questionId: $0["question_id"], sampleIndex: $0["sample_index"]) })
    }
  }

  /// Every stored sample of a scenario, by question and index.
  public func samples(_ scenarioKey: String) throws -> [SampleRecord] {
    try read { db in
      try Row.fetchAll(
        db, sql: "SELECT * FROM sample WHERE scenario_key = ? ORDER BY question_id, sample_index", arguments: [scenarioKey]
      ).map { row in
        SampleRecord(
          scenarioKey: row["scenario_key"], questionId: row["question_id"], sampleIndex: row["sample_index"],
          output: row["output"], tokens: row["tokens"], thinkingTokens: row["thinking_tokens"], finish: row["finish"],
          answer: row["answer"], correct: row["correct"], error: row["error"], seconds: row["seconds"], kvBytes: row["kv_bytes"])
      }
    }
  }

  /// The stored scenarios.
  public func scenarios() throws -> [Scenario] {
    try read { db in
      try String.fetchAll(db, sql: "SELECT config FROM scenario ORDER BY created_at").compactMap {
        try? JSONDecoder().decode(Scenario.self, from: Data($0.utf8))
      }
    }
  }

  private func write(_ body: (Database) throws -> Void) throws {
    do { try database.write(body) } catch let error as DatabaseError {
      throw EvalError.unreadableFile(path: path, reason: "writing failed (\(error.message ?? error.description))")
    }
  }

  private func read<T>(_ body: (Database) throws -> T) throws -> T {
    do { return try database.read(body) } catch let error as DatabaseError {
      throw EvalError.unreadableFile(path: path, reason: "reading failed (\(error.message ?? error.description))")
    }
  }
}

/// What a scenario's runs measured (summed over resumed runs).
public struct RunMeasurements: Codable, Sendable, Equatable {
  public var estimatedBytes: Int?
  public var peakRssBytes: Int?
  public var wallSeconds: Double
  public var generatedTokens: Int

  public var tokensPerSecond: Double { wallSeconds > 0 ? Double(generatedTokens) / wallSeconds : 0 }
}

/// A sample's place: question and index.
public struct SampleKey: Hashable, Sendable {
  public let questionId: String
  public let sampleIndex: Int

  public init(questionId: String, sampleIndex: Int) {
    self.questionId = questionId
    self.sampleIndex = sampleIndex
  }
}
