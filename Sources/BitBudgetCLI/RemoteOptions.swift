import ArgumentParser
import BitBudgetEval
import Foundation

/// `--endpoint` and its settings (eval).
struct RemoteOptions: ParsableArguments {
  @Option(name: .customLong("endpoint"), help: ArgumentHelp(
    "An OpenAI-compatible server's base URL (http://host:8000/v1); repeat to spread samples over several. --model then names the memory model (a preset such as qwen3-8b, or a folder).",
    valueName: "url"))
  var endpoints: [String] = []

  @Option(name: .customLong("served-model"), help: "The model name the server expects (default: --model).")
  var servedModel: String?

  @Option(help: "Requests in flight per endpoint.")
  var concurrency = RemoteBackend.defaultConcurrency

  @Option(name: .customLong("request-timeout"), help: "Seconds one request may take before it is retried.")
  var requestTimeout = RemoteBackend.defaultTimeoutSeconds

  @Option(help: "Retries of a failed request (timeouts, connection errors, HTTP 408/429/5xx) before the sample is recorded as an error.")
  var retries = RemoteBackend.defaultRetries

  var isRemote: Bool { !endpoints.isEmpty }

  func validate() throws {
    if isRemote { _ = try backend(model: servedModel ?? "model") }
  }

  /// The backend, with the API key from BITBUDGET_API_KEY or OPENAI_API_KEY.
  func backend(model: String) throws -> RemoteBackend {
    do {
      return try RemoteBackend(
        endpoints: endpoints, model: servedModel ?? model, concurrency: concurrency, timeoutSeconds: requestTimeout,
        retries: retries, apiKey: apiKeyFromEnvironment())
    } catch let error as EvalError {
      throw ValidationError(error.description)
    }
  }
}

func apiKeyFromEnvironment() -> String? {
  let environment = ProcessInfo.processInfo.environment
  return environment["BITBUDGET_API_KEY"] ?? environment["OPENAI_API_KEY"]
}
