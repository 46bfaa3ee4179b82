import BitBudgetEngine
import Foundation

/// A self-contained HTML report of result sets (no network, no JavaScript): per task a summary
/// (frontier segments and the weights-versus-generation crossover), SVG panels of accuracy
/// against total memory — one panel per (KV policy, G), one curve per (model, weight bits) along
/// the token budget, the task's frontier drawn in every panel and its points ringed — the
/// frontier table and every scenario.
public struct HTMLReport: Sendable {
  public var title: String
  /// Where the results came from (shown under the title).
  public var source: String
  /// What the memory axis counts.
  public var memoryNote: String
  public var frontiers: [(task: String, frontier: ParetoFrontier)]
  /// Caveats shown under the title (scenarios left out, incomplete ones).
  public var notes: [String]

  public init(
    title: String, source: String, memoryNote: String, frontiers: [(task: String, frontier: ParetoFrontier)], notes: [String] = []
  ) {
    self.title = title
    self.source = source
    self.memoryNote = memoryNote
    self.frontiers = frontiers
    self.notes = notes
  }

  static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

  /// A line style per weight precision: 16-bit solid, 8-bit dashed, 4-bit dotted.
  static func dash(_ bits: Int) -> String? {
    switch bits {
    case 16: nil
    case 8: "7 3"
    default: "2 3"
    }
  }

  static func gib(_ bytes: Int) -> String { String(format: "%.2f", Double(bytes) / Double(1 << 30)) }

  /// `bytes` in MiB below 1 GiB, else GiB: "742 MiB", "7.78 GiB".
  static func size(_ bytes: Int) -> String {
    bytes < 1 << 30 ? String(format: "%.0f MiB", Double(bytes) / Double(1 << 20)) : String(format: "%.2f GiB", Double(bytes) / Double(1 << 30))
  }

  public var html: String {
    let e = SVGPlot.escape
    var out = """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8"><title>\(e(title))</title>
      <style>
      body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1220px; }
      h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 36px; border-bottom: 1px solid #ccc; }
      .figure { display: flex; gap: 16px; align-items: flex-start; }
      .panels { flex: 1; display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; }
      .panels svg { height: auto; }
      .legend { flex: 0 0 auto; position: sticky; top: 8px; }
      table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
      th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
      th { background: #f4f4f4; } td.l, th.l { text-align: left; }
      .note { color: #555; font-size: 13px; }
      </style></head><body>
      <h1>\(e(title))</h1>
      <p class="note">\(e(source)). \(e(memoryNote)) Accuracy: pass@1 for G = 1, maj@G otherwise; bars and ± are 95% intervals over questions.</p>

      """
    if !notes.isEmpty {
      out += "<details><summary class=\"note\">\(notes.count) note\(notes.count == 1 ? "" : "s")</summary><ul class=\"note\">\n"
      out += notes.map { "<li>\(e($0))</li>\n" }.joined() + "</ul></details>\n"
    }
    for (task, frontier) in frontiers {
      out += section(task: task, frontier: frontier)
    }
    out += "</body></html>\n"
    return out
  }

  func section(task: String, frontier: ParetoFrontier) -> String {
    let e = SVGPlot.escape
    let points = frontier.points
    var out = "<h2>Task: \(e(task))</h2>\n"
    out += "<p>\(frontier.points.count) scenarios; \(frontier.frontier.count) on the accuracy–memory frontier.</p>\n<ul>\n"
    for segment in frontier.segments {
      let what: String
      switch segment.axis {
      case .weights: what = "bigger or more precise weights"
      case .tokens: what = "a longer token budget"
      case .parallel: what = "more parallel samples (G)"
      case .kvCache: what = "another KV-cache policy"
      case .other: what = "another setting (sampling or token limit)"
      }
      let range = segment.fromBytes == segment.toBytes ? "At \(Self.size(segment.fromBytes))" : "\(Self.size(segment.fromBytes)) to \(Self.size(segment.toBytes))"
      out += "<li>\(range): the frontier moves by \(what) (\(segment.steps) step\(segment.steps == 1 ? "" : "s")).</li>\n"
    }
    out += "</ul>\n"
    if let crossover = frontier.crossover {
      let size = crossover.effectiveSizeBytes.map { ", effective size \(Self.size($0))" } ?? ""
      out += "<p><b>Crossover</b> at \(Self.size(crossover.memoryBytes)) (\(e(crossover.point.description))\(size)): below it the frontier grows mostly by weights, above it by generation (\(Int((crossover.explainedFraction * 100).rounded()))% of the frontier's memory span fits this split). The paper puts the threshold at the effective size of 8-bit Qwen3-4B, 4.19 GiB.</p>\n"
    } else {
      out += "<p>No weights-to-generation crossover in these results.</p>\n"
    }
    let figure = Self.figure(frontier)
    out += "<div class=\"figure\"><div class=\"panels\">\n"
    for panel in figure.panels {
      var plot = panel.plot
      plot.fillsWidth = true
      out += plot.svg + "\n"
    }
    out += "</div><div class=\"legend\">\(figure.legend.svg)</div></div>\n"
    out += "<h3>Frontier</h3>\n" + table(frontier.frontier, frontier: frontier, steps: true)
    out += "<details><summary>All \(points.count) scenarios</summary>\n" + table(points, frontier: frontier, steps: false) + "</details>\n"
    return out
  }

