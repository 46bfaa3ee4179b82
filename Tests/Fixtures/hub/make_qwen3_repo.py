#!/usr/bin/env python3
"""A repository shaped like Qwen/Qwen3-0.6B for the download tests, in pure Python (no torch):
the real Qwen3 tokenizer files (tokenizer.json, tokenizer_config.json with its chat template,
vocab.json, merges.txt) and a one-layer random Qwen3 with Qwen3's vocabulary (151,936) but
hidden size 32, bf16 (10 MB), so the tokenizer's ids are the model's.

    make_qwen3_repo.py TOKENIZER_DIR OUT_DIR
"""
import json
import os
import random
import shutil
import struct
import sys

tokenizer, out = sys.argv[1:3]
os.makedirs(out, exist_ok=True)
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(os.path.join(tokenizer, name), os.path.join(out, name))

vocab, hidden, intermediate, heads, kv_heads, head_dim = 151936, 32, 64, 4, 2, 8
config = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": vocab, "hidden_size": hidden,
    "intermediate_size": intermediate, "num_hidden_layers": 1, "num_attention_heads": heads,
    "num_key_value_heads": kv_heads, "head_dim": head_dim, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "bos_token_id": 151643,
    "eos_token_id": 151645, "attention_bias": False, "hidden_act": "silu",
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
with open(os.path.join(out, "generation_config.json"), "w") as f:
    json.dump({"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": False}, f, indent=2)

shapes = {"model.embed_tokens.weight": [vocab, hidden], "model.norm.weight": [hidden]}
p = "model.layers.0."
shapes.update({
    p + "input_layernorm.weight": [hidden], p + "post_attention_layernorm.weight": [hidden],
    p + "self_attn.q_proj.weight": [heads * head_dim, hidden], p + "self_attn.k_proj.weight": [kv_heads * head_dim, hidden],
    p + "self_attn.v_proj.weight": [kv_heads * head_dim, hidden], p + "self_attn.o_proj.weight": [hidden, heads * head_dim],
    p + "self_attn.q_norm.weight": [head_dim], p + "self_attn.k_norm.weight": [head_dim],
    p + "mlp.gate_proj.weight": [intermediate, hidden], p + "mlp.up_proj.weight": [intermediate, hidden],
    p + "mlp.down_proj.weight": [hidden, intermediate],
})
rng = random.Random(0)
header, blobs, offset = {}, [], 0
for name, shape in shapes.items():
    count = 1
    for d in shape:
        count *= d
    if name.endswith("norm.weight"):
        values = [1.0] * count
    else:
        values = [rng.gauss(0, 0.2) for _ in range(count)]
    data = b"".join(struct.pack("<f", v)[2:] for v in values)
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
text = json.dumps(header).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for data in blobs:
        f.write(data)
