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
    /// A short label written beside the point (its token budget).
    public var label: String?

    public init(x: Double, y: Double, low: Double, high: Double, highlighted: Bool = false, tooltip: String = "", label: String? = nil) {
      self.x = x
      self.y = y
      self.low = low
      self.high = high
      self.highlighted = highlighted
      self.tooltip = tooltip
      self.label = label
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

  /// A vertical line across the plot at memory `x`, labelled at the top (the crossover).
  public struct Marker: Sendable {
    public var x: Double
    public var label: String

    public init(x: Double, label: String) {
      self.x = x
      self.label = label
    }
  }

  /// What colours and line styles mean, drawn as two blocks: colour = model, line style = weight
  /// precision (a legend per curve would repeat every model three times).
  public struct Legend: Sendable {
    public struct Entry: Sendable {
      public var label: String
      public var color: String
      /// An SVG `stroke-dasharray`, or nil for a solid line.
      public var dash: String?

      public init(label: String, color: String, dash: String? = nil) {
        self.label = label
        self.color = color
        self.dash = dash
      }
    }

    public var colors: [Entry]
    public var lineStyles: [Entry]
    /// Also explain the frontier band and the rings (on plots that draw them).
    public var frontier: Bool

    public init(colors: [Entry], lineStyles: [Entry], frontier: Bool = true) {
      self.colors = colors
      self.lineStyles = lineStyles
      self.frontier = frontier
    }

    /// Width the legend needs (≈ 6.8 px per character at 12 px sans-serif).
    public var width: Double {
      let labels = colors.map(\.label) + lineStyles.map(\.label) + ["on the frontier", "colour = model"]
      return 40 + 6.8 * Double(labels.map(\.count).max() ?? 0)
    }

    /// Height the legend needs.
    public var height: Double {
      Double(colors.count + lineStyles.count + (frontier ? 3 : 0) + 2) * 16 + 14
    }

    /// The legend's SVG elements with its top-left corner at (`x`, `y`).
    func elements(x: Double, y top: Double) -> String {
      func f(_ v: Double) -> String { String(format: "%.1f", v) }
      var out = ""
      var y = top + 12
      func heading(_ text: String) {
        out += "<text x=\"\(f(x))\" y=\"\(f(y))\" font-weight=\"bold\">\(SVGPlot.escape(text))</text>\n"
        y += 16
      }
      func entry(_ label: String, stroke: String) {
        out += "<line x1=\"\(f(x))\" y1=\"\(f(y - 4))\" x2=\"\(f(x + 26))\" y2=\"\(f(y - 4))\" \(stroke)/>"
        out += "<text x=\"\(f(x + 32))\" y=\"\(f(y))\">\(SVGPlot.escape(label))</text>\n"
        y += 16
      }
      heading("colour = model")
      for e in colors { entry(e.label, stroke: "stroke=\"\(SVGPlot.escape(e.color))\" stroke-width=\"3\"") }
      y += 6
      heading("line = weights")
      for e in lineStyles {
        entry(e.label, stroke: "stroke=\"\(SVGPlot.escape(e.color))\" stroke-width=\"2\"\(SVGPlot.dashAttribute(e.dash))")
      }
      if frontier {
        y += 6
        entry("frontier", stroke: "stroke=\"#f2b600\" stroke-width=\"6\" stroke-opacity=\"0.45\"")
        out += "<circle cx=\"\(f(x + 13))\" cy=\"\(f(y - 4))\" r=\"6\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.5\"/>"
        out += "<text x=\"\(f(x + 32))\" y=\"\(f(y))\">on the frontier</text>\n"
      }
      return out
    }

    /// The legend alone, as a self-contained SVG.
    public var svg: String {
      let w = String(format: "%.1f", width + 8), h = String(format: "%.1f", height)
      return """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(w)" height="\(h)" viewBox="0 0 \(w) \(h)" font-family="sans-serif" font-size="12">
        \(elements(x: 4, y: 0))</svg>
        """
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
  /// Vertical lines across the plot (the crossover).
  public var markers: [Marker] = []
  /// Drawn right of the plot area when set (a standalone plot); a report draws one legend for
  /// all its panels instead.
  public var legend: Legend?
  /// `width="100%"`: the plot scales to its container (a report's grid cell); else its own size.
  public var fillsWidth = false
  /// Size of the plot without the legend, in px (the viewBox; scaled when `fillsWidth`).
  public var width = 520.0
  public var height = 360.0

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
    let totalWidth = width + (legend.map { $0.width + 8 } ?? 0)
    let totalHeight = max(height, top + (legend?.height ?? 0))
    let ySpan = max(yRange.upperBound - yRange.lowerBound, 1e-12)
    let logarithmic = logarithmicX && xRange.lowerBound > 0
    let xLow = logarithmic ? log2(xRange.lowerBound) : xRange.lowerBound
    let xHigh = logarithmic ? log2(xRange.upperBound) : xRange.upperBound
    let xSpan = max(xHigh - xLow, 1e-12)
    func px(_ x: Double) -> Double { left + ((logarithmic ? log2(max(x, 1e-12)) : x) - xLow) / xSpan * plotWidth }
    func py(_ y: Double) -> Double { top + (1 - (y - yRange.lowerBound) / ySpan) * plotHeight }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    let size = fillsWidth ? "width=\"100%\"" : "width=\"\(f(totalWidth))\" height=\"\(f(totalHeight))\""
    var out = """
      <svg xmlns="http://www.w3.org/2000/svg" \(size) viewBox="0 0 \(f(totalWidth)) \(f(totalHeight))" \
      font-family="sans-serif" font-size="12" role="img" aria-label="\(Self.escape(title))">
      <rect x="0" y="0" width="\(f(totalWidth))" height="\(f(totalHeight))" fill="white"/>
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
    for marker in markers where xRange.contains(marker.x) {
      let x = px(marker.x)
      out += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top + plotHeight))\" stroke=\"#555\" stroke-width=\"1.2\" stroke-dasharray=\"5 4\"/>"
      // Written right of the line unless it would cross the frame (≈ 6.8 px per character).
      let anchor = x + 4 + 6.8 * Double(marker.label.count) > left + plotWidth ? "end" : "start"
      out += "<text x=\"\(f(anchor == "end" ? x - 4 : x + 4))\" y=\"\(f(top + 13))\" text-anchor=\"\(anchor)\" fill=\"#333\">\(Self.escape(marker.label))</text>\n"
    }
    for s in series {
      let color = Self.escape(s.color)
      if s.points.count > 1 {
        let path = s.points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f(px($0.element.x))),\(f(py($0.element.y)))" }.joined(separator: " ")
        out += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\"\(Self.dashAttribute(s.dash))><title>\(Self.escape(s.label))</title></path>\n"
      }
      for p in s.points {
        let x = px(p.x)
        out += "<line x1=\"\(f(x))\" y1=\"\(f(py(p.low)))\" x2=\"\(f(x))\" y2=\"\(f(py(p.high)))\" stroke=\"\(color)\" stroke-opacity=\"0.35\"/>"
        if p.highlighted {
          out += "<circle cx=\"\(f(x))\" cy=\"\(f(py(p.y)))\" r=\"7\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.5\"/>"
        }
        out += "<circle cx=\"\(f(x))\" cy=\"\(f(py(p.y)))\" r=\"3.6\" fill=\"\(color)\"><title>\(Self.escape(p.tooltip))</title></circle>\n"
        if let label = p.label {
          out += "<text x=\"\(f(x + 5))\" y=\"\(f(py(p.y) - 6))\" font-size=\"10\" fill=\"\(color)\">\(Self.escape(label))</text>\n"
        }
      }
    }
    if let legend { out += legend.elements(x: width + 4, y: top) }
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
