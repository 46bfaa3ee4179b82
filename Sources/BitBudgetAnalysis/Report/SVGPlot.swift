import Foundation

/// A line/scatter plot rendered as a self-contained SVG string (no fonts, scripts or links to
/// load): accuracy (y, with 95% error bars) against memory (x). Cost: O(points).
public struct SVGPlot: Sendable {
  /// One measurement: memory `x`, accuracy `y`, and its 95% interval `low`…`high`.
  public struct Point: Sendable {
    public var x: Double
    public var y: Double
    public var low: Double
    public var high: Double
    /// Drawn with a ring (on the frontier).
    public var highlighted: Bool
    /// Hover text (`<title>`): browsers show it without JavaScript.
    public var tooltip: String

    public init(x: Double, y: Double, low: Double, high: Double, highlighted: Bool = false, tooltip: String = "") {
      self.x = x
      self.y = y
      self.low = low
      self.high = high
      self.highlighted = highlighted
      self.tooltip = tooltip
    }
  }

  /// One labelled, coloured curve.
  public struct Series: Sendable {
    public var label: String
    public var color: String
    /// Joined in the given order (a curve along the token budget).
    public var points: [Point]
    /// An SVG `stroke-dasharray` ("6 3"), or nil for a solid line.
    public var dash: String?

    public init(label: String, color: String, points: [Point], dash: String? = nil) {
      self.label = label
      self.color = color
      self.points = points
      self.dash = dash
    }
  }

  public var title: String
  public var xLabel: String
  public var yLabel: String
  public var series: [Series]
  /// A step line through these points (the frontier), drawn under the series.
  public var frontier: [(x: Double, y: Double)]
  /// Shared axis ranges let panels be compared at a glance.
  public var xRange: ClosedRange<Double>
  public var yRange: ClosedRange<Double>
  /// A logarithmic memory axis (base 2): memory spans orders of magnitude across model sizes.
  public var logarithmicX = false
  /// Width of the plot area (the legend is drawn to its right).
  public var width = 430.0
  public var height = 380.0
  public var legendWidth = 170.0

  public init(
    title: String, xLabel: String, yLabel: String, series: [Series], frontier: [(x: Double, y: Double)], xRange: ClosedRange<Double>,
    yRange: ClosedRange<Double>
  ) {
    self.title = title
    self.xLabel = xLabel
    self.yLabel = yLabel
    self.series = series
    self.frontier = frontier
    self.xRange = xRange
    self.yRange = yRange
  }

  /// "Nice" tick values (1, 2 or 5 × 10^k apart) covering `range` with about `count` ticks.
  public static func ticks(_ range: ClosedRange<Double>, count: Int = 6) -> [Double] {
    let span = range.upperBound - range.lowerBound
    guard span > 0, span.isFinite else { return [range.lowerBound] }
    let raw = span / Double(max(1, count))
    let magnitude = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
    var ticks: [Double] = []
    var index = ceil(range.lowerBound / step)
    while index * step <= range.upperBound + step * 1e-9 {
      // 3 × 0.2 is 0.6000000000000001 in binary: print-round to 12 digits.
      let value = index * step
      ticks.append(Double(String(format: "%.12g", value)) ?? value)
      index += 1
    }
    return ticks
  }

  /// Powers of two covering `range` (for a logarithmic axis).
  public static func logTicks(_ range: ClosedRange<Double>) -> [Double] {
    guard range.lowerBound > 0 else { return [] }
    return (Int(floor(log2(range.lowerBound)))...Int(ceil(log2(range.upperBound)))).map { pow(2, Double($0)) }.filter { range.contains($0) }
  }

