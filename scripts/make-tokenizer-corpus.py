#!/usr/bin/env python3
"""Reference token ids for the tokenizer tests, from the Hugging Face `tokenizers` library.

Writes Tests/Fixtures/tokenizer/qwen3-corpus.jsonl: one {"text": ..., "ids": [...], "nfc": ...} per line (nfc: Python's NFC of the text) for
600+ varied strings (every added token, chat-formatted text, LaTeX, code, CJK, RTL scripts, emoji
ZWJ sequences, combining marks, control characters, long digit runs, whitespace-only strings,
contractions, 10 kB inputs, seeded random mixtures), encoded by the real Qwen3 tokenizer.json
without adding special tokens (as the engine encodes prompts).

Also writes Tests/Fixtures/tokenizer/qwen3-chat-template.json: conversations rendered by
transformers' `apply_chat_template` with Qwen3's own template (thinking on and off, system
prompts, multi-turn with thinking in earlier answers, tool responses).

Usage: python scripts/make-tokenizer-corpus.py [path/to/tokenizer-folder]
(default: .assets/qwen3-tokenizer, fetched by scripts/fetch-test-assets.sh).
Needs `pip install tokenizers transformers jinja2`.
"""
import inspect
import json
import os
import random
import sys
import unicodedata

import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer", "qwen3-corpus.jsonl")
CHAT_OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer", "qwen3-chat-template.json")

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You are a careful mathematician."},
     {"role": "user", "content": "Solve x^2 = 4.\nPlease reason step by step, and put your final answer within \\boxed{}."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello!"},
     {"role": "user", "content": "How are you?"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1 without thinking"},
     {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "<think>\nreasoning two\n</think>\n\nA2"}],
    [{"role": "user", "content": "Call the tool"},
     {"role": "assistant", "content": "<think>\nI should call it.\n</think>\n\nCalling."},
     {"role": "tool", "content": "{\"result\": 42}"}, {"role": "tool", "content": "second"}],
    [{"role": "system", "content": "sys"}, {"role": "user", "content": "u1"}, {"role": "system", "content": "late system"},
     {"role": "user", "content": "<tool_response>\nwrapped\n</tool_response>"}],
    [{"role": "user", "content": "多语言 😀 \\frac{1}{2}"},
     {"role": "assistant", "content": "\n\n<think>\n\n  spaced  \n\n</think>\n\n\nAnswer\n"}],
    [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a</think>b</think>c"}],
]

ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
         "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
         "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
         "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
         "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>"]

