#!/usr/bin/env python3
"""Reference fixtures for `--kv snapkv:B`: kvpress's own SnapKV code run on a Qwen3 attention layer.

For each case a transformers `Qwen3Attention` with random weights (q/k-norm included) reads random
hidden states; its keys (k-norm and RoPE applied, as the cache holds them) and values go through
`DecodingPress(SnapKVPress(window_size, kernel_size), target_size=budget).compress` — the press
kvpress runs at decode time, which picks the compression ratio that keeps exactly `budget` tokens
and scores with `SnapKVPress.score` (the window's queries re-projected from the hidden states,
causal softmax, mean, `avg_pool1d`, mean over the query group). The fixture holds the keys, the
values, the window's queries as `compute_window_attention` builds them (after q-norm and RoPE:
what BitBudget's cache remembers), the kept positions per KV head (sorted: the cache keeps rows in
cache order) and the kept keys and values in that order. Cases are drawn until the scores around
the cut differ by more than 1e-4 of the cut's score, so that f32 rounding cannot decide a row.

Writes Tests/Fixtures/kv/snapkv-*.json, read by `EvictionPolicyTests` and
`KVPolicyConformanceTests`. Needs torch and transformers, and kvpress 0.5.5 with its imports
(`pip install kvpress==0.5.5`; it pins transformers < 5.3, but these presses run on later ones:
`pip install --no-deps --target DIR kvpress==0.5.5 cachetools datasets pandas` and put DIR on
PYTHONPATH).

Usage: make-kvpress-fixtures.py [--out-dir Tests/Fixtures/kv]
"""
import argparse
import json
import math

import torch
from kvpress import DecodingPress, SnapKVPress
from kvpress.utils import get_prerope_query_states
from transformers import Qwen3Config
from transformers.models.llama.modeling_llama import rotate_half
from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention, Qwen3RotaryEmbedding, apply_rotary_pos_emb

# name, length, budget, window, kernel, query heads, KV heads, head dim
CASES = [
    ("snapkv-gqa2-L200-b64-w8-k7", 200, 64, 8, 7, 4, 2, 16),
    ("snapkv-gqa4-L300-b128-w32-k7", 300, 128, 32, 7, 8, 2, 32),
    ("snapkv-mha-L160-b48-w16-k5", 160, 48, 16, 5, 2, 2, 16),
    ("snapkv-gqa2-L97-b40-w8-k1", 97, 40, 8, 1, 2, 1, 64),
]


def flat(tensor):
    # Nine significant digits give back every f32 exactly, in about half the text of a double's repr.
    return [float(f"{x:.9g}") for x in tensor.reshape(-1).tolist()]


def attempt(seed, length, budget, window, kernel, heads, kv_heads, d):
    torch.manual_seed(seed)
    hidden_size = 64
    config = Qwen3Config(
        hidden_size=hidden_size, num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=d,
        intermediate_size=128, num_hidden_layers=1, vocab_size=32, attn_implementation="eager")
    module = Qwen3Attention(config, layer_idx=0).eval()
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "norm" in name:
                parameter.copy_(1 + 0.3 * torch.randn_like(parameter))
            else:
                parameter.normal_(0, 1 / math.sqrt(parameter.shape[-1]))
    hidden = torch.randn(1, length, hidden_size)
    cos, sin = Qwen3RotaryEmbedding(config)(hidden, torch.arange(length)[None])
    with torch.no_grad():
        k = module.k_norm(module.k_proj(hidden).view(1, length, kv_heads, d)).transpose(1, 2)
        _, keys = apply_rotary_pos_emb(k, k, cos, sin)
        values = module.v_proj(hidden).view(1, length, kv_heads, d).transpose(1, 2)
        # The window's queries exactly as SnapKVPress.compute_window_attention builds them.
        q = get_prerope_query_states(module, hidden[:, -window:])
        c, s = cos[:, -window:], sin[:, -window:]
        queries = (q * c.unsqueeze(1)) + (rotate_half(q) * s.unsqueeze(1))
        kwargs = {"position_embeddings": (cos, sin)}
        snap = SnapKVPress(window_size=window, kernel_size=kernel)
        press = DecodingPress(base_press=snap, compression_interval=window + 1, target_size=budget)
        out_keys, out_values = press.compress(module, hidden, keys, values, None, kwargs)
        scores = snap.score(module, hidden, keys, values, None, kwargs)
    assert out_keys.shape[2] == budget, out_keys.shape
    kept = []
    for head in range(kv_heads):
        order = torch.argsort(scores[0, head], descending=True, stable=True)
        candidates = scores[0, head, : length - window].sort(descending=True).values
        cut = budget - window
        if abs(float(candidates[cut - 1] - candidates[cut])) <= 1e-4 * abs(float(candidates[cut - 1])):
            return None
        rows = order[:budget]
        # The press's output is these rows (in its top-k order).
        assert torch.equal(out_keys[0, head].sort(dim=0).values, keys[0, head, rows].sort(dim=0).values)
        kept.append(sorted(int(r) for r in rows))
    index = torch.tensor(kept)[None, :, :, None].expand(-1, -1, -1, d)
    return {
        "policy": "snapkv", "budget": budget, "window": window, "kernel": kernel, "seed": seed,
        "query_heads": heads, "kv_heads": kv_heads, "length": length, "head_dim": d,
        "keys": flat(keys), "values": flat(values), "window_queries": flat(queries),
        "kept_positions": kept,
        "out_keys": flat(keys.gather(2, index)), "out_values": flat(values.gather(2, index)),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", default="Tests/Fixtures/kv")
    args = parser.parse_args()
    for name, *shape in CASES:
        seed = 0
        while (case := attempt(seed, *shape)) is None:
            seed += 1
        with open(f"{args.out_dir}/{name}.json", "w") as f:
            json.dump({"name": name, **case}, f)
        print(name, "seed", seed)


if __name__ == "__main__":
    main()