  public var svg: String {
    let left = 62.0, right = 16.0, top = 34.0, bottom = 52.0
    let plotWidth = width - left - right, plotHeight = height - top - bottom
    // Wide enough for the longest label (≈ 6.8 px per character at 12 px sans-serif).
    let longest = (series.map(\.label) + ["on the frontier"]).map(\.count).max() ?? 0
    let totalWidth = width + max(legendWidth, 36 + 6.8 * Double(longest))
    let ySpan = max(yRange.upperBound - yRange.lowerBound, 1e-12)
    let logarithmic = logarithmicX && xRange.lowerBound > 0
    let xLow = logarithmic ? log2(xRange.lowerBound) : xRange.lowerBound
    let xHigh = logarithmic ? log2(xRange.upperBound) : xRange.upperBound
    let xSpan = max(xHigh - xLow, 1e-12)
    func px(_ x: Double) -> Double { left + ((logarithmic ? log2(max(x, 1e-12)) : x) - xLow) / xSpan * plotWidth }
    func py(_ y: Double) -> Double { top + (1 - (y - yRange.lowerBound) / ySpan) * plotHeight }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    var out = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(f(totalWidth))" height="\(f(height))" viewBox="0 0 \(f(totalWidth)) \(f(height))" \
      font-family="sans-serif" font-size="12" role="img" aria-label="\(Self.escape(title))">
      <rect x="0" y="0" width="\(f(totalWidth))" height="\(f(height))" fill="white"/>
      <text x="\(f(left + plotWidth / 2))" y="20" text-anchor="middle" font-size="14" font-weight="bold">\(Self.escape(title))</text>

      """
    // Grid and ticks.
    for tick in logarithmic ? Self.logTicks(xRange) : Self.ticks(xRange) {
      let x = px(tick)
      out += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top + plotHeight))\" stroke=\"#e5e5e5\"/>"
      out += "<text x=\"\(f(x))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\">\(Self.number(tick))</text>\n"
    }
    for tick in Self.ticks(yRange, count: 5) {
      let y = py(tick)
      out += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y))\" stroke=\"#e5e5e5\"/>"
      out += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(Self.number(tick))</text>\n"
    }
    out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
    out += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
    out += "<text transform=\"translate(16 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>\n"
    // Frontier: a step line (accuracy holds until the next frontier point's memory).
    if let first = frontier.first {
      var path = "M\(f(px(first.x))),\(f(py(first.y)))"
      for point in frontier.dropFirst() {
        path += " H\(f(px(point.x))) V\(f(py(point.y)))"
      }
      path += " H\(f(left + plotWidth))"
      out += "<path d=\"\(path)\" fill=\"none\" stroke=\"#f2b600\" stroke-width=\"6\" stroke-opacity=\"0.45\"><title>Pareto frontier</title></path>\n"
    }
    for s in series {
      let color = Self.escape(s.color)
      if s.points.count > 1 {
        let path = s.points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f(px($0.element.x))),\(f(py($0.element.y)))" }.joined(separator: " ")
        out += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\"\(Self.dashAttribute(s.dash))/>\n"
      }
      for p in s.points {
        let x = px(p.x)
        out += "<line x1=\"\(f(x))\" y1=\"\(f(py(p.low)))\" x2=\"\(f(x))\" y2=\"\(f(py(p.high)))\" stroke=\"\(color)\" stroke-opacity=\"0.55\"/>"
        if p.highlighted {
          out += "<circle cx=\"\(f(x))\" cy=\"\(f(py(p.y)))\" r=\"7\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.5\"/>"
        }
        out += "<circle cx=\"\(f(x))\" cy=\"\(f(py(p.y)))\" r=\"3.6\" fill=\"\(color)\"><title>\(Self.escape(p.tooltip))</title></circle>\n"
      }
    }
    // Legend, right of the plot.
    let legendX = width + 4
    var y = top + 10
    for s in series {
      out += "<line x1=\"\(f(legendX))\" y1=\"\(f(y - 4))\" x2=\"\(f(legendX + 22))\" y2=\"\(f(y - 4))\" stroke=\"\(Self.escape(s.color))\" stroke-width=\"2.5\"\(Self.dashAttribute(s.dash))/>"
      out += "<text x=\"\(f(legendX + 27))\" y=\"\(f(y))\">\(Self.escape(s.label))</text>\n"
      y += 15
    }
    if !frontier.isEmpty {
      out += "<line x1=\"\(f(legendX))\" y1=\"\(f(y - 4))\" x2=\"\(f(legendX + 22))\" y2=\"\(f(y - 4))\" stroke=\"#f2b600\" stroke-width=\"6\" stroke-opacity=\"0.45\"/>"
      out += "<text x=\"\(f(legendX + 27))\" y=\"\(f(y))\">frontier</text>\n"
      y += 15
      out += "<circle cx=\"\(f(legendX + 11))\" cy=\"\(f(y - 4))\" r=\"6\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.5\"/>"
      out += "<text x=\"\(f(legendX + 27))\" y=\"\(f(y))\">on the frontier</text>\n"
    }
    out += "</svg>"
    return out
  }

  static func dashAttribute(_ dash: String?) -> String {
    dash.map { " stroke-dasharray=\"\(escape($0))\"" } ?? ""
  }

  static func number(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e6 { return String(Int(value)) }
    return String(format: abs(value) < 1 ? "%.2f" : "%.1f", value)
  }

  /// Escapes text for XML content and attribute values.
  public static func escape(_ text: String) -> String {
    var out = ""
    for character in text {
      switch character {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default: out.append(character)
      }
    }
    return out
  }
}
