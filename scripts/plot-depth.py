#!/usr/bin/env python3
"""Draws decode tokens/s against context depth from scripts/bench-depth.sh's JSON lines as a
standalone SVG (no plotting library needed): one line per KV policy, llama.cpp's full cache dashed.

  python3 scripts/plot-depth.py RESULTS.jsonl OUT.svg
"""
import json
import math
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def main():
    rows = [json.loads(line) for line in open(sys.argv[1])]
    series = {}
    for r in rows:
        if not r.get("decode") or r["samples"] != 1 or "sample" in r["label"]:
            continue
        if r["engine"] == "bitbudget" and r["prompt"] != 16:
            continue
        name = r["label"] if r["engine"] == "bitbudget" else "llama.cpp full"
        series.setdefault(name, []).append((r["depth"], r["decode"]))
    if not series:
        sys.exit("no decode rows")
    width, height = 760, 440
    left, right, top, bottom = 70, 190, 30, 60
    depths = sorted({d for points in series.values() for d, _ in points})
    rates = [v for points in series.values() for _, v in points]
    x0, x1 = math.log2(depths[0]), math.log2(depths[-1])
    y0, y1 = math.floor(math.log10(min(rates)) * 4) / 4, math.ceil(math.log10(max(rates)) * 4) / 4

    def x(depth):
        return left + (math.log2(depth) - x0) / max(x1 - x0, 1e-9) * (width - left - right)

    def y(rate):
        return height - bottom - (math.log10(rate) - y0) / max(y1 - y0, 1e-9) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for depth in depths:
        out.append(f'<line x1="{x(depth):.1f}" y1="{top}" x2="{x(depth):.1f}" y2="{height - bottom}" stroke="#eee"/>')
        label = f"{depth // 1024}k" if depth >= 1024 else str(depth)
        out.append(f'<text x="{x(depth):.1f}" y="{height - bottom + 18}" text-anchor="middle">{label}</text>')
    for tick in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]:
        if y0 <= math.log10(tick) <= y1:
            out.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" y2="{y(tick):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 15}" text-anchor="middle">context depth (tokens)</text>')
    out.append(f'<text transform="translate(18 {(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">decode tokens/s (log scale)</text>')
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if name.startswith("llama.cpp") else ""
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(d):.1f},{y(v):.1f}" for i, (d, v) in enumerate(sorted(points)))
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for d, v in points:
            out.append(f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"><title>{name} at {d}: {v:.1f} tok/s</title></circle>')
        ly = top + 10 + index * 20
        out.append(f'<line x1="{width - right + 15}" y1="{ly}" x2="{width - right + 45}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{width - right + 52}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