  /// A task's plots: one panel per (KV policy, G), all on the same axes, one curve per (model,
  /// weight bits) along the token budget (each point labelled with it), the frontier and the
  /// crossover drawn in every panel; and the one legend they share.
  public struct Figure: Sendable {
    /// One plot of the figure: the scenarios of one KV policy and G.
    public struct Panel: Sendable {
      /// A file-name-safe name: `kv-full-g4`.
      public var name: String
      public var plot: SVGPlot
    }

    public var panels: [Panel]
    public var legend: SVGPlot.Legend
  }

  /// The figure of `frontier`'s points (see `Figure`).
  public static func figure(_ frontier: ParetoFrontier) -> Figure {
    let points = frontier.points
    let maxBytes = Double(points.map(\.memoryBytes).max() ?? 1)
    let minBytes = Double(points.map(\.memoryBytes).min() ?? 1)
    // MiB below 2 GiB: small models' memory would read 0.12, 0.13, … in GiB.
    let unit = maxBytes < 2 * Double(1 << 30) ? (name: "MiB", bytes: Double(1 << 20)) : (name: "GiB", bytes: Double(1 << 30))
    let (low, high) = (minBytes / unit.bytes, maxBytes / unit.bytes)
    // Memory spans orders of magnitude across model sizes: a log axis when it spans more than 4×.
    let logarithmic = low > 0 && high / low > 4
    let pad = max(high - low, high * 0.1) * 0.08
    let xRange = logarithmic ? (low / 1.15)...(high * 1.15) : max(0, low - pad)...(high + pad)
    let topAccuracy = points.map(\.accuracy.high).max() ?? 1
    // The highest interval end, rounded up to a tenth.
    let yRange = 0.0...min(1, max(0.1, (topAccuracy * 10).rounded(.up) / 10))
    // Models by size (their smallest weights), then name: the legend reads small to large.
    let smallest = Dictionary(points.map { ($0.model, $0.weightsBytes ?? .max) }, uniquingKeysWith: min)
    let models = smallest.keys.sorted { (smallest[$0] ?? .max, $0) < (smallest[$1] ?? .max, $1) }
    func color(_ model: String) -> String { palette[(models.firstIndex(of: model) ?? 0) % palette.count] }
    let frontierLine = frontier.frontier.map { (x: Double($0.memoryBytes) / unit.bytes, y: $0.accuracy.mean) }
    let markers = frontier.crossover.map { [SVGPlot.Marker(x: Double($0.memoryBytes) / unit.bytes, label: "crossover: weights ← → generation")] } ?? []
    let panels = Dictionary(grouping: points) { PanelKey(kv: $0.kv, parallel: $0.parallel) }
    var figurePanels: [Figure.Panel] = []
    for key in panels.keys.sorted(by: { ($0.parallel, $0.kv) < ($1.parallel, $1.kv) }) {
      guard let members = panels[key] else { continue }
      let curves = Dictionary(grouping: members, by: \.weightsLabel)
      let series = curves.keys.sorted { a, b in
        let pa = curves[a]?.first, pb = curves[b]?.first
        return (models.firstIndex(of: pa?.model ?? "") ?? 0, -(pa?.weightBits ?? 0)) < (models.firstIndex(of: pb?.model ?? "") ?? 0, -(pb?.weightBits ?? 0))
      }.compactMap { label -> SVGPlot.Series? in
        guard let curve = curves[label]?.sorted(by: { ($0.tokenBudget, $0.memoryBytes) < ($1.tokenBudget, $1.memoryBytes) }), let first = curve.first else { return nil }
        return SVGPlot.Series(
          label: label, color: color(first.model),
          points: curve.enumerated().map { index, p in
            // Token budgets on a curve's ends and on frontier points: every point's would pile up.
            let labelled = curve.count <= 3 || index == 0 || index == curve.count - 1 || frontier.isOnFrontier(p)
            return SVGPlot.Point(
              x: Double(p.memoryBytes) / unit.bytes, y: p.accuracy.mean, low: p.accuracy.low, high: p.accuracy.high,
              highlighted: frontier.isOnFrontier(p),
              tooltip: String(format: "%@: %.3f ± %.3f at ", p.description, p.accuracy.mean, 1.96 * p.accuracy.standardError) + size(p.memoryBytes),
              label: labelled ? tokenLabel(p.tokenBudget) : nil)
          },
          dash: dash(first.weightBits))
      }
      var plot = SVGPlot(
        title: "KV \(KVCacheSpec.shortDescription(of: key.kv)) · G = \(key.parallel)\(key.parallel == 1 ? " (pass@1)" : " (maj@\(key.parallel))")",
        xLabel: "total memory, \(unit.name)\(logarithmic ? " (log scale)" : "")", yLabel: "accuracy",
        series: series, frontier: frontierLine, xRange: xRange, yRange: yRange)
      plot.logarithmicX = logarithmic
      plot.markers = markers
      let kvName = KVCacheSpec.shortDescription(of: key.kv).map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined()
      figurePanels.append(Figure.Panel(name: "kv-\(kvName)-g\(key.parallel)", plot: plot))
    }
    let bits = Set(points.map(\.weightBits)).sorted(by: >)
    let legend = SVGPlot.Legend(
      colors: models.map { .init(label: $0, color: color($0)) },
      lineStyles: bits.map { .init(label: "\($0)-bit", color: "#444", dash: dash($0)) })
    return Figure(panels: figurePanels, legend: legend)
  }

