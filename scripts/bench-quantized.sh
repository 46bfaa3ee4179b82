#!/usr/bin/env bash
# Decode and prefill rates of one model at 16, 8 and 4 bits, with rounded (int8) and exact (f32) activations,
# interleaved round by round (bandwidth on shared machines moves by ±30% within minutes, so
# only numbers of one round compare), and their ratio to 16 bits. Not part of CI.
#
#   scripts/bench-quantized.sh [ROUNDS]     # default: random Qwen3-0.6B shape, and the same with
#                                           # a 2048-token vocabulary (linears ~97% of the bytes)
#   MODELS="dir-or-gguf ..." CONFIGS="--weights 4|--gguf-dtype bf16" scripts/bench-quantized.sh
#
# Models it makes go to .assets/ (ignored by git), with scripts/make-bench-model.py (numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
THREADS=${THREADS:-2}
ASSETS=$PWD/.assets
if [ -z "${MODELS:-}" ]; then
  [ -f "$ASSETS/qwen3-0.6b-shape/config.json" ] || python3 scripts/make-bench-model.py "$ASSETS/qwen3-0.6b-shape"
  [ -f "$ASSETS/qwen3-0.6b-shape-v2048/config.json" ] || python3 scripts/make-bench-model.py "$ASSETS/qwen3-0.6b-shape-v2048" --vocab 2048
  MODELS="$ASSETS/qwen3-0.6b-shape $ASSETS/qwen3-0.6b-shape-v2048"
fi
CONFIGS=${CONFIGS:-"--weights 16|--weights 8 --activations exact|--weights 8 --activations rounded|--weights 4 --activations exact|--weights 4 --activations rounded"}
swift build -c release --product bitbudget >/dev/null
BIN=.build/release/bitbudget
IFS='|' read -r -a configs <<<"$CONFIGS"
for model in $MODELS; do
  echo "model: $model ($THREADS threads, prefill $PROMPT, decode $GEN; tokens/s, ratio to the round's first row)"
  printf '%-6s %-40s %10s %10s %8s %8s %10s\n' round config pp tg "pp ×" "tg ×" "weights MiB"
  for round in $(seq 1 "$ROUNDS"); do
    base_pp="" base_tg=""
    for config in "${configs[@]}"; do
      # shellcheck disable=SC2086
      json=$("$BIN" bench --model "$model" $config --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --threads "$THREADS" --repetitions 2 --json)
      read -r pp tg mib < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["prefill_tokens_per_s"], d["decode_tokens_per_s"], d["weights_bytes"] / 2**20)' "$json")
      base_pp=${base_pp:-$pp} base_tg=${base_tg:-$tg}
      python3 -c 'import sys; r, c, pp, tg, bp, bt, mib = sys.argv[1:]; print(f"{r:<6} {c:<40} {float(pp):10.1f} {float(tg):10.1f} {float(pp)/float(bp):8.2f} {float(tg)/float(bt):8.2f} {float(mib):10.0f}")' \
        "$round" "$config" "$pp" "$tg" "$base_pp" "$base_tg" "$mib"
    done
  done
done
