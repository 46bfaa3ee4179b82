#!/usr/bin/env bash
# Load-tests `bitbudget serve` against llama.cpp's `llama-server` on the same GGUF, interleaved in
# one run (rounds alternate between the servers, as shared machines drift within minutes), with
# scripts/bench-serve.py: C concurrent streaming clients for C in CLIENTS, then 100 clients at once.
# Prints one JSON line per measurement, tagged with the server and round. Not part of CI.
#
#   scripts/bench-serve-vs-llamacpp.sh [ROUNDS]     # default: random Qwen3-0.6B shape, bf16 GGUF
#   MODEL=path/to/model.gguf scripts/bench-serve-vs-llamacpp.sh
#   CLIENTS=1,4,8,16 TOKENS=64 PROMPT=64 SLOTS=16 THREADS=2 scripts/bench-serve-vs-llamacpp.sh
#
# Both servers get THREADS threads, SLOTS concurrent sequences (bitbudget --max-sequences,
# llama-server -np with a context of SLOTS × 512) and the same sampling in every request
# (Qwen3's thinking defaults: temperature 0.6, top-k 20, top-p 0.95, min-p 0). llama.cpp is built
# by scripts/bench-vs-llamacpp.sh's steps (the llama-cpp-python sdist) with its server.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
ASSETS=$PWD/.assets
CLIENTS=${CLIENTS:-1,4,8,16}
TOKENS=${TOKENS:-64}
PROMPT=${PROMPT:-64}
SLOTS=${SLOTS:-16}
THREADS=${THREADS:-2}
LLAMA=$ASSETS/llama.cpp
RANDOM_MODEL=$ASSETS/qwen3-0.6b-random

if [ -z "${MODEL:-}" ] || [ ! -x "$LLAMA/build/bin/llama-server" ]; then
  # The bf16 GGUF of the random model and llama.cpp's tools come from the llama-bench script's
  # set-up (one short round of it).
  [ -f "$RANDOM_MODEL/model-bf16.gguf" ] && [ -x "$LLAMA/build/bin/llama-bench" ] || scripts/bench-vs-llamacpp.sh 1 >/dev/null
  if [ ! -x "$LLAMA/build/bin/llama-server" ]; then
    cmake -S "$LLAMA" -B "$LLAMA/build" -DLLAMA_BUILD_SERVER=ON >>"$ASSETS/llama-build.log" 2>&1
    cmake --build "$LLAMA/build" --target llama-server -j2 >>"$ASSETS/llama-build.log" 2>&1
  fi
fi
MODEL=${MODEL:-$RANDOM_MODEL/model-bf16.gguf}
swift build -c release --product bitbudget >/dev/null
SAMPLING='{"temperature": 0.6, "top_k": 20, "top_p": 0.95, "min_p": 0}'

wait_ready() { # URL: until /health answers 200
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/health")" = 200 ] && return 0
    sleep 0.5
  done
  echo "server at $1 did not start" >&2
  return 1
}

measure() { # NAME URL
  python3 scripts/bench-serve.py "$2/v1" --clients "$CLIENTS" --requests 2 --prompt-tokens "$PROMPT" --tokens "$TOKENS" \
    --sampling "$SAMPLING" | sed "s/^{/{\"server\": \"$1\", \"round\": $round, /"
  python3 scripts/bench-serve.py "$2/v1" --clients 100 --requests 1 --prompt-tokens "$PROMPT" --tokens 16 \
    --sampling "$SAMPLING" | sed "s/^{/{\"server\": \"$1\", \"round\": $round, /"
}

echo "model: $MODEL, $THREADS threads, $SLOTS sequences, prompt $PROMPT, $TOKENS tokens per request"
for round in $(seq 1 "$ROUNDS"); do
  .build/release/bitbudget serve --model "$MODEL" --port 18080 --threads "$THREADS" --max-sequences "$SLOTS" >/dev/null 2>&1 &
  pid=$!
  wait_ready http://127.0.0.1:18080 && measure bitbudget http://127.0.0.1:18080
  kill "$pid"; wait "$pid" 2>/dev/null || true

  "$LLAMA/build/bin/llama-server" -m "$MODEL" --port 18081 -t "$THREADS" -np "$SLOTS" -c $((SLOTS * 512)) >/dev/null 2>&1 &
  pid=$!
  wait_ready http://127.0.0.1:18081 && measure llama.cpp http://127.0.0.1:18081
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
