#!/usr/bin/env bash
# Builds the DocC documentation of every library target (catalogs in Sources/*/*.docc) and fails
# on any warning in it: a symbol link that resolves to nothing, a documented parameter list that
# misses a parameter, an article that collides with a symbol. SwiftPM's notes about unhandled
# files inside dependencies are not ours and pass. Archives: .build/plugins/Swift-DocC/outputs/.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(BitBudgetEngine BitBudgetKernels BitBudgetMemory BitBudgetTokenizer BitBudgetEval BitBudgetAnalysis BitBudgetLab BitBudgetHub BitBudgetServer)
args=()
for target in "${targets[@]}"; do args+=(--target "$target"); done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift package --disable-sandbox generate-documentation "${args[@]}" >"$log" 2>&1 || { cat "$log"; exit 1; }
if grep -n "warning:" "$log" | grep -v "which are unhandled; explicitly declare them as resources"; then
  grep -A8 "warning:" "$log" | grep -v "which are unhandled" || true
  echo "check-docs: the documentation has warnings (above)" >&2
  exit 1
fi
echo "check-docs: ${#targets[@]} documentation archives, no warnings"
