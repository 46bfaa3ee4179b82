#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into Fuzz/corpus/<target>/ from the repository's
fixtures and test data (small files only; the whole corpus stays well under 2 MB):

  safetensors          the fixture models' and GPTQ checkpoints' headers with every tensor shrunk to
                       a few elements (valid files), a truncated one, a sharded index
  gguf                 Tests/Fixtures/gguf/quant-types.gguf; SmolLM2's metadata (.assets) with its
                       vocabulary cut to 473 tokens and tiny tensors; a Qwen3-style GGUF built from
                       the small Qwen3 tokenizer (300 merges, and 8); a truncated header prefix
  tokenizer-json       Qwen3's tokenizer.json (.assets) cut to its first 40 merges, with each
                       supported pre-tokenizer, merges as pairs, ASCII-escaped; a 3-token one; its
                       tokenizer_config.json
                       (and, as Fuzz/fixtures/qwen3-small-tokenizer.json, cut to 1000 merges: the fixed
                       tokenizer of tokenizer-encode)
  tokenizer-encode     texts of Tests/Fixtures/tokenizer/qwen3-corpus.jsonl
  chat-template        the conversations of Tests/Fixtures/tokenizer/qwen3-chat-template.json in the
                       harness's encoding, and splitThinking's test strings
  sweep-grid           examples/*.yaml and the grids of Tests/BitBudgetEvalTests/SweepGridTests.swift
  task-jsonl           the JSONL of TaskLoadingTests.swift, scripts/make-arithmetic-task.py's output,
                       Tests/Fixtures/eval/extraction.json as questions
  task-gpqa-csv        the CSVs of TaskLoadingTests.swift
  completion-response  the bodies of Tests/Fixtures/remote/fake_openai_server.py and RemoteBackendTests
  model-config         every config.json / quantize_config.json under Tests/Fixtures

  python3 Fuzz/scripts/make-seeds.py          # needs .assets (scripts/fetch-test-assets.sh)

Deterministic: running it again rewrites the same files. Files named regression-* (reproducers of
bugs fuzzing found, added by hand once fixed) are left in place.
"""
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys

FUZZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(FUZZ)
CORPUS = os.path.join(FUZZ, "corpus")
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
ASSETS = os.path.join(ROOT, ".assets")


def target_dir(name):
    """Empties Fuzz/corpus/<name>/ except its regression-* files (reproducers of fixed bugs, kept
    by hand) and returns it."""
    path = os.path.join(CORPUS, name)
    os.makedirs(path, exist_ok=True)
    for entry in os.listdir(path):
        if not entry.startswith("regression-"):
            os.remove(os.path.join(path, entry))
    return path


def write(folder, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


# ---------------------------------------------------------------- safetensors

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def read_safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def safetensors_bytes(header, tensors):
    """header: the __metadata__ (or None); tensors: [(name, dtype, shape)] laid out in order."""
    entries = {}
    if header is not None:
        entries["__metadata__"] = header
    offset = 0
    for name, dtype, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        size = count * DTYPE_BYTES[dtype]
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
    data = bytes((i * 37) & 0xFF for i in range(offset))
    return struct.pack("<Q", len(text)) + text + data


def shrink(shape, limit):
    return [min(d, limit) for d in shape]


def make_safetensors():
    out = target_dir("safetensors")
    files = sorted(glob.glob(os.path.join(FIXTURES, "models", "*", "*.safetensors"))
                   + glob.glob(os.path.join(FIXTURES, "gptq", "*", "*.safetensors")))
    for path in files:
        header = read_safetensors_header(path)
        meta = header.pop("__metadata__", None)
        ordered = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
        label = os.path.basename(os.path.dirname(path)) + "-" + os.path.basename(path).replace(".safetensors", "")
        # Every tensor, each at most 2 per dimension: the real names, dtypes and ranks.
        tensors = [(name, info["dtype"], shrink(info["shape"], 2)) for name, info in ordered]
        write(out, label + ".safetensors", safetensors_bytes(meta, tensors))
    # A few small hand-made ones: scalars, empty tensors, every dtype, metadata only.
    write(out, "every-dtype.safetensors",
          safetensors_bytes({"format": "pt"}, [(f"t.{d.lower()}", d, [2, 3]) for d in DTYPE_BYTES]))
    write(out, "scalar-and-empty.safetensors",
          safetensors_bytes(None, [("scalar", "F32", []), ("empty", "BF16", [0, 4]), ("row", "F16", [5])]))
    write(out, "metadata-only.safetensors", safetensors_bytes({"format": "pt", "note": "no tensors"}, []))
    # A real header whose data is cut short (the loader's "truncated" error).
    first = os.path.join(FIXTURES, "models", "qwen3-gqa-tied-f32", "model.safetensors")
    with open(first, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(0)
        write(out, "truncated.safetensors", f.read(8 + n + 64))
    index = os.path.join(FIXTURES, "models", "qwen3-gqa4-tied-bf16-sharded", "model.safetensors.index.json")
    shutil.copy(index, os.path.join(out, "model.safetensors.index.json"))


# ---------------------------------------------------------------- GGUF

class GGUFReader:
    SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def __init__(self, path):
        self.f = open(path, "rb")
        assert self.f.read(4) == b"GGUF"
        self.version, = struct.unpack("<I", self.f.read(4))
        tensor_count, metadata_count = struct.unpack("<QQ", self.f.read(16))
        self.metadata = []  # (key, type, value) with value as raw bytes, str or (elem_type, [values])
        for _ in range(metadata_count):
            key = self.string()
            vtype, = struct.unpack("<I", self.f.read(4))
            self.metadata.append((key, vtype, self.value(vtype)))
        self.tensors = []
        for _ in range(tensor_count):
            name = self.string()
            nd, = struct.unpack("<I", self.f.read(4))
            dims = list(struct.unpack(f"<{nd}Q", self.f.read(8 * nd)))
            ttype, offset = struct.unpack("<IQ", self.f.read(12))
            self.tensors.append((name, dims, ttype, offset))

    def string(self):
        n, = struct.unpack("<Q", self.f.read(8))
        return self.f.read(n).decode("utf-8")

    def value(self, vtype):
        if vtype in self.SIZES:
            return self.f.read(self.SIZES[vtype])
        if vtype == 8:
            return self.string()
        assert vtype == 9
        etype, = struct.unpack("<I", self.f.read(4))
        n, = struct.unpack("<Q", self.f.read(8))
        return (etype, [self.value(etype) for _ in range(n)])


def gguf_string(text):
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def gguf_value(vtype, value):
    if vtype == 8:
        return gguf_string(value)
    if vtype == 9:
        etype, values = value
        return struct.pack("<IQ", etype, len(values)) + b"".join(gguf_value(etype, v) for v in values)
    return value  # raw little-endian bytes


# ggml type id -> (block size, block bytes)
GGML = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 8: (32, 34), 12: (256, 144), 14: (256, 210), 30: (1, 2)}


def gguf_bytes(metadata, tensors, version=3, alignment=32):
    """metadata: [(key, type, value)]; tensors: [(name, dims, ggml type)], laid out aligned."""
    header = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, vtype, value in metadata:
        header += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)
    offset = 0
    layout = []
    for name, dims, ttype in tensors:
        block, size = GGML[ttype]
        count = 1
        for d in dims:
            count *= d
        nbytes = count // block * size
        layout.append((name, dims, ttype, offset, nbytes))
        offset += nbytes + (-nbytes % alignment)
    for name, dims, ttype, off, _ in layout:
        header += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        header += struct.pack("<IQ", ttype, off)
    header += b"\0" * (-len(header) % alignment)
    data = bytearray(offset)
    for i in range(len(data)):
        data[i] = (i * 29) & 0xFF
    return header + bytes(data)


def u32(value):
    return struct.pack("<I", value)


def f32(value):
    return struct.pack("<f", value)


def make_gguf(qwen_small):
    out = target_dir("gguf")
    shutil.copy(os.path.join(FIXTURES, "gguf", "quant-types.gguf"), os.path.join(out, "quant-types.gguf"))

    smol = GGUFReader(os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    keep = 273 + 200  # 17 special tokens, the 256 byte tokens, the first 200 merges' tokens
    metadata = []
    for key, vtype, value in smol.metadata:
        if key == "tokenizer.ggml.tokens" or key == "tokenizer.ggml.token_type":
            value = (value[0], value[1][:keep])
        elif key == "tokenizer.ggml.merges":
            value = (value[0], value[1][:200])
        elif key == "llama.vocab_size":
            value = u32(keep)
        elif key == "tokenizer.chat_template":
            value = value[:400]
        metadata.append((key, vtype, value))
    hidden = 32
    tensors = [
        ("token_embd.weight", [hidden, keep], 3),  # Q4_1, as in the real file
        ("blk.0.attn_norm.weight", [hidden], 0),
        ("blk.0.attn_q.weight", [hidden, hidden], 8),
        ("blk.0.ffn_down.weight", [256, 4], 12),
        ("output_norm.weight", [hidden], 0),
    ]
    write(out, "smollm2-small.gguf", gguf_bytes(metadata, tensors))
    write(out, "smollm2-small-v2.gguf", gguf_bytes(metadata, tensors, version=2))
    # SmolLM2's real header, cut inside the token list.
    with open(os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), "rb") as f:
        write(out, "smollm2-prefix.gguf", f.read(4096))

    # A Qwen3-style GGUF: the small Qwen3 tokenizer's vocabulary, merges and token types.
    vocab = qwen_small["model"]["vocab"]
    tokens = [None] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        tokens[i] = token
    types = [1] * len(tokens)
    for added in qwen_small["added_tokens"]:
        while len(tokens) <= added["id"]:
            tokens.append(None)
            types.append(1)
        tokens[added["id"]] = added["content"]
        types[added["id"]] = 3 if added["special"] else 4
    merges = [" ".join(m) if isinstance(m, list) else m for m in qwen_small["model"]["merges"]][:300]
    # Keep the first 300 merges' tokens and the added ones (renumbered after them: ids are positions).
    tokens = tokens[:256 + 300] + tokens[len(vocab):]
    types = types[:256 + 300] + types[len(vocab):]
    meta = [
        ("general.architecture", 8, "qwen3"),
        ("general.alignment", 4, u32(64)),
        ("qwen3.block_count", 4, u32(2)),
        ("qwen3.context_length", 4, u32(40960)),
        ("qwen3.embedding_length", 4, u32(64)),
        ("qwen3.feed_forward_length", 4, u32(128)),
        ("qwen3.attention.head_count", 4, u32(4)),
        ("qwen3.attention.head_count_kv", 4, u32(2)),
        ("qwen3.attention.key_length", 4, u32(16)),
        ("qwen3.attention.value_length", 4, u32(16)),
        ("qwen3.rope.freq_base", 6, f32(1000000.0)),
        ("qwen3.attention.layer_norm_rms_epsilon", 6, f32(1e-6)),
        ("tokenizer.ggml.model", 8, "gpt2"),
        ("tokenizer.ggml.pre", 8, "qwen2"),
        ("tokenizer.ggml.tokens", 9, (8, tokens)),
        ("tokenizer.ggml.token_type", 9, (5, [struct.pack("<i", t) for t in types])),
        ("tokenizer.ggml.merges", 9, (8, merges)),
        ("tokenizer.ggml.eos_token_id", 4, u32(256 + 300 + 2)),  # <|im_end|>
        ("tokenizer.ggml.bos_token_id", 4, u32(256 + 300)),
        ("tokenizer.ggml.add_bos_token", 7, b"\0"),
        ("tokenizer.chat_template", 8, "{% for message in messages %}{{ message.content }}{% endfor %}"),
    ]
    qtensors = [
        ("token_embd.weight", [32, len(tokens)], 2),
        ("blk.0.attn_q.weight", [64, 64], 1),
        ("blk.0.attn_q_norm.weight", [16], 0),
        ("blk.0.attn_q.bias", [64], 0),
        ("output.weight", [32, len(tokens)], 2),
    ]
    write(out, "qwen3-small.gguf", gguf_bytes(meta, qtensors, alignment=64))

    # The same with 8 merges and no tensor data to speak of: a small input whose every field
    # matters (token types, ids, merges), so mutations reach the tokenizer and config code quickly.
    cut = 256 + 8
    tiny_tokens = tokens[:cut] + tokens[256 + 300:]
    tiny_types = types[:cut] + types[256 + 300:]
    tiny = []
    for key, vtype, value in meta:
        if key == "tokenizer.ggml.tokens":
            value = (8, tiny_tokens)
        elif key == "tokenizer.ggml.token_type":
            value = (5, [struct.pack("<i", t) for t in tiny_types])
        elif key == "tokenizer.ggml.merges":
            value = (8, merges[:8])
        elif key == "tokenizer.ggml.eos_token_id":  # as int32 and int64: GGUF allows any integer type
            vtype, value = 5, struct.pack("<i", cut + 2)
        elif key == "tokenizer.ggml.bos_token_id":
            vtype, value = 11, struct.pack("<q", cut)
        elif key == "qwen3.block_count":
            vtype, value = 10, struct.pack("<Q", 2)
        tiny.append((key, vtype, value))
    write(out, "qwen3-tiny.gguf", gguf_bytes(tiny, [("token_embd.weight", [32, len(tiny_tokens)], 2)], alignment=64))


# ---------------------------------------------------------------- tokenizer.json

def cut_qwen_tokenizer(full, merges):
    """Qwen3's tokenizer.json with only its first `merges` merges (merge i makes id 256 + i) and
    the added tokens renumbered right after the vocabulary."""
    t = json.loads(json.dumps(full))
    size = 256 + merges
    inverse = {i: s for s, i in t["model"]["vocab"].items()}
    t["model"]["vocab"] = {inverse[i]: i for i in range(size)}
    t["model"]["merges"] = t["model"]["merges"][:merges]
    for n, added in enumerate(t["added_tokens"]):
        added["id"] = size + n
    return t


def make_tokenizer_json():
    out = target_dir("tokenizer-json")
    with open(os.path.join(ASSETS, "qwen3-tokenizer", "tokenizer.json"), encoding="utf-8") as f:
        full = json.load(f)
    # The fixed tokenizer of tokenizer-encode (not a seed: 55 KB would slow tokenizer-json down).
    small = cut_qwen_tokenizer(full, 1000)
    os.makedirs(os.path.join(FUZZ, "fixtures"), exist_ok=True)
    write(os.path.join(FUZZ, "fixtures"), "qwen3-small-tokenizer.json", json.dumps(small, ensure_ascii=False, indent=1))
    tiny = cut_qwen_tokenizer(full, 40)
    write(out, "qwen3-tiny.json", json.dumps(tiny, ensure_ascii=False, separators=(",", ":")))
    write(out, "qwen3-tiny-escaped.json", json.dumps(tiny, ensure_ascii=True))
    strings = json.loads(json.dumps(tiny))
    strings["model"]["merges"] = [" ".join(m) for m in strings["model"]["merges"]]
    write(out, "qwen3-tiny-string-merges.json", json.dumps(strings, ensure_ascii=False))
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    llama = json.loads(json.dumps(tiny))
    llama["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    llama["normalizer"] = None
    write(out, "llama3-tiny.json", json.dumps(llama, ensure_ascii=False))
    gpt2 = json.loads(json.dumps(tiny))
    gpt2["pre_tokenizer"] = dict(byte_level, use_regex=True)
    gpt2.pop("normalizer")
    write(out, "gpt2-tiny.json", json.dumps(gpt2, ensure_ascii=False))
    smollm = json.loads(json.dumps(tiny))
    smollm["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, dict(byte_level, use_regex=True)]}
    smollm["normalizer"] = None
    write(out, "smollm-tiny.json", json.dumps(smollm, ensure_ascii=False))
    # Structurally complete but with a 3-token vocabulary (rejected: not byte-level), so that
    # mutations of ids and added tokens reach Tokenizer.init without a 300-entry vocabulary.
    minimal = json.loads(json.dumps(tiny))
    minimal["model"]["vocab"] = {"a": 0, "b": 1, "ab": 2}
    minimal["model"]["merges"] = [["a", "b"]]
    minimal["added_tokens"] = minimal["added_tokens"][:2]
    for n, added in enumerate(minimal["added_tokens"]):
        added["id"] = 3 + n
    write(out, "minimal-vocab.json", json.dumps(minimal, ensure_ascii=False))
    shutil.copy(os.path.join(ASSETS, "qwen3-tokenizer", "tokenizer_config.json"),
                os.path.join(out, "tokenizer_config.json"))
    return small


def make_tokenizer_encode():
    out = target_dir("tokenizer-encode")
    with open(os.path.join(FIXTURES, "tokenizer", "qwen3-corpus.jsonl"), encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    short = [t for t in texts if len(t.encode()) <= 512]
    step = max(1, len(short) // 48)
    for n, text in enumerate(short[::step][:48]):
        write(out, f"corpus-{n:02d}.txt", text)


# ---------------------------------------------------------------- chat template

ROLE_LETTER = {"system": "s", "user": "u", "assistant": "a", "tool": "t"}


def chat_input(template, messages, add_generation_prompt, enable_thinking):
    records = []
    for m in messages:
        body = m["content"] or ""
        if m.get("reasoning_content") is not None:
            body += "\x1f" + m["reasoning_content"]
        records.append(ROLE_LETTER[m["role"]] + body)
    flags = (1 if add_generation_prompt else 0) | (0 if enable_thinking is None else 2 | (4 if enable_thinking else 0))
    return bytes([flags]) + (template + "\x1d" + "\x1e".join(records)).encode("utf-8")


def make_chat_template():
    out = target_dir("chat-template")
    with open(os.path.join(FIXTURES, "chat-templates", "templates.json"), encoding="utf-8") as f:
        collection = json.load(f)
    conversations = collection["conversations"]
    # Each real template with a plain conversation and, as JSON, one with tool calls.
    for n, entry in enumerate(collection["templates"]):
        messages = json.loads(conversations["thinking-in-content"])
        write(out, f"template-{n:02d}.bin", chat_input(entry["template"], messages, True, n % 2 == 0))
        write(out, f"template-{n:02d}-json.bin",
              bytes([1 | 8]) + (entry["template"] + "\x1d" + conversations["tool-call"]).encode("utf-8"))
    # The feature templates (whitespace control, filters, tests, macros, errors).
    with open(os.path.join(FIXTURES, "chat-templates", "jinja-features.json"), encoding="utf-8") as f:
        for n, case in enumerate(json.load(f)):
            write(out, f"feature-{n:02d}.bin", bytes([1]) + (case["template"] + "\x1d" + "uhi").encode("utf-8"))
    # ChatTemplateTests' ThinkingSplit strings.
    for n, text in enumerate(["<think>\nsteps\n</think>\n\nThe answer is 4.", "still thinking",
                              "a</think>b</think>c", "</think>"]):
        write(out, f"split-{n}.bin", b"\x03" + text.encode("utf-8"))


# ---------------------------------------------------------------- sweep grids

def swift_string_literals(path):
    """The Swift string literals of a test file: "…" with \\n escapes, and triple-quoted blocks."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    literals = []
    for block in re.findall(r'"""\n(.*?)\n\s*"""', source, re.S):
        lines = block.split("\n")
        indent = min(len(l) - len(l.lstrip(" ")) for l in lines if l.strip())
        literals.append("\n".join(l[indent:] for l in lines) + "\n")
    for literal in re.findall(r'\(\s*"((?:[^"\\]|\\.)*)",', source):
        literals.append(literal.encode("utf-8").decode("unicode_escape"))
    return literals


def make_sweep_grid():
    out = target_dir("sweep-grid")
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml"))):
        shutil.copy(path, os.path.join(out, os.path.basename(path)))
    tests = os.path.join(ROOT, "Tests", "BitBudgetEvalTests", "SweepGridTests.swift")
    n = 0
    for literal in swift_string_literals(tests):
        if ":" in literal:
            write(out, f"test-{n:02d}.yaml", literal)
            n += 1


# ---------------------------------------------------------------- tasks

def make_tasks():
    out = target_dir("task-jsonl")
    tests = os.path.join(ROOT, "Tests", "BitBudgetEvalTests", "TaskLoadingTests.swift")
    with open(tests, encoding="utf-8") as f:
        source = f.read()
    n = 0
    for block in re.findall(r'"""\n(.*?)\n\s*"""', source, re.S):
        if block.lstrip().startswith("{"):
            lines = [l.strip() for l in block.split("\n")]
            write(out, f"test-{n:02d}.jsonl", "\n".join(lines) + "\n")
            n += 1
    for literal in re.findall(r'#"(\{.*?\})"#', source):
        write(out, f"test-{n:02d}.jsonl", literal + "\n")
        n += 1
    for literal in re.findall(r'\("((?:[^"\\]|\\.)*)", "', source):
        text = literal.encode("utf-8").decode("unicode_escape")
        if text.strip():
            write(out, f"test-{n:02d}.jsonl", text + "\n")
            n += 1
    arithmetic = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-arithmetic-task.py"), "6", "1"],
                                check=True, capture_output=True, text=True).stdout
    write(out, "arithmetic.jsonl", arithmetic)
    with open(os.path.join(FIXTURES, "eval", "extraction.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    lines = [json.dumps({"id": f"x{i}", "problem": c["output"], "answer": c["expected"]}) for i, c in enumerate(cases)]
    write(out, "extraction.jsonl", "\n".join(lines) + "\n")
    write(out, "choices.jsonl", json.dumps({"question": "Pick", "choices": ["x", "y", "z"], "answer": "z"}) + "\n"
          + json.dumps({"question": "Again", "options": ["p", "q"], "answer": "(B)", "id": 3}) + "\n")

    out = target_dir("task-gpqa-csv")
    n = 0
    for block in re.findall(r'"""\n(.*?)\n\s*"""', source, re.S):
        if "Correct Answer" in block:
            lines = block.split("\n")
            indent = min(len(l) - len(l.lstrip(" ")) for l in lines if l.strip())
            write(out, f"test-{n:02d}.csv", "\n".join(l[indent:] for l in lines) + "\n")
            n += 1
    write(out, "missing-columns.csv", "Question,Correct Answer\nq,a\n")
    write(out, "crlf-quoted.csv",
          "Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\r\n"
          "\"He said \"\"hi\"\"\",a,b,c,d\r\n\"multi\r\nline\",1,2,3,4\r\n")


# ---------------------------------------------------------------- completions

def make_completion():
    out = target_dir("completion-response")
    bodies = [
        {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
         "choices": [{"index": 0, "text": "<think>\nok\n</think>\n\n\\boxed{4}", "finish_reason": "stop", "logprobs": None}],
         "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}},
        {"choices": [{"index": 0, "text": "partial", "finish_reason": "length"}], "usage": {"completion_tokens": 16}},
        {"choices": [{"text": "x", "finish_reason": "stop"}]},
        {"choices": []},
        {"error": {"message": "not found", "type": "invalid_request_error", "code": 404}},
        {"message": "model 'x' does not exist"},
        {"error": {"message": "transient failure"}},
    ]
    for n, body in enumerate(bodies):
        write(out, f"body-{n}.json", json.dumps(body))
    for n, count in enumerate(["9223372036854775807", "1e300", "-1", "2.5", "true", '"12"']):
        write(out, f"tokens-{n}.json",
              '{"choices": [{"text": "x", "finish_reason": "stop"}], "usage": {"completion_tokens": ' + count + "}}")
    write(out, "truncated.json", '{"choices": [')
    write(out, "html.txt", "<html><body><h1>502 Bad Gateway</h1></body></html>\n")


# ---------------------------------------------------------------- model configs

def make_model_config():
    out = target_dir("model-config")
    for path in sorted(glob.glob(os.path.join(FIXTURES, "**", "config.json"), recursive=True)
                       + glob.glob(os.path.join(FIXTURES, "**", "quantize_config.json"), recursive=True)):
        name = os.path.relpath(path, FIXTURES).replace(os.sep, "-")
        shutil.copy(path, os.path.join(out, name))
    # transformers 5 spellings (rope_parameters, dtype).
    with open(os.path.join(FIXTURES, "models", "qwen3-gqa-tied-f32", "config.json")) as f:
        config = json.load(f)
    theta = config.pop("rope_theta", 1000000)
    config["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    config["dtype"] = config.pop("torch_dtype", "bfloat16")
    config["layer_types"] = ["full_attention"] * config.get("num_hidden_layers", 1)
    write(out, "transformers5-config.json", json.dumps(config, indent=2))


def main():
    if not os.path.isdir(ASSETS):
        sys.exit("make-seeds: run scripts/fetch-test-assets.sh first (.assets/ is missing)")
    make_safetensors()
    small = make_tokenizer_json()
    make_tokenizer_encode()
    make_gguf(small)
    make_chat_template()
    make_sweep_grid()
    make_tasks()
    make_completion()
    make_model_config()
    total = 0
    for target in sorted(os.listdir(CORPUS)):
        files = glob.glob(os.path.join(CORPUS, target, "*"))
        size = sum(os.path.getsize(p) for p in files)
        total += size
        print(f"{target:22s} {len(files):3d} files {size / 1024:8.1f} KiB")
    print(f"{'total':22s} {total / 1024:16.1f} KiB")


if __name__ == "__main__":
    main()
