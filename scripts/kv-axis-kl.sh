#!/usr/bin/env bash
# KL(full cache ‖ HQQ cache) of the next-token distributions for HQQ KV quantization at transformers'
# default axis 0 (`hqq:B,axis=0`: groups down the whole history, re-quantized every 128 tokens) and
# at the per-token axis 1 (`hqq:B`), on the test assets' small models, scoring this repository's
# README as of commit e96b1f6 (pinned, so later edits do not move the figures): the first 256
# tokens as one prefill, then 512 tokens fed one at a time.
#   bash scripts/kv-axis-kl.sh        (after `swift build -c release`; assets: scripts/fetch-test-assets.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/bitbudget
text=$(mktemp)
trap 'rm -f "$text"' EXIT
git show e96b1f6:README.md > "$text"
models=(.assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf .assets/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf)
echo "| model | --kv | mean KL (nats) | p99 KL | top-1 agreement | perplexity (full → this) |"
echo "|---|---|---|---|---|---|"
for model in "${models[@]}"; do
  for kv in "hqq:4" "hqq:4,axis=0" "hqq:2" "hqq:2,axis=0"; do
    "$bin" perplexity --model "$model" --text-file "$text" --prompt-tokens 256 --tokens 768 --kv "$kv" --threads 2 --json |
      python3 -c "
import json, sys
r = json.load(sys.stdin)
s = r['score']
print('| %s | \`%s\` | %.4f | %.4f | %.1f%% | %.2f → %.2f |' % ('$(basename "$model")', '$kv', s['mean_kl'], s['kl99'],
      100 * s['top1_agreement'], s['baseline_perplexity'], s['perplexity']))"
  done
done
