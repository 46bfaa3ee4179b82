#!/usr/bin/env bash
# CI: renders the HTML report of the analysis tests' synthetic result set (5 models × 3 precisions ×
# 8 budgets × G 1/4) with headless Chromium and looks at the PNG: the page is not blank, both panels
# and the shared legend are drawn (every model's colour, the frontier band), and nothing runs off
# the page's right edge; and the report's inline SVGs parse as XML (the standalone files of
# `frontier --svg` are checked by the CLI tests). Needs the test build (swift build --build-tests)
# and Debian's chromium-headless-shell (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if ! command -v chromium-headless-shell >/dev/null && ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium-headless-shell >/dev/null
fi

BITBUDGET_REPORT_OUT="$out/report.html" swift test --skip-build --filter ReportTests >"$out/test.log" 2>&1 || { cat "$out/test.log"; exit 1; }
scripts/screenshot-report.sh "$out/report.html" "$out/report.png" 1280 1400 >/dev/null

python3 - "$out/report.png" <<'PY'
import struct, sys, zlib

def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 4 if color == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    assert len(raw) == height * (stride + 1), "truncated image data"
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        assert kind <= 4, f"unknown PNG filter {kind}"
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1: row[i] = (row[i] + left) & 255
            elif kind == 2: row[i] = (row[i] + up) & 255
            elif kind == 3: row[i] = (row[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                row[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append([tuple(row[x * channels:x * channels + 3]) for x in range(width)])
        previous = row
    return width, height, rows

width, height, rows = read_png(sys.argv[1])
assert (width, height) == (1280, 1400), (width, height)
pixels = [p for row in rows for p in row]
ink = sum(1 for p in pixels if min(p) < 235) / len(pixels)
assert ink > 0.03, f"the page is nearly blank ({ink:.1%} ink)"

def near(color, target, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(color, target))

palette = {"qwen3-0.6b": (0x1f, 0x77, 0xb4), "qwen3-1.7b": (0xd6, 0x27, 0x28), "qwen3-4b": (0x2c, 0xa0, 0x2c),
           "qwen3-8b": (0x94, 0x67, 0xbd), "qwen3-14b": (0xff, 0x7f, 0x0e)}
for model, color in palette.items():
    count = sum(1 for p in pixels if near(p, color))
    assert count > 200, f"{model}'s colour barely appears ({count} pixels)"
band = sum(1 for p in pixels if near(p, (249, 225, 140), 25))
assert band > 500, f"the frontier band is missing ({band} pixels)"
# Nothing runs off the right edge: the last 16 columns are page background.
edge = [rows[y][x] for y in range(height) for x in range(width - 16, width)]
assert all(min(p) >= 235 for p in edge), "content reaches the page's right edge"
print(f"report renders: {width}×{height}, {ink:.1%} ink, all 5 model colours, frontier band {band} px")
PY

# Standalone SVG panels (frontier --svg) of a results database the CLI tests' sweep writes are
# covered by the CLI tests; here the synthetic report's SVGs must parse as XML.
python3 - "$out/report.html" <<'PY'
import re, sys
import xml.etree.ElementTree as ET
html = open(sys.argv[1], encoding="utf-8").read()
svgs = re.findall(r"<svg .*?</svg>", html, re.S)
assert len(svgs) == 3, len(svgs)
for svg in svgs:
    ET.fromstring(svg)
print(f"{len(svgs)} SVG elements parse as XML")
PY