FIXED = [
    # English, punctuation, contractions (the regex's case-insensitive alternatives)
    "Hello, world! 12345", "I'm here; you're there. It's John's. They'll go, we'd've",
    "DON'T SHOUT. I'M FINE. WE'LL SEE. YOU'RE IT. SHE'D GO.", "'s 't 're 've 'm 'll 'd", "O'Neil's 'quoted' text'",
    "rock 'n' roll", "don’t use curly’s", "end.", "  leading spaces", "trailing spaces   ", "a  b   c    d",
    "tabs\tand\tmore\t\ttabs", "line1\nline2\n\nline4\r\nline5\rline6", "\n\n\n", " \n \n ", "\r\n\r\n",
    "word\n", "word \n", "word  \n\n  next", "!!!???...", "a...b---c___d", "(parens) [brackets] {braces} <angles>",
    "email@example.com http://example.org/path?q=1&r=2#frag", "snake_case camelCase PascalCase kebab-case",
    "C++ C# F# .NET node.js", "100% 50$ €20 £30 ¥40 ₹50", "x = y + z * 3 / (4 - 2) ^ 5",
    # digits one by one
    "1", "12", "123456789012345678901234567890", "3.14159265358979323846264338327950288",
    "0.0001 1e-10 6.022e23 -42 +7", "2025-11-29T04:58:19Z", "phone: +1 (555) 123-4567",
    "١٢٣٤٥ (Arabic-Indic digits)", "१२३ (Devanagari digits) ①②③ Ⅻ ¾ ²³",
    # LaTeX
    r"\boxed{42}", r"$\frac{a}{b} + \sqrt{x^2 + y^2} = \int_0^\infty e^{-t^2}\,dt$",
    r"\begin{align} f(x) &= \sum_{n=0}^{\infty} \frac{f^{(n)}(a)}{n!}(x-a)^n \\ g &= \lim_{h\to 0} \end{align}",
    r"Let $n \geq 1$. Then $\binom{2n}{n} \equiv 0 \pmod{2}$ and \textbf{bold} \mathbb{R}^3.",
    r"The answer is \(\boxed{\dfrac{3\pi}{4}}\).",
    # code
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "let xs: [Int] = (0..<10).map { $0 * $0 }\nprint(xs.reduce(0, +))",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "<div class=\"box\"><p>Hi &amp; bye</p></div>", "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done",
    # CJK and other scripts
    "你好，世界！今天天气很好。", "机器学习是人工智能的一个分支。", "日本語のテキスト、ひらがなとカタカナ。",
    "한국어 텍스트입니다. 안녕하세요!", "中文English混合text测试123", "繁體中文與简体中文",
    "Привет, мир! Ёжик в тумане.", "Γειά σου Κόσμε", "Xin chào thế giới", "ภาษาไทยไม่มีช่องว่าง",
    "हिन्दी भाषा में पाठ", "বাংলা ভাষা", "ქართული ენა", "Հայերեն", "ᚠᚢᚦᚨᚱᚲ runes",
    # RTL
    "مرحبا بالعالم", "שלום עולם", "العربية and English mixed مع أرقام 123", "עברית: אבגד 456",
    "\u202eRTL override\u202c and \u200fRLM\u200e marks",
    # emoji, ZWJ sequences, modifiers, flags, variation selectors
    "😀😃😄", "👨‍👩‍👧‍👦 family", "👩🏽‍💻 coder", "🏳️‍🌈 🏴‍☠️", "🇺🇸🇯🇵🇩🇪", "❤️ ❤ ✔️ ☺︎",
    "👍🏻👍🏼👍🏽👍🏾👍🏿", "🧑‍🤝‍🧑", "text😀text", "🤖 says: beep-boop 🤖",
    # combining marks and normalization (NFC composes some of these)
    "e\u0301", "Cafe\u0301 re\u0301sume\u0301", "n\u0303 a\u0308 o\u0302", "\u1100\u1161\u11a8 (Hangul jamo)",
    "A\u030a vs \u00c5 vs \u212b", "\u0041\u0300\u0323", "ﬁ ligature ﬀ", "Ｆｕｌｌｗｉｄｔｈ", "x\u0336y\u0336",
    "\u0915\u094d\u0937", "Zalgo: Z\u0351\u036b\u0343a\u0350\u035bl\u0352g\u0344o",
    # control characters and odd code points
    "\x00\x01\x02\x03", "bell\x07 backspace\x08 esc\x1b[31mred\x1b[0m", "\x7f\x80\x9f", "\u00ad soft\u00adhyphen",
    "\u200b zero\u200bwidth \u2060 joiner\u200d", "\ufeffBOM at start", "\ufffd replacement", "\U0001f600\U0010fffd",
    "\u2028 line sep \u2029 para sep", "\x0b vertical tab \x0c form feed", "\x1c\x1d\x1e\x1f separators",
    # whitespace-only strings
    " ", "  ", "   ", "\t", "\n", "\r", " \t \n ", "\u00a0", "\u3000", "\u2003\u2002\u2009", "\u00a0 \u00a0",
    " " * 50, "\n" * 20, "\t" * 7 + "\n", "",
    # things that look like added tokens
    "<|im_start", "im_end|>", "<|endoftext|", "<think", "</think >", "< think>", "<|IM_START|>",
    "<think><think></think></think>", "<|im_start|><|im_start|>", "x<|endoftext|>y",
    # case folding in the contraction alternative
    "it'ſ", "IT'S", "'Re", "'vE", "x'LL",
    # NFC composing an already composed starter with a following starter (Foundation on Linux
    # misses these), in an order that would poison a cache keyed by canonically equal strings
    "\uac00\u11a8", "\uac01", "\u0cca\u0cd5", "\u0ccb", "한국어 가\u11a8요", "\u1100\u1161\u11a8\u1100\u1162",
    "\u0b47\u0b3e \u0bc6\u0bbe \u0d46\u0d3e", "\ufeffhi",
]


