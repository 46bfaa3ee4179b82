#!/usr/bin/env bash
# Builds the libFuzzer harnesses in Fuzz/ (ASan + libFuzzer; one executable, the target chosen by
# BITBUDGET_FUZZ_TARGET) and runs each target for a bounded time on a temporary copy of its seed
# corpus (Fuzz/corpus/<target>/, never modified here) with its dictionary (Fuzz/dict/<target>.dict).
#
#   scripts/fuzz.sh                       # every target, 30 s each (CI)
#   scripts/fuzz.sh 300 gguf safetensors  # 300 s each, only these targets
#   scripts/fuzz.sh --runs 1000000 --seconds 900 tokenizer-json   # stop after 1M executions
#   scripts/fuzz.sh --list                # the targets
#
# Options: --seconds N (or FUZZ_SECONDS; a bare number works too), --runs N (or FUZZ_RUNS; 0 = no
# limit), --no-build, --debug (a debug build instead of release), --keep-corpus DIR (keep the
# grown corpora in DIR/<target>/ instead of deleting them), --seeds DIR (start from DIR/<target>/
# instead of Fuzz/corpus/<target>/, e.g. a kept corpus), --logs DIR (keep each libFuzzer log as
# DIR/<target>.log). Every libFuzzer run uses one job and one
# worker (a single in-process libFuzzer), -timeout=10 and -rss_limit_mb=2048.
#
# A crash, Swift trap, ASan report, leak, timeout or out-of-memory fails the target; its reproducer
# and the log are kept under Fuzz/.build/fuzz-artifacts/<target>/<time>/ and printed. Replay one with
#   BITBUDGET_FUZZ_TARGET=<target> Fuzz/.build/release/bitbudget-fuzz <reproducer>
# Exit status: 0 when every target ran clean, 1 otherwise. The last line is "N passed, M failed".
#
# BITBUDGET_BUILD_LOCK=/path/to/lockfile: wrap the build in `flock` on that file (for machines
# where several people build at once; CI runs alone and leaves it unset).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ=$ROOT/Fuzz

if ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

ALL_TARGETS=(safetensors gguf tokenizer-json tokenizer-encode chat-template sweep-grid task-jsonl task-gpqa-csv
  completion-response model-config)
SECONDS_EACH=${FUZZ_SECONDS:-30}
RUNS=${FUZZ_RUNS:-0}
BUILD=1
CONFIGURATION=release
KEEP_CORPUS=""
SEEDS=$FUZZ/corpus
LOGS=""
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --debug) CONFIGURATION=debug; shift ;;
    --keep-corpus) KEEP_CORPUS=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --logs) LOGS=$2; shift 2 ;;
    --list) printf '%s\n' "${ALL_TARGETS[@]}"; exit 0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) SECONDS_EACH=$1; shift ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
for target in "${TARGETS[@]}"; do
  if ! printf '%s\n' "${ALL_TARGETS[@]}" | grep -qx -- "$target"; then
    echo "fuzz.sh: unknown target \"$target\" (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
done

# ---------------------------------------------------------------- build
# SwiftPM's --sanitize flags reach swiftc as separate -sanitize=fuzzer and -sanitize=address, of
# which swiftc 6.3 keeps only the last (no coverage instrumentation in Swift code); the combined
# -Xswiftc -sanitize=fuzzer,address comes after them and wins. --sanitize still instruments the C
# targets (libyaml, SQLite shims, BoringSSL, …) and links libFuzzer's main. -enable-testing lets the
# harness @testable-import internal entry points in a release build.
BUILD_FLAGS=(--package-path "$FUZZ" --scratch-path "$FUZZ/.build" --product bitbudget-fuzz -c "$CONFIGURATION"
  --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing)
if command -v ld.lld >/dev/null 2>&1; then
  BUILD_FLAGS+=(-Xswiftc -use-ld=lld)  # gold prints ~200 warnings about ASan's local symbols
fi
if [ "$BUILD" = 1 ]; then
  echo "fuzz.sh: building the fuzz harness ($CONFIGURATION, ASan + libFuzzer)"
  started=$(date +%s)
  if [ -n "${BITBUDGET_BUILD_LOCK:-}" ] && command -v flock >/dev/null 2>&1; then
    flock "$BITBUDGET_BUILD_LOCK" swift build "${BUILD_FLAGS[@]}"
  else
    swift build "${BUILD_FLAGS[@]}"
  fi
  echo "fuzz.sh: built in $(( $(date +%s) - started )) s"
fi
BIN=$FUZZ/.build/$CONFIGURATION/bitbudget-fuzz
[ -x "$BIN" ] || { echo "fuzz.sh: $BIN is missing (build without --no-build first)" >&2; exit 2; }

