#!/usr/bin/env python3
"""Tiny random Qwen3 models with reference outputs from Hugging Face transformers.

Writes, for each model in MODELS, a Hugging Face folder under Tests/Fixtures/models/NAME with
config.json, generation_config.json, the safetensors weights (single file or shards + index) and
reference.json:

    {"input_ids": [...], "logits": [[float x vocab] x positions], "greedy": [...],
     "greedy_margins": [...], "parameters": N, "torch": "...", "transformers": "..."}

The reference is computed in float32 from the *stored* weights (the folder is reloaded with
dtype=float32, which widens bf16/f16 exactly), with eager attention; "greedy" is
`generate(do_sample=False)` from the same f32 model, and "greedy_margins" the gap between the best
and second-best logit at each greedy step (a tiny margin would make a tie-break test fragile).

With --bench-model DIR it instead writes a random model of the exact Qwen3-0.6B shape in bf16
(1.2 GB; for `bitbudget bench`, not committed).

Needs torch (CPU) and transformers:  pip install "torch==2.13.0+cpu" transformers safetensors
(scripts/bench-vs-llamacpp.sh makes such a venv in .assets/venv).
"""
import argparse
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM,
                          SmolLM3Config, SmolLM3ForCausalLM)

ARCHITECTURES = {"qwen3": (Qwen3Config, Qwen3ForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM),
                 "llama": (LlamaConfig, LlamaForCausalLM), "mistral": (MistralConfig, MistralForCausalLM),
                 "smollm3": (SmolLM3Config, SmolLM3ForCausalLM), "qwen3_moe": (Qwen3MoeConfig, Qwen3MoeForCausalLM)}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "models")

# name: (config kwargs, storage dtype, config style, shard size, prompt length, seed)
MODELS = {
    # GQA (group 2), tied lm_head, f32, transformers-5 config (rope_parameters, dtype).
    "qwen3-gqa-tied-f32": (
        dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True),
        torch.float32, "transformers5", None, 40, 0),
    # MHA, untied lm_head, bf16, head_dim 32 != hidden/heads, transformers-4 config
    # (rope_theta, torch_dtype); 100 positions cross the cache's 64-token block boundary.
    "qwen3-mha-untied-bf16": (
        dict(vocab_size=256, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=4, head_dim=32, tie_word_embeddings=False),
        torch.bfloat16, "transformers4", None, 100, 1),
    # GQA group 4, tied, bf16, three layers, sharded checkpoint (index + 3 files).
    "qwen3-gqa4-tied-bf16-sharded": (
        dict(vocab_size=384, hidden_size=96, intermediate_size=160, num_hidden_layers=3,
             num_attention_heads=8, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True),
        torch.bfloat16, "transformers5", "200KB", 36, 2),
    # f16, untied, attention biases, sizes that are not multiples of 16 (vector tails):
    # hidden 72, head_dim 24, intermediate 200, vocab 300.
    "qwen3-bias-odd-f16": (
        dict(vocab_size=300, hidden_size=72, intermediate_size=200, num_hidden_layers=2,
             num_attention_heads=6, num_key_value_heads=3, head_dim=24, tie_word_embeddings=False,
             attention_bias=True),
        torch.float16, "transformers4", None, 33, 3),
    # The real head size (128) with GQA: several 32-wide blocks per head in every kernel.
    "qwen3-hd128-gqa-bf16": (
        dict(vocab_size=128, hidden_size=128, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=2, num_key_value_heads=1, head_dim=128, tie_word_embeddings=True),
        torch.bfloat16, "transformers5", None, 70, 4),
    # Qwen2: q/k/v biases (random, non-zero), no o_proj bias, no q/k norms; untied, bf16.
    "qwen2-bias-untied-bf16": (
        dict(architecture="qwen2", vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
        torch.bfloat16, "transformers4", None, 40, 5),
    # Llama (SmolLM2's architecture in a folder): GQA group 3, tied, f32.
    "llama-gqa3-tied-f32": (
        dict(architecture="llama", vocab_size=300, hidden_size=96, intermediate_size=192, num_hidden_layers=2,
             num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=100000.0),
        torch.float32, "transformers5", None, 40, 6),
    # Mistral: GQA group 4, untied, bf16, no sliding window (null, as v0.2 and later).
    "mistral-gqa4-untied-bf16": (
        dict(architecture="mistral", vocab_size=280, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
             num_attention_heads=8, num_key_value_heads=2, head_dim=8, tie_word_embeddings=False, sliding_window=None),
        torch.bfloat16, "transformers5", None, 40, 7),
    # SmolLM3: the middle of three layers without RoPE (no_rope_layers), tied, f32; 70 positions
    # so that the missing rotation shows.
    "smollm3-nope-tied-f32": (
        dict(architecture="smollm3", vocab_size=260, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
             num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, no_rope_layers=[1, 0, 1]),
        torch.float32, "transformers5", None, 70, 8),
    # Qwen3-MoE: 8 experts, 3 per token, renormalized as Qwen3-30B-A3B's; the last layer dense
    # (mlp_only_layers); untied, bf16; widths the quantized kernels take (multiples of 64); 70
    # positions, so every expert gets several rows in prefill.
    "qwen3moe-e8k3-untied-bf16": (
        dict(architecture="qwen3_moe", vocab_size=200, hidden_size=64, intermediate_size=128, moe_intermediate_size=64,
             num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8,
             num_experts_per_tok=3, norm_topk_prob=True, mlp_only_layers=[2], decoder_sparse_step=1,
             tie_word_embeddings=False),
        torch.bfloat16, "transformers5", None, 70, 10),
    # The transformers 4 spelling (num_experts, rope_theta) and weights that are not renormalized
    # (norm_topk_prob false); f32, tied, 2 of 4 experts in both layers; widths not multiples of 64.
    "qwen3moe-e4k2-unnormed-f32": (
        dict(architecture="qwen3_moe", vocab_size=160, hidden_size=48, intermediate_size=64, moe_intermediate_size=32,
             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=4,
             num_experts_per_tok=2, norm_topk_prob=False, mlp_only_layers=[], decoder_sparse_step=1,
             tie_word_embeddings=True),
        torch.float32, "transformers4", None, 40, 12),
    # YaRN RoPE scaling as Qwen3's model cards enable it (`rope_scaling`, transformers-4 style),
    # factor 4 over an original window of 64 positions, head_dim 32 (the ramp spans dimensions
    # 0–5 with θ = 10,000); 160 positions, well past the window; f32.
    "qwen3-yarn-f32": (
        dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=32, tie_word_embeddings=True, rope_theta=10000.0,
             rope_parameters=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=64, rope_theta=10000.0)),
        torch.float32, "transformers4", None, 160, 13),
    # Llama 3.1's RoPE scaling (rope_parameters, transformers-5 style): factor 8, low/high
    # frequency factors 1 and 4 over 32 original positions, so head_dim 16's eight frequencies
    # are kept, blended and divided; 90 positions; tied, f32.
    "llama-rope3-tied-f32": (
        dict(architecture="llama", vocab_size=240, hidden_size=96, intermediate_size=160, num_hidden_layers=2,
             num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=10000.0,
             rope_parameters=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                  original_max_position_embeddings=32, rope_theta=10000.0)),
        torch.float32, "transformers5", None, 90, 14),
}

