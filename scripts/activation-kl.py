#!/usr/bin/env python3
"""How far rounded activations (`--activations rounded`: int8 blocks against quantized weights,
bf16 against bf16 weights in prefill) move a model's next-token distributions from the exact f32
path: mean KL(exact ‖ rounded) and top-1 agreement over windows of a text corpus.

  python3 scripts/activation-kl.py MODEL [--windows 24] [--tokens 31] [--min-tokens 8] [--corpus FILE.jsonl|FILE] [--args "..."]

MODEL is anything `bitbudget logits --model` takes (a GGUF whose linears stay quantized, a
model folder with --args "--weights 4", or a bf16 model: --args "--gguf-dtype bf16" widens a GGUF). Each window is one forward pass: windows below 32 tokens
run through the streaming (decode) kernels, longer ones through the tiled (prefill) kernels; the
activations setting applies to both (`--tokens 64 --min-tokens 32` measures prefill alone; bf16
weights round only there).
Needs a release build (swift build -c release) and numpy.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(binary, *args):
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=31, help="tokens per window (at most)")
    parser.add_argument("--min-tokens", type=int, default=8, help="skip texts shorter than this")
    parser.add_argument("--corpus", default=os.path.join(ROOT, "Tests/Fixtures/tokenizer/qwen3-corpus.jsonl"),
                        help="JSON lines with a \"text\" each, or any other text file, read as 4,000-character pieces "
                        "(long windows: e.g. --corpus README.md --tokens 512 --min-tokens 512)")
    parser.add_argument("--tokenizer", help="tokenizer for the corpus (default: the model)")
    parser.add_argument("--args", default="", help="extra bitbudget options, e.g. \"--weights 4\"")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/bitbudget"))
    args = parser.parse_args()
    if args.corpus.endswith(".jsonl"):
        texts = [json.loads(line)["text"] for line in open(args.corpus) if line.strip()]
    else:
        whole = open(args.corpus, encoding="utf-8").read()
        texts = [whole[i : i + 4000] for i in range(0, len(whole), 4000)]
    windows = []
    for text in texts:
        if "\0" in text:
            continue  # cannot be passed as an argument
        ids = run(args.binary, "tokenize", "--tokenizer", args.tokenizer or args.model, "--text", text, "--json")["ids"]
        if len(ids) >= args.min_tokens:
            windows.append(ids[: args.tokens])
        if len(windows) == args.windows:
            break
    kls, agree, positions = [], 0, 0
    for ids in windows:
        logits = {}
        for activations in ("exact", "rounded"):
            report = run(args.binary, "logits", "--model", args.model, "--ids", ",".join(map(str, ids)),
                         "--activations", activations, "--json", *args.args.split())
            logits[activations] = np.array(report["logits"], dtype=np.float64)
        exact, fast = log_softmax(logits["exact"]), log_softmax(logits["rounded"])
        kls.extend((np.exp(exact) * (exact - fast)).sum(axis=-1))
        agree += int((exact.argmax(-1) == fast.argmax(-1)).sum())
        positions += len(ids)
    kls = np.array(kls)
    print(f"{args.model} {args.args}".strip())
    print(f"  {len(windows)} windows, {positions} positions: mean KL {kls.mean():.5f} (median {np.median(kls):.5f}, "
          f"max {kls.max():.4f}), top-1 agreement {agree / positions:.2%}")


if __name__ == "__main__":
    sys.exit(main())
