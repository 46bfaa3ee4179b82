import Prometheus

/// The server's Prometheus metrics (`GET /metrics`, text format 0.0.4): requests, tokens, steps
/// and rejections as counters; the queue, live requests and samples, and KV-cache bytes (held by
/// live caches, and reserved by admission) as gauges; samples per decode step as a histogram.
public final class ServingMetrics: Sendable {
  public let registry = PrometheusCollectorRegistry()
  let requests: Counter
  let rejected: Counter
  let promptTokens: Counter
  let generatedTokens: Counter
  let steps: Counter
  let queued: Gauge
  let liveRequests: Gauge
  let liveSamples: Gauge
  let kvBytes: Gauge
  let reservedKVBytes: Gauge
  let batchSamples: ValueHistogram

  public init() {
    requests = registry.makeCounter(name: "bitbudget_requests_total", help: "Requests accepted into the queue.")
    rejected = registry.makeCounter(name: "bitbudget_rejected_requests_total", help: "Requests answered 503 (queue full or beyond the memory limit).")
    promptTokens = registry.makeCounter(name: "bitbudget_prompt_tokens_total", help: "Prompt tokens prefilled.")
    generatedTokens = registry.makeCounter(name: "bitbudget_generated_tokens_total", help: "Tokens generated, over all samples.")
    steps = registry.makeCounter(name: "bitbudget_decode_steps_total", help: "Decode steps (each one token of every live sample).")
    queued = registry.makeGauge(name: "bitbudget_queued_requests", help: "Requests waiting for admission.")
    liveRequests = registry.makeGauge(name: "bitbudget_live_requests", help: "Requests decoding.")
    liveSamples = registry.makeGauge(name: "bitbudget_live_samples", help: "Samples decoding, over all requests.")
    kvBytes = registry.makeGauge(name: "bitbudget_kv_bytes", help: "Bytes the live KV caches hold (shared blocks once).")
    reservedKVBytes = registry.makeGauge(
      name: "bitbudget_kv_reserved_bytes", help: "KV-cache peak bytes of admitted requests, as the memory model predicts them.")
    batchSamples = registry.makeValueHistogram(
      name: "bitbudget_batch_samples", buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], help: "Samples decoded per step.")
  }

  /// The metrics in Prometheus' text format.
  public func text() -> String { registry.emitToString() }
}