# RoPE scalings whose inverse frequencies and attention factor transformers' own functions
# compute (Tests/Fixtures/rope/inverse-frequencies.json): (head_dim, max_position_embeddings,
# rope parameters).
ROPE_CASES = [
    (128, 131072, dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32768, rope_theta=1000000.0)),
    (64, 8192, dict(rope_type="yarn", factor=2.5, original_max_position_embeddings=2048, rope_theta=10000.0,
                    beta_fast=16.0, beta_slow=2.0, truncate=False)),
    (64, 16384, dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=4096, rope_theta=500000.0,
                     mscale=0.707, mscale_all_dim=1.0)),
    (32, 4096, dict(rope_type="yarn", factor=8.0, original_max_position_embeddings=512, rope_theta=10000.0,
                    attention_factor=1.3)),
    (128, 131072, dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                       original_max_position_embeddings=8192, rope_theta=500000.0)),
    (64, 131072, dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                      original_max_position_embeddings=8192, rope_theta=500000.0)),
    (96, 8192, dict(rope_type="linear", factor=2.0, rope_theta=10000.0)),
    (80, 4096, dict(rope_type="default", rope_theta=10000.0)),
]


def write_rope_cases():
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    cases = []
    for head_dim, max_positions, parameters in ROPE_CASES:
        cfg = Qwen3Config(hidden_size=head_dim * 2, num_attention_heads=2, head_dim=head_dim,
                          max_position_embeddings=max_positions, rope_parameters=dict(parameters))
        rope_type = parameters["rope_type"]
        if rope_type == "default":
            inv_freq, scaling = transformers.models.qwen3.modeling_qwen3.Qwen3RotaryEmbedding \
                .compute_default_rope_parameters(cfg)
        else:
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](cfg)
        cases.append({"head_dim": head_dim, "max_position_embeddings": max_positions, "rope_parameters": parameters,
                      "inverse_frequencies": [float(f"{v:.9g}") for v in inv_freq.tolist()],
                      "attention_scaling": float(scaling)})
    path = os.path.join(ROOT, "Tests", "Fixtures", "rope", "inverse-frequencies.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"transformers": transformers.__version__, "cases": cases}, f, indent=1)
    print(f"wrote {path}: {len(cases)} cases")

GREEDY_TOKENS = 16


def make_model(kwargs, seed, initializer_range=0.2):
    torch.manual_seed(seed)
    kwargs = dict(kwargs)
    config_class, model_class = ARCHITECTURES[kwargs.pop("architecture", "qwen3")]
    kwargs.setdefault("rope_theta", 1000000.0)
    cfg = config_class(max_position_embeddings=512, rms_norm_eps=1e-6,
                       initializer_range=initializer_range, bos_token_id=None, eos_token_id=1,
                       pad_token_id=None, **kwargs)
    model = model_class(cfg).eval()
    with torch.no_grad():
        # Non-trivial norms and biases, so a missing or misplaced one changes the logits.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return model


def restyle_config(path, style):
    """transformers 5 writes rope_parameters/dtype; real Qwen3 checkpoints have rope_theta/torch_dtype."""
    with open(path) as f:
        cfg = json.load(f)
    if style == "transformers4":
        rope = cfg.pop("rope_parameters", None) or {}
        cfg["rope_theta"] = rope.pop("rope_theta", 1000000.0)
        # A scaled RoPE as the model cards spell it: `rope_scaling` without the theta.
        cfg["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
        cfg["torch_dtype"] = cfg.pop("dtype", "float32")
        cfg.pop("layer_types", None)
        if "num_local_experts" in cfg:
            cfg["num_experts"] = cfg.pop("num_local_experts")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def write_fixture(name, spec):
    kwargs, dtype, style, shard, length, seed = spec
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    model = make_model(kwargs, seed).to(dtype)
    save_args = {"safe_serialization": True}
    if shard:
        save_args["max_shard_size"] = shard
    model.save_pretrained(out, **save_args)
    restyle_config(os.path.join(out, "config.json"), style)

    # Reference: the stored weights widened to f32, eager attention.
    model_class = ARCHITECTURES[kwargs.get("architecture", "qwen3")][1]
    ref = model_class.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    generator = torch.Generator().manual_seed(100 + seed)
    ids = torch.randint(2, kwargs["vocab_size"], (1, length), generator=generator)
    with torch.no_grad():
        logits = ref(ids).logits[0]
        out_ids = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=GREEDY_TOKENS,
                               do_sample=False, eos_token_id=1, pad_token_id=0)
        greedy = out_ids[0, length:].tolist()
        full = torch.cat([ids[0], torch.tensor(greedy)]).unsqueeze(0)
        step_logits = ref(full).logits[0, length - 1:length - 1 + len(greedy)]
        top2 = torch.topk(step_logits, 2, dim=-1).values
        margins = (top2[:, 0] - top2[:, 1]).tolist()
    reference = {
        "input_ids": ids[0].tolist(),
        "logits": [[float(f"{v:.9g}") for v in row] for row in logits.tolist()],
        "greedy": greedy,
        "greedy_margins": [round(m, 6) for m in margins],
        "parameters": sum(p.numel() for p in ref.parameters()),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f, separators=(",", ":"))
    if kwargs.get("architecture") == "qwen3_moe":
        margins_routing = router_margins(ref, full, kwargs["num_experts_per_tok"])
        print(f"{name}: smallest gap between a chosen and an unchosen expert's probability {margins_routing:.2e}")
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{name}: {size / 1024:.0f} KiB, {length} positions, greedy {greedy}, "
          f"min margin {min(margins):.4f}")


