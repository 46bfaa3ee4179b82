import CoreMetrics
import Metrics
import Prometheus

/// The server's metrics, through swift-metrics into a Prometheus registry of their own
/// (`GET /metrics`, text format 0.0.4): requests, tokens, steps and rejections as counters; the
/// queue, live requests and samples, and KV-cache bytes (held by live caches, and reserved by
/// admission) as gauges; samples per decode step as a histogram. `factory` also takes other
/// swift-metrics sources (`bitbudget serve` bootstraps the metrics system with it, so the HTTP
/// layer's request counts and durations appear beside these).
public final class ServingMetrics: Sendable {
  public let registry: PrometheusCollectorRegistry
  public let factory: PrometheusMetricsFactory
  let requests: CoreMetrics.Counter
  let rejected: CoreMetrics.Counter
  let promptTokens: CoreMetrics.Counter
  let generatedTokens: CoreMetrics.Counter
  let steps: CoreMetrics.Counter
  let queued: CoreMetrics.Gauge
  let liveRequests: CoreMetrics.Gauge
  let liveSamples: CoreMetrics.Gauge
  let kvBytes: CoreMetrics.Gauge
  let reservedKVBytes: CoreMetrics.Gauge
  let batchSamples: CoreMetrics.Recorder

  public init() {
    registry = PrometheusCollectorRegistry()
    var factory = PrometheusMetricsFactory(registry: registry)
    factory.valueHistogramBuckets["bitbudget_batch_samples"] = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    self.factory = factory
    requests = CoreMetrics.Counter(label: "bitbudget_requests_total", factory: factory)
    rejected = CoreMetrics.Counter(label: "bitbudget_rejected_requests_total", factory: factory)
    promptTokens = CoreMetrics.Counter(label: "bitbudget_prompt_tokens_total", factory: factory)
    generatedTokens = CoreMetrics.Counter(label: "bitbudget_generated_tokens_total", factory: factory)
    steps = CoreMetrics.Counter(label: "bitbudget_decode_steps_total", factory: factory)
    queued = CoreMetrics.Gauge(label: "bitbudget_queued_requests", factory: factory)
    liveRequests = CoreMetrics.Gauge(label: "bitbudget_live_requests", factory: factory)
    liveSamples = CoreMetrics.Gauge(label: "bitbudget_live_samples", factory: factory)
    kvBytes = CoreMetrics.Gauge(label: "bitbudget_kv_bytes", factory: factory)
    reservedKVBytes = CoreMetrics.Gauge(label: "bitbudget_kv_reserved_bytes", factory: factory)
    batchSamples = CoreMetrics.Recorder(label: "bitbudget_batch_samples", factory: factory)
  }

  /// The metrics in Prometheus' text format.
  public func text() -> String { registry.emitToString() }
}