  /// A token budget as written beside a point: 320, 2k, 30k.
  static func tokenLabel(_ tokens: Int) -> String {
    tokens < 1000 ? "\(tokens)" : tokens % 1000 == 0 ? "\(tokens / 1000)k" : String(format: "%.1fk", Double(tokens) / 1000)
  }

  func table(_ rows: [ResultPoint], frontier: ParetoFrontier, steps: Bool) -> String {
    let e = SVGPlot.escape
    let byKey = Dictionary(frontier.steps.map { ($0.to.key, $0) }, uniquingKeysWith: { a, _ in a })
    var out = "<table><tr><th>memory</th><th>weights</th><th>accuracy</th><th>± 95%</th><th>questions</th><th class=\"l\">model</th><th>bits</th><th class=\"l\">KV</th><th>tokens</th><th>G</th>"
    out += steps ? "<th class=\"l\">step</th></tr>\n" : "<th class=\"l\">frontier</th></tr>\n"
    for p in rows {
      out += "<tr><td>\(Self.size(p.memoryBytes))</td><td>\(p.weightsBytes.map(Self.size) ?? "–")</td>"
      out += String(format: "<td>%.3f</td><td>%.3f</td>", p.accuracy.mean, 1.96 * p.accuracy.standardError)
      out += "<td>\(p.accuracy.questions)</td><td class=\"l\">\(e(p.model))</td><td>\(p.weightBits)</td><td class=\"l\">\(e(KVCacheSpec.shortDescription(of: p.kv)))</td><td>\(p.tokenBudget)</td><td>\(p.parallel)</td>"
      if steps {
        let step = byKey[p.key]?.label ?? "start"
        out += "<td class=\"l\">\(e(step))</td></tr>\n"
      } else {
        out += "<td class=\"l\">\(frontier.isOnFrontier(p) ? "yes" : "")</td></tr>\n"
      }
    }
    return out + "</table>\n"
  }

  struct PanelKey: Hashable {
    let kv: String
    let parallel: Int
  }
}
