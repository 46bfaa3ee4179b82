import Foundation
import GRDB

/// Results in SQLite (GRDB, write-ahead log): scenarios and every finished sample, each sample
/// committed in its own transaction the moment it is recorded, so a killed run (even `kill -9`)
/// loses nothing finished and a rerun skips what is stored (`finishedSamples`).
///
/// Samples are graded when they are read, against the answer key that the task's last run
/// recorded (`recordAnswerKey`), and run totals (tokens, generation time) are sums over the
/// samples themselves, so neither can go stale or drift from what is stored.
///
/// Schema: `scenario(key PRIMARY KEY, task, config JSON, created_at, estimated_bytes,
/// peak_rss_bytes, wall_seconds, generated_tokens)` (the last two are no longer written);
/// `sample(scenario_key, question_id, sample_index, output, tokens, thinking_tokens, finish,
/// answer, correct, error, seconds, kv_bytes, created_at, copied_from; PRIMARY KEY
/// (scenario_key, question_id, sample_index))`; `answer_key(task_digest, question_id,
/// answer_type, gold; PRIMARY KEY (task_digest, question_id))`.
public final class ResultStore: @unchecked Sendable {
  public let path: String
  private let database: any DatabaseWriter

  /// Opens (creating and upgrading when `readOnly` is false) the database at `path`. A
  /// read-only store changes nothing on disk, so it can read a database the user may not write;
  /// it must already be of the current schema.
  public init(path: String, readOnly: Bool = false) throws {
    self.path = path
    do {
      var configuration = Configuration()
      configuration.busyMode = .timeout(10)
      if readOnly {
        guard FileManager.default.fileExists(atPath: path) else {
          throw EvalError.unreadableFile(path: path, reason: "no such results database")
        }
        configuration.readonly = true
        var queue: DatabaseQueue
        var current: Bool
        do {
          queue = try DatabaseQueue(path: path, configuration: configuration)
          current = try queue.read { try Self.migrator.hasCompletedMigrations($0) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_READONLY || error.resultCode == .SQLITE_CANTOPEN {
          // A write-ahead-log database in a folder this user cannot write: SQLite cannot create
          // the shared-memory file it reads through. Read the file as immutable instead (no
          // locks, no log): what the runs that wrote it left when they ended.
          queue = try DatabaseQueue(path: Self.immutableURI(path), configuration: configuration)
          current = try queue.read { try Self.migrator.hasCompletedMigrations($0) }
        }
        guard current else {
          throw EvalError.unreadableFile(
            path: path, reason: "written by an older BitBudget; run eval or sweep on it once (with write access) to upgrade it")
        }
        database = queue
      } else {
        let pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
        database = pool
      }
    } catch let error as DatabaseError {
      throw EvalError.unreadableFile(path: path, reason: "not a BitBudget results database (\(error.message ?? error.description))")
    }
  }

  /// `path` as an SQLite URI that opens the file read-only and immutable.
  static func immutableURI(_ path: String) -> String {
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    var allowed = CharacterSet.urlPathAllowed
    allowed.remove(charactersIn: "?#%")
    return "file:" + (absolute.addingPercentEncoding(withAllowedCharacters: allowed) ?? absolute) + "?mode=ro&immutable=1"
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
    migrator.registerMigration("v4") { db in
      // Samples copied from a scenario that differs only in G: they cost this scenario nothing.
      try db.alter(table: "sample") { t in t.add(column: "copied_from", .text) }
      try db.create(table: "answer_key") { t in
        t.column("task_digest", .text).notNull()
        t.column("question_id", .text).notNull()
        t.column("answer_type", .text).notNull()
        t.column("gold", .text).notNull()
        t.primaryKey(["task_digest", "question_id"])
      }
    }
    return migrator
  }

  /// Records a run's memory figures for a scenario: its memory estimate (weights + KV peak of G
  /// samples + scratch, the engine convention) and the process's peak RSS (the largest seen;
  /// nil for remote backends, whose memory is not this process's).
  public func recordRun(_ scenarioKey: String, estimatedBytes: Int?, peakRssBytes: Int?) throws {
    try write { db in
      try db.execute(
        sql: """
          UPDATE scenario SET estimated_bytes = ?,
            peak_rss_bytes = CASE WHEN ? IS NULL THEN peak_rss_bytes ELSE MAX(COALESCE(peak_rss_bytes, 0), ?) END WHERE key = ?
          """,
        arguments: [estimatedBytes, peakRssBytes, peakRssBytes, scenarioKey])
    }
  }

  /// A scenario's measurements, or nil if it is not stored. Tokens and generation time are sums
  /// over its finished samples that it generated itself (not those copied from another G), so
  /// they count killed runs' work and never count a sample twice, however many runs wrote it.
  public func runMeasurements(_ scenarioKey: String) throws -> RunMeasurements? {
    try read { db in
      guard let row = try Row.fetchOne(
        db, sql: "SELECT estimated_bytes, peak_rss_bytes FROM scenario WHERE key = ?", arguments: [scenarioKey])
      else { return nil }
      // TOTAL sums as a float: SUM traps on integer overflow, and a count is clamped below.
      let totals = try Row.fetchOne(
        db,
        sql: "SELECT TOTAL(tokens), TOTAL(seconds) FROM sample WHERE scenario_key = ? AND error IS NULL AND copied_from IS NULL",
        arguments: [scenarioKey])
      let tokens: Double = totals?[0] ?? 0
      let seconds: Double = totals?[1] ?? 0
      return RunMeasurements(
        estimatedBytes: row[0], peakRssBytes: row[1], generationSeconds: seconds.isFinite ? max(0, seconds) : 0,
        generatedTokens: tokens >= 9.0e18 ? .max : max(0, Int(tokens)))
    }
  }

  /// Records `task`'s gold answers as its answer key (replacing an earlier one of the same
  /// questions): the samples of every scenario on it are graded against it from now on.
  public func recordAnswerKey(_ task: EvalTask) throws {
    let digest = task.contentDigest
    try write { db in
      try db.execute(sql: "DELETE FROM answer_key WHERE task_digest = ?", arguments: [digest])
      for item in task.items {
        try db.execute(
          sql: "INSERT INTO answer_key (task_digest, question_id, answer_type, gold) VALUES (?, ?, ?, ?)",
          arguments: [digest, item.id, task.answerType.rawValue, item.gold])
      }
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
              finish, answer, correct, error, seconds, kv_bytes, created_at, copied_from)
            SELECT ?, s.question_id, s.sample_index, s.output, s.tokens, s.thinking_tokens, s.finish, s.answer, s.correct,
              s.error, s.seconds, s.kv_bytes, s.created_at, COALESCE(s.copied_from, ?) FROM sample s
            WHERE s.scenario_key = ? AND s.error IS NULL AND NOT EXISTS (
              SELECT 1 FROM sample t WHERE t.scenario_key = ? AND t.question_id = s.question_id
                AND t.sample_index = s.sample_index AND t.error IS NULL)
            """,
          arguments: [scenario.key, sibling.key, sibling.key, scenario.key])
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

  /// Every stored sample of a scenario, by question and index, graded against its task's
  /// answer key (the grade stored with the sample when no key was recorded).
  public func samples(_ scenarioKey: String) throws -> [SampleRecord] {
    try read { db in
      let config = try String.fetchOne(db, sql: "SELECT config FROM scenario WHERE key = ?", arguments: [scenarioKey])
      let digest = config.flatMap { try? JSONDecoder().decode(Scenario.self, from: Data($0.utf8)) }?.taskDigest
      return try Row.fetchAll(
        db,
        sql: """
          SELECT s.*, a.answer_type AS key_type, a.gold AS key_gold FROM sample s
          LEFT JOIN answer_key a ON a.task_digest = ? AND a.question_id = s.question_id
          WHERE s.scenario_key = ? ORDER BY s.question_id, s.sample_index
          """,
        arguments: [digest, scenarioKey]
      ).map { row in
        let error: String? = row["error"]
        let answer: String? = row["answer"]
        var correct: Bool = row["correct"]
        if let gold: String = row["key_gold"], let type = (row["key_type"] as String?).flatMap(AnswerType.init(rawValue:)) {
          correct = error == nil && type.isCorrect(answer, gold: gold)
        }
        return SampleRecord(
          scenarioKey: row["scenario_key"], questionId: row["question_id"], sampleIndex: row["sample_index"],
          output: row["output"], tokens: row["tokens"], thinkingTokens: row["thinking_tokens"], finish: row["finish"],
          answer: answer, correct: correct, error: error, seconds: row["seconds"], kvBytes: row["kv_bytes"])
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

/// What a scenario's runs measured.
public struct RunMeasurements: Codable, Sendable, Equatable {
  public var estimatedBytes: Int?
  public var peakRssBytes: Int?
  /// Seconds spent generating the scenario's own samples, summed over them (a batch of G
  /// shares its time among its samples; requests in flight together on a server overlap, so
  /// there this exceeds the wall time).
  public var generationSeconds: Double
  /// Tokens of the scenario's own finished samples.
  public var generatedTokens: Int

  public init(estimatedBytes: Int?, peakRssBytes: Int?, generationSeconds: Double, generatedTokens: Int) {
    self.estimatedBytes = estimatedBytes
    self.peakRssBytes = peakRssBytes
    self.generationSeconds = generationSeconds
    self.generatedTokens = generatedTokens
  }

  public var tokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }
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
