#!/usr/bin/env python3
"""Writes Tests/Fixtures/analysis/synthetic-results.json: a synthetic but paper-shaped result set
for BitBudget's analysis tests, with its Pareto frontier and crossover computed here,
independently of the Swift code.

Scenarios: Qwen3 0.6B…14B × weights 4/8/16 × budgets 2k…30k × G 1/4 on one maths task of 30
questions × 8 samples. Memory: the paper's Table 1 accounting (§3.2 of paper.md) — weights
N_q·(P_W + 32/128)/8 + N_bf16·2 (16-bit: all parameters × 2), KV 2·L·H_kv·d·2 bytes per token
per sample. Accuracy (the generative model): a capacity that grows with log effective size (4-bit
weights pay a maths penalty), reached with a token time constant that grows with the model, so
small models saturate early (weights win) and large ones keep gaining from tokens (generation
wins); maj@G lifts accuracy only for effective sizes above 4 GiB. Per-question correctness is
drawn with a fixed seed from question difficulties.

Usage: python3 scripts/make-synthetic-results.py > Tests/Fixtures/analysis/synthetic-results.json
"""
import json
import math
import random

MODELS = {  # name: (layers, hidden, intermediate, q heads, kv heads, head dim, vocab, tied)
    "qwen3-0.6b": (28, 1024, 3072, 16, 8, 128, 151936, True),
    "qwen3-1.7b": (28, 2048, 6144, 16, 8, 128, 151936, True),
    "qwen3-4b": (36, 2560, 9728, 32, 8, 128, 151936, True),
    "qwen3-8b": (36, 4096, 12288, 32, 8, 128, 151936, False),
    "qwen3-14b": (40, 5120, 17408, 40, 8, 128, 151936, False),
}
GIB = 2 ** 30


def weights_bytes(name, bits):
    L, h, i, q, kv, d, vocab, tied = MODELS[name]
    linear = L * (h * q * d + 2 * h * kv * d + q * d * h + 3 * h * i)
    norms = L * (2 * h + 2 * d) + h
    embedding = vocab * h * (1 if tied else 2)
    if bits == 16:
        return 2 * (linear + norms + embedding)
    return int(linear * (bits + 32 / 128) / 8) + 2 * (norms + embedding)


def kv_bytes(name, tokens, samples):
    L, h, i, q, kv, d, vocab, tied = MODELS[name]
    return samples * tokens * 2 * L * kv * d * 2


def accuracy(name, bits, tokens, samples):
    eff = weights_bytes(name, bits) / GIB
    capacity = 0.05 + 0.2 * math.log2(1 + eff)
    if bits == 4:
        capacity *= 0.85
    tau = 1200 * eff ** 1.6
    p = min(0.95, capacity) * (1 - math.exp(-tokens / tau))
    if samples > 1 and eff >= 4.0:
        p = min(0.97, p * (1 + 0.1 * math.log2(samples)))
    return p


def main():
    rng = random.Random(20251010)
    difficulties = [rng.gauss(0, 1.2) for _ in range(30)]
    scenarios = []
    for name in MODELS:
        for bits in (4, 8, 16):
            for tokens in range(2000, 30001, 4000):
                for samples in (1, 4):
                    target = accuracy(name, bits, tokens, samples)
                    logit = math.log(target / (1 - target)) if 0 < target < 1 else -8
                    questions = []
                    for qi, difficulty in enumerate(difficulties):
                        q = 1 / (1 + math.exp(-(logit - difficulty)))
                        questions.append(sum(rng.random() < q for _ in range(8)))
                    key = f"{name}-{bits}-{tokens}-{samples}"
                    scenarios.append({
                        "key": key, "model": name, "weight_bits": bits, "kv": "full", "token_budget": tokens,
                        "parallel": samples, "weights_bytes": weights_bytes(name, bits),
                        "memory_bytes": weights_bytes(name, bits) + kv_bytes(name, tokens, samples),
                        "correct_per_question": questions, "samples_per_question": 8,
                    })
    # Reference frontier on the mean accuracy (per-question share correct, averaged): sort by
    # memory, then accuracy descending, then key; keep strictly increasing accuracy.
    def mean(s):
        return sum(c / s["samples_per_question"] for c in s["correct_per_question"]) / len(s["correct_per_question"])
    ordered = sorted(scenarios, key=lambda s: (s["memory_bytes"], -mean(s), s["key"]))
    frontier, best = [], -1.0
    for s in ordered:
        if mean(s) > best:
            frontier.append(s["key"])
            best = mean(s)
    # Step axes and the weights→generation split that explains the most of the frontier's memory
    # span (each step weighted by the memory it adds).
    by_key = {s["key"]: s for s in scenarios}
    axes = []
    for a, b in zip(frontier, frontier[1:]):
        sa, sb = by_key[a], by_key[b]
        if (sa["model"], sa["weight_bits"]) != (sb["model"], sb["weight_bits"]):
            axes.append("weights")
        elif sa["parallel"] != sb["parallel"]:
            axes.append("parallel")
        else:
            axes.append("tokens")
    span = [by_key[b]["memory_bytes"] - by_key[a]["memory_bytes"] for a, b in zip(frontier, frontier[1:])]
    best_split, best_explained = None, -1
    for split in range(1, len(axes)):
        if "weights" in axes[:split] and any(x in ("tokens", "parallel") for x in axes[split:]):
            explained = sum(s for s, x in zip(span[:split], axes[:split]) if x == "weights")
            explained += sum(s for s, x in zip(span[split:], axes[split:]) if x in ("tokens", "parallel"))
            if explained > best_explained:
                best_split, best_explained = split, explained
    json.dump({
        "task": "synthetic-math", "scenarios": scenarios, "frontier": frontier, "axes": axes,
        "crossover": frontier[best_split] if best_split is not None else None, "crossover_explained_fraction": best_explained / sum(span),
    }, __import__("sys").stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
