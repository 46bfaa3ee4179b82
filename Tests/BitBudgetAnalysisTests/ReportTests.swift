import BitBudgetAnalysis
import Foundation
import Testing

@Suite struct ReportTests {
  @Test func ticksAreRoundNumbers() {
    #expect(SVGPlot.ticks(0...1, count: 5) == [0, 0.2, 0.4, 0.6, 0.8, 1])
    #expect(SVGPlot.ticks(0.13...0.71, count: 5) == [0.2, 0.4, 0.6])  // step 0.116 rounds up to 0.2
    #expect(SVGPlot.ticks(0...21.7, count: 6) == [0, 5, 10, 15, 20])
    #expect(SVGPlot.ticks(2...2) == [2])
  }

  @Test func escapesMarkup() {
    #expect(SVGPlot.escape("a<b & \"c\" 'd'>") == "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;")
  }

  @Test func reportIsSelfContainedWithOnePanelPerPolicyAndG() throws {
    let fixture = try SyntheticResults.load()
    let report = HTMLReport(
      title: "t <x>", source: "synthetic", memoryNote: "paper convention.",
      frontiers: [(task: "synthetic-math", frontier: ParetoFrontier(fixture.points))])
    let html = report.html
    #expect(html.hasPrefix("<!DOCTYPE html>"))
    #expect(!html.contains("<script") && !html.contains("src=") && !html.contains("href="))
    #expect(!html.contains("t <x>") && html.contains("t &lt;x&gt;"))
    // One panel per (KV policy, G): full × {1, 4}, and the legend they share.
    #expect(html.components(separatedBy: "<svg ").count - 1 == 3)
    #expect(html.contains("KV full · G = 4 (maj@4)") && html.contains("KV full · G = 1 (pass@1)"))
    #expect(html.contains("total memory, GiB (log scale)") && html.contains("accuracy"))
    // A curve per (model, bits) in each panel: 5 models × 3 precisions; the legend splits them
    // into 5 colours and 3 line styles.
    #expect(html.components(separatedBy: "<title>qwen3-4b 8-bit</title>").count - 1 == 2)
    #expect(html.components(separatedBy: ">qwen3-4b</text>").count - 1 == 1)
    #expect(html.contains(">8-bit</text>") && html.contains(">colour = model</text>"))
    // Token budgets beside the points, the crossover drawn.
    #expect(html.contains(">30k</text>") && html.contains("crossover: weights"))
    #expect(html.contains("Crossover</b> at 7.78 GiB"))
    // BITBUDGET_REPORT_OUT=FILE keeps the report for a look in a browser
    // (scripts/screenshot-report.sh renders it with headless Chromium).
    if let out = ProcessInfo.processInfo.environment["BITBUDGET_REPORT_OUT"] {
      try Data(html.utf8).write(to: URL(fileURLWithPath: out))
    }
  }
}
