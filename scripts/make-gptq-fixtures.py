#!/usr/bin/env python3
"""Reference fixtures for BitBudget's GPTQ and GPTQ checkpoint format.

1. gptq-layer.json: one random linear layer and correlated calibration inputs, quantized by a torch
   transcription of AutoGPTQ's GPTQ.fasterquant (algorithms.md §6.2: blocksize 128, damp 0.01,
   non-static groups, optional act-order), with BitBudget's one stated deviation: the group
   scale is rounded to f16 before codes are chosen. Both 4-bit g64 sym and 8-bit g128 asym with
   act-order are stored, with the Hessian as BitBudget builds it (2/sequences · Σ x xᵀ).
2. python-actorder-4bit/: a GPTQ v1 checkpoint written here, independently of BitBudget, from the
   qwen3-mha-untied-bf16 fixture (4-bit, groups of 64, symmetric, desc_act with a random column
   permutation in g_idx), and dequantized.json: its linears dequantized by the documented formula.
   BitBudget must read it to exactly these values.
3. bitbudget-rtn8-asym/: what `bitbudget quantize --method rtn --weights 8 --weight-group 64
   --asymmetric` writes for the qwen3-gqa-tied-f32 fixture (needs a release build), and
   dequantized.json from the documented formula: BitBudget's writer must keep producing these
   bytes, and they must mean these values.

Run: /work/.venv-ref/bin/python scripts/make-gptq-fixtures.py  (torch CPU, safetensors).
"""
import json
import math
import sys

import torch


def compact_json(value, path):
    """JSON with f32 values written in 9 significant digits (Python would write 17)."""
    import re
    text = json.dumps(value)
    text = re.sub(r"-?\d+\.\d{9,}(e-?\d+)?", lambda m: "%.9g" % float(m.group(0)), text)
    open(path, "w").write(text)


def find_params(x, bits, sym):
    # x: [rows, n] -> scale, zero per row (AutoGPTQ Quantizer.find_params, perchannel)
    maxq = 2**bits - 1
    zero_t = torch.zeros(x.shape[0])
    xmin = torch.minimum(x.min(1).values, zero_t)
    xmax = torch.maximum(x.max(1).values, zero_t)
    if sym:
        xmax = torch.maximum(torch.abs(xmin), xmax)
        tmp = xmin < 0
        if torch.any(tmp):
            xmin[tmp] = -xmax[tmp]
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = +1
    scale = (xmax - xmin) / maxq
    scale = scale.half().float()  # BitBudget: stored scale == used scale
    scale[scale == 0] = float(torch.finfo(torch.float16).smallest_normal) * 0 + 2**-24
    if sym:
        zero = torch.full_like(scale, (maxq + 1) / 2)
    else:
        zero = torch.round(-xmin / scale).clamp(0, maxq)
    return scale, zero


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return q, scale * (q - zero)


