import ArgumentParser
import BitBudgetEngine
import BitBudgetLab
import BitBudgetServer
import BitBudgetTokenizer
import Foundation
import Metrics

/// `bitbudget serve`: the engine behind an OpenAI-compatible HTTP server.
struct Serve: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Serve a model over an OpenAI-compatible HTTP API.",
    discussion: """
      POST /v1/completions and /v1/chat/completions (the model's own chat template; "stream": true sends \
      server-sent events), GET /v1/models and /health. Requests take OpenAI's max_tokens, temperature, \
      top_p, top_k, min_p, seed, n, stop and stream, and budget forcing as generate takes it: thinking_budget, \
      answer_tokens, budget_text, min_thinking. Every live request's samples decode together, one token each \
      per step (continuous batching); a request waits while --max-sequences samples are live or its KV-cache \
      peak would pass --memory-limit, and one that could never fit is answered 503 with the numbers. Prints \
      "listening on http://HOST:PORT" when ready (--port 0 picks a free port).
      """)

  @OptionGroup var options: ModelOptions

  @Option(help: "Address to listen on (loopback by default).")
  var host = "127.0.0.1"

  @Option(help: "Port to listen on (0: a free one).")
  var port = 8080

  @Option(name: .customLong("max-sequences"), help: "Most samples decoding at once, over all requests.")
  var maxSequences = 16

  @Option(name: .customLong("max-queue"), help: "Most requests waiting for room; more are answered 503.")
  var maxQueue = 256

  @Option(name: .customLong("default-max-tokens"), help: "max_tokens of a chat request that gives none (default: the rest of the context).")
  var defaultMaxTokens: Int?

  @Option(name: .customLong("api-key"), help: "Require Authorization: Bearer KEY on /v1 requests.")
  var apiKey: String?

  @Option(name: .customLong("served-model-name"), help: "The model name clients use (default: --model).")
  var servedModelName: String?

  @Option(name: .customLong("chat-template"), help: ArgumentHelp("The chat template: a Jinja file, or qwen3 (default: the model's own).", valueName: "file"))
  var chatTemplate: String?

  func validate() throws {
    guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
    guard (1...256).contains(maxSequences) else { throw ValidationError("--max-sequences must be in 1...256") }
    guard (1...100_000).contains(maxQueue) else { throw ValidationError("--max-queue must be in 1...100000") }
    if let defaultMaxTokens { guard defaultMaxTokens >= 1 else { throw ValidationError("--default-max-tokens must be at least 1") } }
    if let apiKey { guard !apiKey.isEmpty else { throw ValidationError("--api-key must not be empty") } }
  }

  func run() throws {
    let settings = try options.settings()
    let model = try options.loadModel()
    guard let tokenizer = try model.tokenizer() else {
      throw CommandFailure(message: "\(model.path) has no tokenizer files; the server needs one to read prompts")
    }
    // A model without a template still serves /v1/completions.
    let template = try? ChatTemplate.forModel(model, tokenizer: tokenizer, explicit: chatTemplate)
    if chatTemplate != nil && template == nil {
      _ = try ChatTemplate.forModel(model, tokenizer: tokenizer, explicit: chatTemplate)
    }
    let engine = try ServingEngine(model: model, tokenizer: tokenizer, settings: settings, maxSequences: maxSequences, maxQueue: maxQueue)
    engine.start()
    // The HTTP layer's metrics (swift-metrics) land in the engine's Prometheus registry too.
    MetricsSystem.bootstrap(engine.metrics.factory)
    let server = OpenAIServer(
      engine: engine, modelName: servedModelName ?? options.model, apiKey: apiKey, chatTemplate: template, defaultMaxTokens: defaultMaxTokens)
    let host = self.host
    let port = self.port
    let done = DispatchSemaphore(value: 0)
    let failure = ServeFailure()
    Task {
      do {
        try await server.run(host: host, port: port) { bound in
          Output.line("listening on http://\(host):\(bound)")
        }
      } catch {
        failure.error = error
      }
      done.signal()
    }
    done.wait()
    engine.stop()
    if let error = failure.error { throw CommandFailure(message: "the server stopped: \(error)") }
  }
}

private final class ServeFailure: @unchecked Sendable {
  var error: Error?
}
