#!/usr/bin/env bash
# Long contexts: decode tokens/s against context depth for the KV policies, beside llama.cpp's full
# cache at the same depths, and prefill of short and long prompts — each depth's runs back to back
# (bandwidth on shared machines moves by ±30% within minutes). Also G samples sharing the prompt at
# one depth, and the memory model's estimate against the peak RSS of the deepest full-cache run.
# Not part of CI: at 32k tokens a run prefills for minutes.
#
#   scripts/bench-depth.sh                  # 4 layers of Qwen3-0.6B's shapes (random bf16)
#   DEPTHS="1024 8192" POLICIES="full rkv:2048" scripts/bench-depth.sh
#
# Environment: MODEL (an HF folder; default .assets/qwen3-0.6b-shape-4l, made by
# scripts/make-bench-model.py), DEPTHS, POLICIES, PREFILLS (prompt lengths of the prefill rows),
# GEN (decoded tokens per run, default 128 so that R-KV compresses once per run as in a long
# generation: every 128 steps), SAMPLES_DEPTH and SAMPLES (the G-samples row), THREADS,
# OUT (raw JSON lines, default .assets/bench-depth.jsonl). Prints a markdown table; with
# SVG=path also draws the decode rates (scripts/plot-depth.py).
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=$PWD/.assets
MODEL=${MODEL:-$ASSETS/qwen3-0.6b-shape-4l}
DEPTHS=${DEPTHS:-"1024 2048 4096 8192 16384 32768"}
POLICIES=${POLICIES:-"full rkv:2048 streaming:2048 hqq:4 rkv:2048+hqq:4"}
PREFILLS=${PREFILLS:-"2048 16384"}
GEN=${GEN:-128}
SAMPLES=${SAMPLES:-8}
SAMPLES_DEPTH=${SAMPLES_DEPTH:-8192}
THREADS=${THREADS:-2}
OUT=${OUT:-$ASSETS/bench-depth.jsonl}
mkdir -p "$ASSETS"

[ -f "$MODEL/config.json" ] || python3 scripts/make-bench-model.py "$MODEL" --layers 4
# Builds llama.cpp and MODEL's bf16 GGUF when missing (zero rounds: nothing measured there).
MODEL="$MODEL" scripts/bench-vs-llamacpp.sh 0 >/dev/null
GGUF=$MODEL/model-bf16.gguf
LLAMA=$ASSETS/llama.cpp/build/bin/llama-bench
OURS=.build/release/bitbudget
: >"$OUT"

record() {  # engine, label, JSON of one run → one line of $OUT
  python3 - "$@" >>"$OUT" <<'PY'
import json, sys
engine, label, raw = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if engine == "bitbudget":
    row = {"prefill": raw["prefill_tokens_per_s"], "decode": raw["decode_tokens_per_s"], "depth": raw["depth"],
           "prompt": raw["prompt_tokens"], "samples": raw["parallel"], "kv_bytes": raw["kv_bytes"],
           "peak_rss_bytes": raw["peak_rss_bytes"], "weights_bytes": raw["weights_bytes"], "scratch_bytes": raw["scratch_bytes"]}
else:
    test = raw[0]
    rate = test["avg_ts"]
    row = {"prefill": rate if test["n_gen"] == 0 else None, "decode": rate if test["n_gen"] > 0 else None,
           "depth": test.get("n_depth", 0), "prompt": test["n_prompt"], "samples": 1}
row.update(engine=engine, label=label)
print(json.dumps(row))
PY
}

ours() {  # label, bench arguments…
  local label=$1
  shift
  record bitbudget "$label" "$($OURS bench --model "$MODEL" --threads "$THREADS" --repetitions 1 --json "$@")"
}

theirs() {  # label, llama-bench arguments…
  local label=$1
  shift
  record llama.cpp "$label" "$("$LLAMA" -m "$GGUF" -t "$THREADS" -r 1 -o json "$@" 2>/dev/null)"
}

echo "model: $MODEL, $THREADS threads, decode $GEN tokens per run; raw results in $OUT" >&2
for prompt in $PREFILLS; do
  echo "prefill $prompt" >&2
  ours full --prompt-tokens "$prompt" --gen-tokens 1
  theirs full -p "$prompt" -n 0
