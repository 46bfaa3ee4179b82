#!/usr/bin/env python3
"""Load test of an OpenAI-compatible server (`bitbudget serve`, llama.cpp's `llama-server`, …):
C concurrent clients, each streaming R completions of T tokens after a P-token prompt, for
C in --clients. Reports per C: aggregate decode tokens/s, time to first token and inter-token
latency (p50/p99, ms), errors. Standard library only.

    bench-serve.py URL [--clients 1,4,8,16] [--requests 2] [--prompt-tokens 64] [--tokens 64]
                       [--model NAME] [--token-ids]   # prompt as token ids (no tokenizer needed)
                       [--sampling JSON]              # request fields, default {"temperature": 1.0}
"""
import argparse
import http.client
import json
import statistics
import threading
import time
from urllib.parse import urlsplit


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[index]


def stream_one(url, body):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    start = time.perf_counter()
    connection.request("POST", parts.path.rstrip("/") + "/completions", body=json.dumps(body),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    times = []
    tokens = 0
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        for choice in chunk.get("choices", []):
            if choice.get("text"):
                times.append(time.perf_counter())
    connection.close()
    return start, times, tokens


def run(url, clients, requests, prompt, tokens, model, sampling):
    ttft, itl, produced, errors = [], [], [0], [0]
    lock = threading.Lock()

    def client(index):
        for r in range(requests):
            # A different start per request: a server's prompt cache (llama-server reuses the
            # longest cached prefix) must not skip the prefill that a new conversation needs.
            unique = [100 + index, 200 + r] + prompt[2:] if isinstance(prompt, list) else f"Request {index}.{r}: " + prompt
            body = {"prompt": unique, "max_tokens": tokens, "seed": index * 1000 + r,
                    "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True, **sampling}
            if model:
                body["model"] = model
            try:
                start, times, count = stream_one(url, body)
            except Exception as error:  # noqa: BLE001 - counted, reported
                with lock:
                    errors[0] += 1
                print("error:", error)
                continue
            with lock:
                if times:
                    ttft.append(times[0] - start)
                    itl.extend(b - a for a, b in zip(times, times[1:]))
                produced[0] += count

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    ms = lambda v: None if v is None else round(v * 1000, 1)
    return {"clients": clients, "tokens": produced[0], "seconds": round(elapsed, 2),
            "tokens_per_second": round(produced[0] / elapsed, 2), "errors": errors[0],
            "ttft_ms_p50": ms(percentile(ttft, 50)), "ttft_ms_p99": ms(percentile(ttft, 99)),
            "itl_ms_p50": ms(percentile(itl, 50)), "itl_ms_p99": ms(percentile(itl, 99))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--model")
    parser.add_argument("--token-ids", action="store_true", help="send the prompt as token ids")
    parser.add_argument("--sampling", default='{"temperature": 1.0}', help="JSON object of sampling fields")
    args = parser.parse_args()
    prompt = list(range(1000, 1000 + args.prompt_tokens)) if args.token_ids else " ".join(["word"] * args.prompt_tokens)
    for clients in [int(c) for c in args.clients.split(",")]:
        print(json.dumps(run(args.url, clients, args.requests, prompt, args.tokens, args.model, json.loads(args.sampling))), flush=True)


if __name__ == "__main__":
    main()