def router_margins(model, ids, k):
    """The smallest gap, over layers of experts and positions, between the k-th and the (k+1)-th
    router probability: a tiny one would let f32 rounding change which experts run."""
    gaps = []
    hooks = []
    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is None or not hasattr(gate, "top_k"):
            continue
        def hook(module, inputs, output):
            probs = torch.softmax(output[0].float(), dim=-1)
            top = torch.topk(probs, k + 1, dim=-1).values
            gaps.append((top[:, k - 1] - top[:, k]).min().item())
        hooks.append(gate.register_forward_hook(hook))
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    return min(gaps)


def write_bench_model(out):
    kwargs = dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                  tie_word_embeddings=True, max_position_embeddings=40960)
    torch.manual_seed(0)
    cfg = Qwen3Config(rms_norm_eps=1e-6, rope_theta=1000000.0, bos_token_id=151643,
                      eos_token_id=151645, **kwargs)
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16).eval()
    model.save_pretrained(out, safe_serialization=True)
    restyle_config(os.path.join(out, "config.json"), "transformers4")
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench-model", metavar="DIR",
                        help="write a random Qwen3-0.6B-shaped bf16 model to DIR instead")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="write only these fixtures (\"rope\": the RoPE cases)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.bench_model:
        write_bench_model(args.bench_model)
        return
    os.makedirs(OUT, exist_ok=True)
    if args.only is None or "rope" in args.only:
        write_rope_cases()
    for name, spec in MODELS.items():
        if args.only is None or name in args.only:
            write_fixture(name, spec)


if __name__ == "__main__":
    sys.exit(main())
