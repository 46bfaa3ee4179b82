#!/usr/bin/env python3
"""Writes a random model of the exact Qwen3-0.6B shape (bf16 safetensors + config.json) with numpy
only: the benchmark model of `bitbudget bench` when torch is not at hand.

  python3 scripts/make-bench-model.py DIR [--layers N] [--vocab V]

--layers and --vocab shrink it (e.g. --vocab 2048 makes the linear layers ~97% of the bytes, to
measure their kernels rather than the embedding). Weights are N(0, 0.02), norms 1; seed 0.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def bf16(values):
    """Rounds f32 to bf16 (nearest even) and returns the raw uint16 bits."""
    bits = values.astype(np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--vocab", type=int, default=151936)
    args = parser.parse_args()
    hidden, intermediate, heads, kv_heads, head_dim = 1024, 3072, 16, 8, 128
    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": args.vocab,
        "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": args.layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head_dim,
        "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False, "torch_dtype": "bfloat16",
        "bos_token_id": 151643, "eos_token_id": 151645,
    }
    shapes = [("model.embed_tokens.weight", (args.vocab, hidden))]
    for layer in range(args.layers):
        prefix = f"model.layers.{layer}."
        shapes += [
            (prefix + "self_attn.q_proj.weight", (heads * head_dim, hidden)),
            (prefix + "self_attn.k_proj.weight", (kv_heads * head_dim, hidden)),
            (prefix + "self_attn.v_proj.weight", (kv_heads * head_dim, hidden)),
            (prefix + "self_attn.o_proj.weight", (hidden, heads * head_dim)),
            (prefix + "self_attn.q_norm.weight", (head_dim,)),
            (prefix + "self_attn.k_norm.weight", (head_dim,)),
            (prefix + "input_layernorm.weight", (hidden,)),
            (prefix + "post_attention_layernorm.weight", (hidden,)),
            (prefix + "mlp.gate_proj.weight", (intermediate, hidden)),
            (prefix + "mlp.up_proj.weight", (intermediate, hidden)),
            (prefix + "mlp.down_proj.weight", (hidden, intermediate)),
        ]
    shapes.append(("model.norm.weight", (hidden,)))
    header, offset = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    os.makedirs(args.out, exist_ok=True)
    random = np.random.default_rng(0)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for name, shape in shapes:
            if len(shape) == 1:
                out.write(bf16(np.ones(shape, dtype=np.float32)).tobytes())
            else:
                out.write(bf16(random.standard_normal(shape, dtype=np.float32) * 0.02).tobytes())
    with open(os.path.join(args.out, "config.json"), "w") as out:
        json.dump(config, out, indent=2)
    print(f"wrote {args.out}: {args.layers} layers, vocab {args.vocab}, {offset / 2**20:.0f} MiB of bf16")


if __name__ == "__main__":
    sys.exit(main())
