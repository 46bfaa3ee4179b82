#!/usr/bin/env bash
# Renders a BitBudget HTML report (bitbudget frontier --html) to a PNG with headless Chromium, to
# check that it reads in a browser. Needs Debian's chromium (apt-get install chromium).
# Usage: scripts/screenshot-report.sh REPORT.html OUT.png [WIDTH HEIGHT]
set -euo pipefail
report=$(realpath "$1")
out=$2
width=${3:-1280}
height=${4:-2400}
browser=$(command -v chromium-headless-shell || command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "no chromium: apt-get install chromium" >&2
  exit 1
fi
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$width,$height" \
  --screenshot="$(realpath -m "$out")" "file://$report" 2>/dev/null
echo "wrote $out"
