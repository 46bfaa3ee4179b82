#!/usr/bin/env python3
"""Reference outputs for the GGUF tests, from Hugging Face transformers and the gguf package.

1. Tests/Fixtures/gguf/smollm2-reference.json — transformers loading the real SmolLM2-135M-Instruct
   GGUF (it dequantizes to float32): token ids of five chat prompts, greedy continuations, and
   logits of the first prompt at eight positions (every 12th vocabulary entry plus each position's
   top 20, to stay small).
2. Tests/Fixtures/gguf/quant-types.gguf and quant-types-reference.json — a small GGUF with one
   tensor per ggml type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K, Q5_K, and Q3_K,
   which the engine does not read), random blocks with sane scales, and the values gguf-py's
   `quants.dequantize` gives for each.
3. Tests/Fixtures/gguf/smollm2-corpus.json — ids of the tokenizer corpus (Tests/Fixtures/tokenizer)
   from the `tokenizers` library running SmolLM2's own pipeline (Digits(individual_digits) then
   ByteLevel with the GPT-2 regex, as SmolLM2's tokenizer.json and llama.cpp's "smollm"
   pre-tokenizer have it) over the vocabulary and merges read from the GGUF with gguf-py.
   (transformers' GGUF loader drops the Digits step, so it is not the reference here.)

Usage: python scripts/make-gguf-references.py   (needs torch, transformers, gguf, numpy; the SmolLM2
GGUF from scripts/fetch-test-assets.sh)
"""
import json
import os

import gguf
import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "gguf")
SMOLLM = os.path.join(ROOT, ".assets", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWrite a Python function that returns the square of x.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nCompute 123 + 4567 and explain each step.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nTranslate 'good morning' into French, Spanish and German.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nDon't you think it's 9:45 already? Café, naïve, über — 日本語 😀\n\n  spaces\tand tabs<|im_end|>\n<|im_start|>assistant\n",
]
GREEDY_PROMPTS = [0, 1]
GREEDY_TOKENS = 48
LOGIT_STRIDE = 12


def smollm2_reference():
    folder, name = os.path.split(SMOLLM)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    ids = [tokenizer(p, add_special_tokens=False).input_ids for p in PROMPTS]
    greedy = []
    with torch.no_grad():
        for index in GREEDY_PROMPTS:
            prompt = torch.tensor([ids[index]])
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=GREEDY_TOKENS,
                                 do_sample=False, eos_token_id=None, pad_token_id=2)
            greedy.append(out[0, prompt.shape[1]:].tolist())
        logits = model(torch.tensor([ids[0]])).logits[0]
    count = logits.shape[0]
    positions = sorted(set([0, 1, 2, 4, 7, 10, 13, count - 1]))
    rows = []
    for position in positions:
        row = logits[position]
        top = torch.topk(row, 20)
        rows.append({
            "position": position,
            "strided": [round(v, 5) for v in row[::LOGIT_STRIDE].tolist()],
            "top_ids": top.indices.tolist(),
            "top_values": [round(v, 5) for v in top.values.tolist()],
        })
    return {"prompts": PROMPTS, "ids": ids, "greedy_prompts": GREEDY_PROMPTS, "greedy": greedy,
            "logit_stride": LOGIT_STRIDE, "logits": rows, "vocab_size": logits.shape[1]}


def random_blocks(qtype, rows, columns, rng):
    """Random raw blocks of `qtype` whose f16 scale fields are small finite values."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rows * columns // block_size
    raw = rng.integers(0, 256, size=(blocks, type_size), dtype=np.uint8)
    def put_half(offset, low, high):
        values = rng.uniform(low, high, size=blocks).astype(np.float16)
        raw[:, offset:offset + 2] = values.view(np.uint8).reshape(blocks, 2)
    Q = gguf.GGMLQuantizationType
    if qtype in (Q.Q8_0, Q.Q4_0, Q.Q5_0):
        put_half(0, -0.05, 0.05)
    elif qtype in (Q.Q4_1, Q.Q5_1):
        put_half(0, 0.001, 0.05)
        put_half(2, -0.5, 0.5)
    elif qtype in (Q.Q4_K, Q.Q5_K):
        put_half(0, 0.0005, 0.005)
        put_half(2, 0.0005, 0.005)
    elif qtype == Q.Q6_K:
        put_half(type_size - 2, 0.0005, 0.005)
    elif qtype == Q.Q3_K:
        put_half(type_size - 2, 0.0005, 0.005)
    return raw.reshape(rows, columns // block_size * type_size)


def quant_types():
    rng = np.random.default_rng(20251129)
    Q = gguf.GGMLQuantizationType
    rows, columns = 3, 512
    writer = gguf.GGUFWriter(os.path.join(OUT, "quant-types.gguf"), "llama")
    reference = {}
    dense = rng.standard_normal((rows, columns)).astype(np.float32)
    writer.add_tensor("F32", dense)
    reference["F32"] = dense.reshape(-1).tolist()
    half = dense.astype(np.float16)
    writer.add_tensor("F16", half)
    reference["F16"] = half.astype(np.float32).reshape(-1).tolist()
    bf16 = (dense.view(np.uint32) >> 16).astype(np.uint16)
    writer.add_tensor("BF16", bf16, raw_dtype=Q.BF16)
    reference["BF16"] = (bf16.astype(np.uint32) << 16).view(np.float32).reshape(-1).tolist()
    # Q5_K last, so that the tensors before it keep the values they had before it was added.
    for qtype in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q6_K, Q.Q3_K, Q.Q5_K):
        raw = random_blocks(qtype, rows, columns, rng)
        writer.add_tensor(qtype.name, raw, raw_dtype=qtype)
        reference[qtype.name] = gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(-1).tolist()
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(os.path.join(OUT, "quant-types-reference.json"), "w") as out:
        json.dump({"rows": rows, "columns": columns, "values": reference}, out, separators=(",", ":"))


def smollm2_corpus():
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    reader = gguf.GGUFReader(SMOLLM)

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    types = reader.fields["tokenizer.ggml.token_type"]
    types = [int(types.parts[i][0]) for i in types.data]
    tokenizer = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == 3])
    corpus = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer", "qwen3-corpus.jsonl")
    texts = [json.loads(line)["text"] for line in open(corpus, encoding="utf-8")]
    return [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "smollm2-corpus.json"), "w") as out:
        json.dump({"corpus": "Tests/Fixtures/tokenizer/qwen3-corpus.jsonl", "ids": smollm2_corpus()}, out,
                  separators=(",", ":"))
    quant_types()
    reference = smollm2_reference()
    with open(os.path.join(OUT, "smollm2-reference.json"), "w") as out:
        json.dump(reference, out, ensure_ascii=False, separators=(",", ":"))
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))
    print("greedy", reference["greedy"])


if __name__ == "__main__":
    main()