def chat(messages, generation_prompt=True, thinking=True):
    text = ""
    for role, content in messages:
        text += f"<|im_start|>{role}\n{content}<|im_end|>\n"
    if generation_prompt:
        text += "<|im_start|>assistant\n"
        if not thinking:
            text += "<think>\n\n</think>\n\n"
    return text


def corpus():
    rng = random.Random(20251129)
    items = list(FIXED)
    for token in ADDED:
        items += [token, f"before {token} after", f"{token}{token}", f"x{token}\n"]
    items += [
        chat([("user", "What is 2+2?")]),
        chat([("system", "You are helpful."), ("user", "Solve x^2=4. Please reason step by step, and put your final answer within \\boxed{}.")]),
        chat([("user", "Hi")], thinking=False),
        chat([("user", "Q1"), ("assistant", "A1"), ("user", "Q2")]),
        "<|im_start|>assistant\n<think>\nLet me think. 2+2 is 4.\n</think>\n\nThe answer is \\boxed{4}.<|im_end|>",
        "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>",
    ]
    # Prose and code from the Python standard library.
    import collections, json as json_module, textwrap, argparse
    for module in (collections, json_module, textwrap, argparse):
        source = inspect.getsource(module)
        for _ in range(15):
            start = rng.randrange(0, len(source) - 2000)
            items.append(source[start:start + rng.choice([40, 200, 800, 2000])])
    # Seeded random mixtures from pools of characters of every class.
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " \t\n\r\u00a0\u3000",
        ".,;:!?'\"()[]{}<>-_+=*/\\|@#$%^&~`", "你好世界机器学习中文", "こんにちはカタカナ", "한국어안녕",
        "مرحبا", "שלום", "Привет", "😀👍🏽👨‍👩‍👧❤️🇯🇵", "e\u0301a\u0308n\u0303", "\x00\x07\x1b\x7f",
        "'s't're've'm'll'd", "<|im_start|><think></think>",
    ]
    for length in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610]:
        for _ in range(12):
            items.append("".join(rng.choice(rng.choice(pools)) for _ in range(length)))
    # Word salads with realistic spacing.
    words = "the of and to in is that for it as with was on be by at this have from or an are not but".split()
    for _ in range(60):
        items.append(" ".join(rng.choice(words + ["2024", "x²", "naïve", "résumé", "über", "日本", "😀"])
                              for _ in range(rng.randint(3, 60))))
    # 10 kB inputs.
    source = inspect.getsource(collections)
    items.append(source[:10240])
    items.append("".join(rng.choice(pools[0] + " \n") for _ in range(10240)))
    items.append("".join(rng.choice("".join(pools)) for _ in range(10240)))
    items.append("数学" * 2560)
    items.append("1234567890" * 1024)
    items.append(" " * 10240)
    return items


def write_chat_templates(folder):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder)
    cases = []
    for messages in CONVERSATIONS:
        for generation_prompt in (True, False):
            for thinking in (True, False):
                text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                                     enable_thinking=thinking)
                cases.append({"messages": messages, "add_generation_prompt": generation_prompt,
                              "enable_thinking": thinking, "text": text})
    with open(CHAT_OUT, "w", encoding="utf-8") as out:
        json.dump(cases, out, ensure_ascii=False, indent=1)
    print(f"wrote {len(cases)} chat renderings to {CHAT_OUT}")


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".assets", "qwen3-tokenizer")
    tokenizer = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    items = corpus()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    seen = set()
    count = 0
    with open(OUT, "w", encoding="utf-8") as out:
        for text in items:
            if text in seen:
                continue
            seen.add(text)
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            nfc = unicodedata.normalize("NFC", text)
            out.write(json.dumps({"text": text, "ids": ids, "nfc": nfc}, ensure_ascii=False) + "\n")
            count += 1
    print(f"wrote {count} strings to {OUT} (tokenizers {tokenizers.__version__})")
    write_chat_templates(folder)


if __name__ == "__main__":
    main()
