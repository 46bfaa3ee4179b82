#!/usr/bin/env python3
"""Reference fixtures for `--kv h2o:B,recent=R,buffer=1`: the H2O repository's own cache run on a
prompt and a decode.

`H2OKVCache_LayerWise(hh_size=B−R, recent_size=R)` from FMInference/H2O
(`h2o_hf/utils_real_drop/modify_llama.py`) is driven as `H2OLlamaAttention.forward` drives it:
the prompt's causal attention weights (softmax of q·kᵀ/√d in f32) over its keys, then one step per
new token: its key and value appended to the kept ones, its weights over all of them, and the
cache's selection (it evicts at every step once it holds more than B tokens). Queries, keys and
values are seeded random vectors (multi-head attention: the reference supports no query groups).
A case is drawn again when, at some eviction, the accumulated scores at the cut differ by less
than 1e-4 of the cut's score, so that f32 rounding cannot decide a row.

The fixture holds every query, key and value (`[heads][tokens][head_dim]`, prompt first), and the
keys and values the cache holds at the end, in its order (cache order), and their positions.

Writes Tests/Fixtures/kv/h2o-*.json, read by `KVPolicyConformanceTests`. Needs torch and a
checkout of the H2O repository (only that module is imported): `--h2o-repo DIR`.

Usage: make-h2o-fixtures.py --h2o-repo DIR [--out-dir Tests/Fixtures/kv]
"""
import argparse
import json
import math
import os
import sys

import torch

# name, prompt tokens, decode steps, budget, recent, heads, head dim
CASES = [
    ("h2o-mha2-P60-S40-b32-r16", 60, 40, 32, 16, 2, 16),
    ("h2o-mha4-P24-S70-b20-r4", 24, 70, 20, 4, 4, 32),
]


def flat(tensor):
    # Nine significant digits give back every f32 exactly.
    return [float(f"{x:.9g}") for x in tensor.reshape(-1).tolist()]


def attempt(seed, prompt, steps, budget, recent, heads, d):
    from utils_real_drop.modify_llama import H2OKVCache_LayerWise

    margins = []

    class Observed(H2OKVCache_LayerWise):
        """The repository's cache; records the score gap at each cut (no change to what it does)."""

        def _update_hh_score(self, attn_score_cache):
            super()._update_hh_score(attn_score_cache)
            seq_len = self.hh_score.shape[1]
            if seq_len > self.cache_size:
                ranked = self.hh_score[:, : seq_len - self.recent_size].sort(dim=-1, descending=True).values
                cut = ranked[:, self.hh_size - 1]
                margins.append(float(((cut - ranked[:, self.hh_size]) / cut).min()))

    torch.manual_seed(seed)
    total = prompt + steps
    queries = torch.randn(1, heads, total, d) * 1.5
    keys = torch.randn(1, heads, total, d)
    values = torch.randn(1, heads, total, d)
    cache = Observed(hh_size=budget - recent, recent_size=recent)
    mask = torch.full((prompt, prompt), float("-inf")).triu(1)
    weights = torch.softmax(queries[:, :, :prompt] @ keys[:, :, :prompt].transpose(2, 3) / math.sqrt(d) + mask, dim=-1,
                            dtype=torch.float32)
    past = cache((keys[:, :, :prompt], values[:, :, :prompt]), weights)
    for t in range(prompt, total):
        k = torch.cat([past[0], keys[:, :, t:t + 1]], dim=2)
        v = torch.cat([past[1], values[:, :, t:t + 1]], dim=2)
        weights = torch.softmax(queries[:, :, t:t + 1] @ k.transpose(2, 3) / math.sqrt(d), dim=-1, dtype=torch.float32)
        past = cache((k, v), weights)
    if min(margins) <= 1e-4:
        return None
    # The kept rows' positions: each kept key is one of the (distinct, random) input keys.
    kept = [[int((keys[0, h] == row).all(dim=-1).nonzero()[0]) for row in past[0][0, h]] for h in range(heads)]
    return {
        "policy": "h2o", "budget": budget, "recent": recent, "seed": seed, "prompt_tokens": prompt, "steps": steps,
        "heads": heads, "head_dim": d,
        "queries": flat(queries), "keys": flat(keys), "values": flat(values),
        "kept_positions": kept, "out_keys": flat(past[0]), "out_values": flat(past[1]),
        "smallest_margin": min(margins),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--h2o-repo", required=True, help="a checkout of github.com/FMInference/H2O")
    parser.add_argument("--out-dir", default="Tests/Fixtures/kv")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.h2o_repo, "h2o_hf"))
    for name, *shape in CASES:
        seed = 0
        while (case := attempt(seed, *shape)) is None:
            seed += 1
        with open(f"{args.out_dir}/{name}.json", "w") as f:
            json.dump({"name": name, **case}, f)
        print(name, "seed", seed, "smallest margin", case["smallest_margin"])


if __name__ == "__main__":
    main()