done
for depth in $DEPTHS; do
  echo "depth $depth" >&2
  for policy in $POLICIES; do
    ours "$policy" --kv "$policy" --prompt-tokens 16 --depth "$depth" --gen-tokens "$GEN"
  done
  theirs full -p 0 -n "$GEN" -d "$depth"
done
echo "$SAMPLES samples at depth $SAMPLES_DEPTH" >&2
ours "full, 1 sample" --prompt-tokens 16 --depth "$SAMPLES_DEPTH" --gen-tokens "$GEN"
ours "full, $SAMPLES samples" --prompt-tokens 16 --depth "$SAMPLES_DEPTH" --gen-tokens "$GEN" --parallel "$SAMPLES"

deepest=${DEPTHS##* }
# The bench's prompt at depth D is D tokens (its own 16-token prompt is not used).
estimate=$($OURS memory --model "$MODEL" --prompt-tokens "$deepest" --tokens "$GEN" --threads "$THREADS" --json)

python3 - "$OUT" "$estimate" "$deepest" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
estimate, deepest = json.loads(sys.argv[2]), int(sys.argv[3])
mib = lambda b: b / 2**20

print("| prefill | BitBudget tok/s | llama.cpp tok/s | ratio |")
print("|---|---|---|---|")
for ours in (r for r in rows if r["engine"] == "bitbudget" and r["prefill"] and r["depth"] == 0 and r["prompt"] > 16):
    theirs = next(r for r in rows if r["engine"] == "llama.cpp" and r["prompt"] == ours["prompt"])
    print(f"| {ours['prompt']} tokens | {ours['prefill']:.1f} | {theirs['prefill']:.1f} | {ours['prefill'] / theirs['prefill']:.2f} |")
print()

depths = sorted({r["depth"] for r in rows if r["engine"] == "llama.cpp" and r["decode"]})
policies = list(dict.fromkeys(r["label"] for r in rows if r["engine"] == "bitbudget" and r["prompt"] == 16 and r["samples"] == 1 and "sample" not in r["label"]))
print("| decode tok/s at depth | " + " | ".join(policies) + " | llama.cpp full | full vs llama.cpp |")
print("|---" * (len(policies) + 3) + "|")
for depth in depths:
    ours = {r["label"]: r for r in rows if r["engine"] == "bitbudget" and r["depth"] == depth and r["samples"] == 1 and r["label"] in policies}
    theirs = next(r for r in rows if r["engine"] == "llama.cpp" and r["depth"] == depth and r["decode"])
    cells = [f"{ours[p]['decode']:.1f}" if p in ours else "–" for p in policies]
    ratio = f"{ours['full']['decode'] / theirs['decode']:.2f}" if "full" in ours else "–"
    print(f"| {depth} | " + " | ".join(cells) + f" | {theirs['decode']:.1f} | {ratio} |")
print()

sampled = [r for r in rows if "sample" in r["label"]]
if len(sampled) == 2:
    one, many = sampled
    print(f"G = {many['samples']} at depth {many['depth']}: {many['decode']:.1f} tok/s in all, "
          f"{many['decode'] / one['decode']:.2f}× one sample ({one['decode']:.1f} tok/s).")

deep = next((r for r in rows if r["engine"] == "bitbudget" and r["label"] == "full" and r["depth"] == deepest), None)
if deep:
    measured = deep["weights_bytes"] + deep["kv_bytes"] + deep["scratch_bytes"]
    print(f"Depth {deepest}, full cache: the engine holds weights + KV + scratch = {mib(measured):.1f} MiB "
          f"(KV {mib(deep['kv_bytes']):.1f}, scratch {mib(deep['scratch_bytes']):.1f}); `bitbudget memory` estimates "
          f"{mib(estimate['total_bytes']):.1f} MiB (KV {mib(estimate['kv_bytes']):.1f}, scratch {mib(estimate['scratch_bytes']):.1f}); "
          f"peak RSS {mib(deep['peak_rss_bytes']):.1f} MiB.")
PY
if [ -n "${SVG:-}" ]; then python3 scripts/plot-depth.py "$OUT" "$SVG"; fi
