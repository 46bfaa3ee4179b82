#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer and ThreadSanitizer (the thread pool, batched
# decode, concurrent store writes and the remote runner's workers are what TSan watches), each in
# its own build folder (.build-address, .build-thread: a cold build of everything, 10+ minutes
# each on 2 cores). Exits non-zero on the first report.
#   scripts/sanitizers.sh            both
#   scripts/sanitizers.sh thread     one
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null 2>&1; then export PATH="/opt/swift/usr/bin:$PATH"; fi
scripts/fetch-test-assets.sh >/dev/null

# LeakSanitizer is off: the Swift runtime's metadata caches and Foundation's singletons live for
# the whole process by design and are reported as leaks. halt_on_error makes a report fail the run.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0"
export TSAN_OPTIONS="halt_on_error=1"
for sanitizer in ${@:-address thread}; do
  echo "== swift test --sanitize=$sanitizer"
  swift build --build-tests --sanitize="$sanitizer" --scratch-path ".build-$sanitizer"
  # One test at a time: sanitized compute tests are 10-50x slower and, run in parallel, starve the
  # remote-backend tests' timers of threads until their timing expectations fail.
  swift test --skip-build --no-parallel --sanitize="$sanitizer" --scratch-path ".build-$sanitizer"
done
