#!/usr/bin/env bash
# Another package's view of BitBudget:
#  1. by version: a copy of this checkout's HEAD, tagged, is named with `from:` by a copy of
#     Examples/; SwiftPM loads the dependency graph (where it would refuse a package whose
#     manifest is below tools version 6.2 and uses unsafe flags);
#  2. by path: Examples/ builds (debug; the kernels are optimized there too) and its example runs
#     on MODEL (default: the SmolLM2 GGUF the test assets fetch), through public API only.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
root=$(pwd)
model=${1:-$root/.assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/BitBudget"
git -C "$work/BitBudget" tag 99.0.0
# The copy of Examples comes from the clone (what is committed), without a build folder.
cp -R "$work/BitBudget/Examples" "$work/examples"
perl -pi -e "s|\\.package\\(name: \"BitBudget\", path: \"\\.\\.\"\\)|.package(url: \"file://$work/BitBudget\", from: \"99.0.0\")|" "$work/examples/Package.swift"
grep -q "from: \"99.0.0\"" "$work/examples/Package.swift"
if ! (cd "$work/examples" && swift package show-dependencies >"$work/graph.log" 2>&1) || grep -q "unsafe build flags" "$work/graph.log"; then
  cat "$work/graph.log"
  echo "check-consumer: a package depending on BitBudget by version is refused" >&2
  exit 1
fi
echo "by version: the dependency graph loads"

swift build --package-path Examples --product reasoning-example
Examples/.build/debug/reasoning-example "$model" "What is 7 × 8?"
