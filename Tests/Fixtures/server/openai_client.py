#!/usr/bin/env python3
"""The official `openai` client against `bitbudget serve`: prints one JSON object of what it got.

    openai_client.py BASE_URL MODEL [API_KEY]
"""
import concurrent.futures
import json
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
key = sys.argv[3] if len(sys.argv) > 3 else "unused"
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
out = {}

out["models"] = [m.id for m in client.models.list().data]

c = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0.8, seed=7)
out["completion"] = {"text": c.choices[0].text, "finish": c.choices[0].finish_reason,
                     "usage": [c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens]}

chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is 2+2?"}],
                                      max_tokens=24, temperature=0)
out["chat"] = {"content": chat.choices[0].message.content, "finish": chat.choices[0].finish_reason,
               "role": chat.choices[0].message.role}

pieces = []
finish = None
stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is 2+2?"}],
                                        max_tokens=24, temperature=0, stream=True,
                                        stream_options={"include_usage": True})
usage = None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage.completion_tokens
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
out["stream"] = {"content": "".join(pieces), "finish": finish, "chunks": len(pieces), "usage": usage}

n = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, temperature=1.0, seed=3, n=3)
out["n"] = [choice.text for choice in n.choices]

stop = client.completions.create(model=model, prompt="Count: 1, 2, 3,", max_tokens=16, temperature=0, stop=[" 6"])
out["stop"] = {"text": stop.choices[0].text, "finish": stop.choices[0].finish_reason}


lp = client.completions.create(model=model, prompt="The capital of France is", max_tokens=5, temperature=0, logprobs=3)
lps = lp.choices[0].logprobs
out["logprobs"] = {"text": lp.choices[0].text, "tokens": lps.tokens, "token_logprobs": lps.token_logprobs,
                   "top": lps.top_logprobs, "offsets": lps.text_offset}
streamed = {"tokens": [], "token_logprobs": []}
for chunk in client.completions.create(model=model, prompt="The capital of France is", max_tokens=5, temperature=0,
                                       logprobs=3, stream=True):
    for choice in chunk.choices:
        if choice.logprobs and choice.logprobs.tokens:
            streamed["tokens"] += choice.logprobs.tokens
            streamed["token_logprobs"] += choice.logprobs.token_logprobs
out["logprobs_stream"] = streamed
chat_lp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is 2+2?"}],
                                         max_tokens=8, temperature=0, logprobs=True, top_logprobs=2)
out["chat_logprobs"] = {
    "content": chat_lp.choices[0].message.content,
    "items": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes, "top": [[a.token, a.logprob] for a in t.top_logprobs]}
              for t in chat_lp.choices[0].logprobs.content]}


def one(seed):
    r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=10, temperature=1.0, seed=seed)
    return r.choices[0].text


seeds = list(range(6))
alone = [one(s) for s in seeds]
with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
    together = list(pool.map(one, seeds))
out["concurrent_equal"] = alone == together

errors = {}
for name, kwargs in {
    "bad_temperature": dict(prompt="x", max_tokens=2, temperature=-1),
    "bad_n": dict(prompt="x", max_tokens=2, n=0),
    "too_long": dict(prompt="x", max_tokens=10 ** 9),
    "wrong_model": dict(prompt="x", max_tokens=2, model="other"),
    "too_many_logprobs": dict(prompt="x", max_tokens=2, logprobs=21),
}.items():
    try:
        client.completions.create(**{"model": model, **kwargs})
        errors[name] = "accepted"
    except openai.APIStatusError as e:
        errors[name] = e.status_code
out["errors"] = errors
print(json.dumps(out))
