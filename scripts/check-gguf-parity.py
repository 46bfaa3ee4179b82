#!/usr/bin/env python3
"""Checks bitbudget against Hugging Face transformers on any GGUF model, by hand (for models too
big for CI, e.g. the Qwen2.5-Coder-0.5B of scripts/fetch-bench-assets.sh; SmolLM2 has committed
fixtures instead).

transformers loads the GGUF (it dequantizes to float32); bitbudget runs the same file with f32
widening and an f32 KV cache (--gguf-dtype f32 --kv-dtype f32), and again with the defaults (bf16).
Reported: token ids of five chat prompts, the largest logit difference over every position of the
first prompt relative to the largest logit, and greedy 48-token continuations of two prompts
(compared up to the first end-of-sequence token bitbudget stops at).

Usage: python scripts/check-gguf-parity.py MODEL.gguf [--bitbudget .build/release/bitbudget]
(needs torch, transformers, gguf; exits 1 when a check fails)
"""
import argparse
import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that returns the square of x.",
    "Compute 123 + 4567 and explain each step.",
    "Translate 'good morning' into French, Spanish and German.",
    "Don't you think it's 9:45 already? Café, naïve, über — 日本語 😀\n\n  spaces\tand tabs",
]
GREEDY_TOKENS = 48


def bitbudget(binary, *arguments):
    result = subprocess.run([binary, *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"bitbudget {' '.join(arguments[:3])}…: {result.stderr.strip()}")
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gguf")
    parser.add_argument("--bitbudget", default=".build/release/bitbudget")
    args = parser.parse_args()
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    failures = 0

    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in PROMPTS]
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    for text, expected in zip(texts, ids):
        ours = bitbudget(args.bitbudget, "tokenize", "--tokenizer", args.gguf, "--text", text, "--json")["ids"]
        failures += ours != expected
        print(f"ids {'equal' if ours == expected else 'DIFFER'} ({len(expected)} tokens)")

    with torch.no_grad():
        reference = model(torch.tensor([ids[0]])).logits[0]
    scale = reference.abs().max().item()
    for label, options, bound in [("f32 widening, f32 KV", ["--gguf-dtype", "f32", "--kv-dtype", "f32"], 2e-4),
                                  ("bf16 widening, bf16 KV, rounded activations (generate's defaults)",
                                   ["--activations", "rounded"], 2e-2)]:
        ours = torch.tensor(bitbudget(args.bitbudget, "logits", "--model", args.gguf, "--ids",
                                      ",".join(map(str, ids[0])), "--json", *options)["logits"])
        relative = ((ours - reference).abs().max() / scale).item()
        same_argmax = bool((ours.argmax(-1) == reference.argmax(-1)).all())
        failures += relative > bound
        print(f"logits, {label}: max |diff| / max |logit| = {relative:.2e} (bound {bound:g}) over "
              f"{reference.shape[0]} positions; argmax equal at every position: {same_argmax}")

    for index in (0, 1):
        prompt = torch.tensor([ids[index]])
        with torch.no_grad():
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=GREEDY_TOKENS,
                                 do_sample=False, eos_token_id=None, pad_token_id=0)
        expected = out[0, prompt.shape[1]:].tolist()
        for label, options in [("f32", ["--gguf-dtype", "f32", "--kv-dtype", "f32"]), ("bf16", [])]:
            result = bitbudget(args.bitbudget, "generate", "--model", args.gguf, "--ids", ",".join(map(str, ids[index])),
                               "--max-tokens", str(GREEDY_TOKENS), "--greedy", "--json", *options)
            ours = result["samples"][0]["tokens"]
            same = ours == expected[:len(ours)]
            failures += label == "f32" and not same
            first = next((i for i, (a, b) in enumerate(zip(ours, expected)) if a != b), None)
            print(f"greedy prompt {index}, {label}: {len(ours)} tokens ({result['samples'][0]['finish']}), "
                  f"{'equal' if same else f'first difference at token {first}'}")
    print("FAILED" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
