#!/usr/bin/env python3
"""Reference fixture for `hqq:B,axis=0`: transformers' QuantizedCache with the HQQ backend at its
default axis (0 for keys and values), driven by greedy decoding of a test model.

Writes Tests/Fixtures/kv/hqq-cache-axis0.json: the prompt, the cache settings, the greedy tokens and
the logits of every step (the prompt's last position, then each decoded token) — what
`RequantizingKVCacheTests` compares the engine's `RequantizingKVCache` with. Needs torch,
transformers and hqq (`pip install hqq==0.2.8`; transformers calls its `Quantizer.quantize`
without `optimize`, whose default is on: the zero points go through the proximal search); the
model is f32, so the cache's compute type (and the HQQ scales and zeros) are f32.

Usage: make-hqq-cache-fixture.py [--model Tests/Fixtures/models/qwen3-gqa-tied-f32] [--out FILE]
"""
import argparse
import json

import torch
from transformers import AutoModelForCausalLM, QuantizedCache


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="Tests/Fixtures/models/qwen3-gqa-tied-f32")
    parser.add_argument("--out", default="Tests/Fixtures/kv/hqq-cache-axis0.json")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    prompt = [int(x) for x in torch.randint(3, 500, (37,))]
    settings = dict(nbits=4, axis_key=0, axis_value=0, q_group_size=16, residual_length=12)
    cache = QuantizedCache(backend="hqq", config=model.config, **settings)
    ids = torch.tensor([prompt])
    tokens, logits = [], []
    with torch.no_grad():
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        for _ in range(args.steps):
            step = out.logits[0, -1].float()
            logits.append([float(x) for x in step])
            token = int(torch.argmax(step))
            tokens.append(token)
            out = model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
    with open(args.out, "w") as f:
        json.dump({"model": args.model, "prompt": prompt, "settings": settings, "tokens": tokens, "logits": logits}, f)


if __name__ == "__main__":
    main()