def fasterquant(W, H, bits, group, sym, actorder, blocksize=128, percdamp=0.01):
    W = W.clone().float()
    H = H.clone()
    rows, columns = W.shape
    maxq = 2**bits - 1
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = torch.arange(columns)
    if actorder:
        d = torch.diag(H)
        # descending, ties by index (stable)
        perm = torch.tensor(sorted(range(columns), key=lambda i: (-d[i].item(), i)))
        W = W[:, perm]
        H = H[perm][:, perm]
    damp = percdamp * torch.mean(torch.diag(H))
    H[range(columns), range(columns)] += damp
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    Hinv = torch.linalg.cholesky(Hinv, upper=True)
    Q = torch.zeros_like(W)
    codes = torch.zeros_like(W)
    groups = math.ceil(columns / group)
    scales = torch.zeros(rows, groups)
    zeros = torch.zeros(rows, groups)
    scale = zero = None
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            col = i1 + i
            w = W1[:, i]
            d = Hinv1[i, i]
            if col % group == 0:
                scale, zero = find_params(W[:, col:col + group], bits, sym)
                scales[:, col // group] = scale
                zeros[:, col // group] = zero
            c, q = quantize(w, scale, zero, maxq)
            codes[:, col] = c
            Q[:, col] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return codes, scales, zeros, perm, Q


def layer_case(seed, rows, columns, tokens, sequences, bits, group, sym, actorder):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, columns, generator=g) * 0.05
    W[:, :7] *= 4  # a few columns with outliers, as real layers have
    mix = torch.randn(columns, columns, generator=g) / math.sqrt(columns)
    X = torch.randn(tokens, columns, generator=g) @ (torch.eye(columns) + mix)
    X[:, 3] *= 10  # an input channel with large activations
    H = 2 / sequences * (X.t() @ X)
    codes, scales, zeros, perm, Q = fasterquant(W, H, bits, group, sym, actorder)
    return {
        "rows": rows, "columns": columns, "bits": bits, "group_size": group, "symmetric": sym,
        "act_order": actorder, "weight": W.flatten().tolist(), "hessian": H.flatten().tolist(),
        "codes": codes.to(torch.int32).flatten().tolist(), "scales": scales.flatten().tolist(),
        "zeros": zeros.flatten().tolist(), "order": perm.tolist(),
        # mean squared output error on the calibration inputs, reference GPTQ and plain RTN
        "output_error": float(((X @ (W - Q_unperm(Q, perm)).t()) ** 2).mean()),
        "rtn_output_error": float(((X @ (W - rtn(W, bits, group, sym)[1]).t()) ** 2).mean()),
        "rtn_codes": rtn(W, bits, group, sym)[0].to(torch.int32).flatten().tolist(),
    }


def Q_unperm(Q, perm):
    out = torch.zeros_like(Q)
    out[:, perm] = Q
    return out


def rtn(W, bits, group, sym):
    """Round-to-nearest per row and group: (codes, dequantized weights)."""
    codes, values = torch.zeros_like(W), torch.zeros_like(W)
    maxq = 2**bits - 1
    for start in range(0, W.shape[1], group):
        x = W[:, start:start + group]
        scale, zero = find_params(x, bits, sym)
        c, q = quantize(x, scale.unsqueeze(1), zero.unsqueeze(1), maxq)
        codes[:, start:start + group], values[:, start:start + group] = c, q
    return codes, values


def dequantize_checkpoint(directory):
    from safetensors.torch import load_file
    cfg = json.load(open(f"{directory}/config.json"))["quantization_config"]
    bits, v1 = cfg["bits"], cfg.get("checkpoint_format", "gptq") == "gptq"
    tensors = load_file(f"{directory}/model.safetensors")
    out = {}
    per = 32 // bits
    mask = 2**bits - 1
    for name in sorted(k[:-8] for k in tensors if k.endswith(".qweight")):
        qweight = tensors[name + ".qweight"].to(torch.int64) & 0xFFFFFFFF
        qzeros = tensors[name + ".qzeros"].to(torch.int64) & 0xFFFFFFFF
        scales = tensors[name + ".scales"].float()
        g_idx = tensors[name + ".g_idx"].to(torch.int64)
        shifts = torch.arange(per) * bits
        q = ((qweight.unsqueeze(1) >> shifts.view(1, -1, 1)) & mask).reshape(-1, qweight.shape[1])  # [in, out]
        z = ((qzeros.unsqueeze(2) >> shifts.view(1, 1, -1)) & mask).reshape(qzeros.shape[0], -1)  # [groups, out]
        if v1:
            z = z + 1
        W = scales[g_idx] * (q - z[g_idx]).float()  # [in, out]
        out[name] = W.t().flatten().tolist()
    return out


LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def pack_v1(W, bits, group, perm):
    """AutoGPTQ's QuantLinear.pack for a symmetric RTN quantization of W [out, in] whose
    columns are grouped in the order perm (desc_act): g_idx[perm[j]] = j // group."""
    out_features, in_features = W.shape
    maxq = 2**bits - 1
    g_idx = torch.empty(in_features, dtype=torch.int64)
    g_idx[perm] = torch.arange(in_features) // group
    groups = math.ceil(in_features / group)
    scales = torch.zeros(groups, out_features)
    zeros = torch.zeros(groups, out_features)
    for g in range(groups):
        cols = perm[g * group:(g + 1) * group]
        scale, zero = find_params(W[:, cols], bits, True)
        scales[g], zeros[g] = scale, zero
    intweight = torch.clamp(torch.round(W / scales[g_idx].t()) + zeros[g_idx].t(), 0, maxq).to(torch.int64)  # [out, in]
    per = 32 // bits
    q = intweight.t().contiguous()  # [in, out]
    qweight = torch.zeros(in_features // per, out_features, dtype=torch.int64)
    for k in range(per):
        qweight |= q[k::per] << (bits * k)
    zq = (zeros.to(torch.int64) - 1) & maxq  # v1 stores zero - 1
    qzeros = torch.zeros(groups, out_features // per, dtype=torch.int64)
    for k in range(per):
        qzeros |= zq[:, k::per] << (bits * k)
    as_i32 = lambda t: (t & 0xFFFFFFFF).to(torch.int64).apply_(lambda v: v - (1 << 32) if v >= (1 << 31) else v).to(torch.int32)
    return as_i32(qweight), as_i32(qzeros), scales.half(), g_idx.to(torch.int32)


def python_checkpoint(source, target, bits=4, group=64, seed=9):
    import os, shutil
    from safetensors.torch import load_file, save_file
    os.makedirs(target, exist_ok=True)
    tensors = load_file(f"{source}/model.safetensors")
    config = json.load(open(f"{source}/config.json"))
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in tensors.items():
        prefix = name[:-7]
        if name.endswith(".weight") and any(prefix.endswith(l) for l in LINEARS):
            W = t.float()
            perm = torch.randperm(W.shape[1], generator=g)
            qweight, qzeros, scales, g_idx = pack_v1(W, bits, group, perm)
            out[prefix + ".qweight"], out[prefix + ".qzeros"] = qweight, qzeros
            out[prefix + ".scales"], out[prefix + ".g_idx"] = scales, g_idx
        else:
            out[name] = t
    save_file(out, f"{target}/model.safetensors", metadata={"format": "pt"})
    config["quantization_config"] = {"quant_method": "gptq", "bits": bits, "group_size": group, "desc_act": True,
                                     "sym": True, "checkpoint_format": "gptq"}
    json.dump(config, open(f"{target}/config.json", "w"), indent=1)
    shutil.copy(f"{source}/generation_config.json", target)
    compact_json(dequantize_checkpoint(target), f"{target}/dequantized.json")


if __name__ == "__main__":
    cases = [
        layer_case(1, 48, 192, 512, 4, bits=4, group=64, sym=True, actorder=False),
        layer_case(2, 40, 256, 640, 5, bits=8, group=128, sym=False, actorder=True),
        layer_case(3, 32, 192, 400, 2, bits=4, group=128, sym=True, actorder=True),
    ]
    for c in cases:
        print(f"{c['bits']}-bit g{c['group_size']} act_order={c['act_order']}: output error GPTQ {c['output_error']:.4g} vs RTN {c['rtn_output_error']:.4g}", file=sys.stderr)
    compact_json({"cases": cases}, "Tests/Fixtures/gptq/gptq-layers.json")

    python_checkpoint("Tests/Fixtures/models/qwen3-mha-untied-bf16", "Tests/Fixtures/gptq/python-actorder-4bit")
    import subprocess
    target = "Tests/Fixtures/gptq/bitbudget-rtn8-asym"
    subprocess.run([".build/release/bitbudget", "quantize", "--model", "Tests/Fixtures/models/qwen3-gqa-tied-f32",
                    "--method", "rtn", "--weights", "8", "--weight-group", "64", "--asymmetric", "--out", target,
                    "--overwrite"], check=True)
    compact_json(dequantize_checkpoint(target), f"{target}/dequantized.json")