# ---------------------------------------------------------------- run
# Swift's own crash backtracer reads the stack in a way ASan reports as an overflow; ASan prints
# the (symbolized) stack of a Swift trap (SIGILL) instead.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigill=1:handle_abort=1:detect_leaks=1:symbolize=1"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$FUZZ/lsan.supp:print_suppressions=0"
# The toolchain's symbolizer (beside swift) understands its own debug info; a system one may be older.
SYMBOLIZER=$(dirname "$(command -v swift)")/llvm-symbolizer
[ -x "$SYMBOLIZER" ] || SYMBOLIZER=$(command -v llvm-symbolizer || true)
if [ -n "$SYMBOLIZER" ]; then
  export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$SYMBOLIZER}
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bitbudget-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ARTIFACTS=$FUZZ/.build/fuzz-artifacts

passed=0
failed=0
SUMMARY=()
REPRODUCERS=()
for target in "${TARGETS[@]}"; do
  corpus=$WORK/corpus/$target
  run_artifacts=$ARTIFACTS/$target/$(date +%Y%m%d-%H%M%S)
  mkdir -p "$corpus" "$run_artifacts"
  if compgen -G "$SEEDS/$target/*" >/dev/null; then
    cp "$SEEDS/$target/"* "$corpus/"
  else
    echo "fuzz.sh: no seeds in $SEEDS/$target/; starting $target from an empty corpus"
  fi
  log=$WORK/$target.log
  # No -jobs/-workers: libFuzzer then fuzzes in this one process (one job, one worker; -jobs=1
  # would fork a child that logs to ./fuzz-0.log instead).
  args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$run_artifacts/")
  [ "$RUNS" != 0 ] && args+=(-runs="$RUNS")
  [ -f "$FUZZ/dict/$target.dict" ] && args+=(-dict="$FUZZ/dict/$target.dict")
  echo "fuzz.sh: fuzzing $target (${SECONDS_EACH} s$([ "$RUNS" != 0 ] && echo ", at most $RUNS runs"))"
  status=0
  BITBUDGET_FUZZ_TARGET=$target "$BIN" "${args[@]}" "$corpus" >"$log" 2>&1 || status=$?
  # Figures from libFuzzer's last status line and final stats.
  last=$(grep -E '^#[0-9]+[[:space:]]+(INITED|NEW|REDUCE|pulse|DONE|RELOAD)' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last"); ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
  # (After a crash libFuzzer may print its final stats twice: take the last.)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  [ -z "$execs" ] && execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  new=$(ls "$run_artifacts" | grep -E '^(crash|leak|timeout|oom)-' || true)
  if [ "$status" = 0 ] && [ -z "$new" ]; then
    result=ok
    passed=$((passed + 1))
    rm -rf "$run_artifacts"
  else
    result=FAILED
    failed=$((failed + 1))
    kind=$(grep -m1 -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-zA-Z -]+|Fatal error: .*|invariant failed: .*' "$log" || echo "exit status $status")
    echo "fuzz.sh: $target FAILED: $kind"
    grep -E '^\s+#[0-9]+ 0x' "$log" | grep -vE 'libclang_rt|compiler-rt|libswiftCore|libc\.so|FuzzerLoop|FuzzerDriver|FuzzerMain' | head -8 || true
    for file in $new; do
      REPRODUCERS+=("$target: $run_artifacts/$file")
      echo "fuzz.sh: reproducer: $run_artifacts/$file"
      echo "fuzz.sh:   replay: BITBUDGET_FUZZ_TARGET=$target $BIN $run_artifacts/$file"
      echo "fuzz.sh:   minimize: BITBUDGET_FUZZ_TARGET=$target $BIN -minimize_crash=1 -runs=100000 $run_artifacts/$file"
    done
    cp "$log" "$run_artifacts/fuzz.log"
    echo "fuzz.sh: full log: $run_artifacts/fuzz.log"
  fi
  SUMMARY+=("$(printf '%-20s %-6s execs %-9s exec/s %-6s cov %-6s ft %-7s corpus %-12s peak-rss %sMb' \
    "$target" "$result" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}")")
  if [ -n "$LOGS" ]; then
    mkdir -p "$LOGS" && cp "$log" "$LOGS/$target.log"
  fi
  if [ -n "$KEEP_CORPUS" ]; then
    mkdir -p "$KEEP_CORPUS/$target" && cp "$corpus/"* "$KEEP_CORPUS/$target/"
  fi
done

echo
echo "fuzz.sh: summary (${SECONDS_EACH} s per target$([ "$RUNS" != 0 ] && echo ", at most $RUNS runs"))"
printf '%s\n' "${SUMMARY[@]}"
if [ ${#REPRODUCERS[@]} -gt 0 ]; then printf 'reproducer %s\n' "${REPRODUCERS[@]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
