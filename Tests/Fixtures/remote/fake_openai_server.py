#!/usr/bin/env python3
"""A scripted OpenAI-compatible completions server for BitBudget's remote-backend tests.

It plays a reasoning model: a question containing `answer=A think=K` is answered by the script
    "<think>\n" + K words + "\n</think>\n\nThe answer is \\boxed{A}."
one "token" per whitespace-separated piece, honouring `max_tokens` (finish_reason "length") and
`stop` strings (left out of the text, as vLLM does), and continuing a prompt that already holds part
of the script (a second request after a natural or a forced end of thinking: a prompt ending in
"\\boxed{" is continued with "A}."; after the n-th "Wait" the model thinks K words v<n>.<i> again
and closes its thinking). Faults, chosen
by words in the question: `flaky` → HTTP 500 for the first two requests of each prompt, `garbage`
→ a body that is not JSON, `slow` → sleeps 5 s before answering, `missing` → a JSON object
without `choices`, `stall` → a Content-Length longer than the body sent, the socket then held
open for 900 s, `trickle` → a valid body sent one byte every 3 s (~15 minutes), `hugetokens` → a valid answer
claiming `usage.completion_tokens` 2⁶³ − 1. Every request is appended as a JSON line to --log.

Usage: fake_openai_server.py --log FILE [--model NAME]; prints the port on stdout, serves until
stdin closes or it is killed.
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ASSISTANT = "<|im_start|>assistant\n"


def script_tokens(question):
    answer = re.search(r"answer=(\S+)", question)
    think = re.search(r"think=(\d+)", question)
    answer = answer.group(1) if answer else "0"
    count = int(think.group(1)) if think else 8
    tokens = ["<think>\n"] + [f"w{i} " for i in range(count)] + ["\n</think>\n\n", "The ", "answer ", "is ", "\\boxed{", answer, "}."]
    return tokens, answer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    attempts = {}
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/v1/models"):
            self.reply(200, json.dumps({"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]}))
        else:
            self.reply(404, json.dumps({"error": {"message": "not found"}}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/v1/completions"):
            self.reply(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
            return
        try:
            request = json.loads(raw)
        except ValueError:
            self.reply(400, json.dumps({"error": {"message": "body is not JSON"}}))
            return
        with self.lock:
            with open(self.server.log_path, "a") as log:
                log.write(json.dumps({"port": self.server.server_address[1], **request}) + "\n")
        prompt = request.get("prompt", "")
        if request.get("model") != self.server.model_name:
            self.reply(404, json.dumps({"error": {"message": f"model {request.get('model')!r} does not exist"}}))
            return
        if not isinstance(prompt, str) or ASSISTANT not in prompt:
            self.reply(400, json.dumps({"error": {"message": "prompt must be a string holding an assistant turn"}}))
            return
        question, _, prefix = prompt.rpartition(ASSISTANT)
        if "flaky" in question:
            with self.lock:
                seen = self.attempts.get(prompt, 0)
                self.attempts[prompt] = seen + 1
            if seen < 2:
                self.reply(500, json.dumps({"error": {"message": "transient failure"}}))
                return
        if "garbage" in question:
            self.reply(200, "<html>this is not JSON</html>", "text/html")
            return
        if "missing" in question:
            self.reply(200, json.dumps({"id": "x", "object": "text_completion"}))
            return
        if "slow" in question:
            time.sleep(5)
        if "stall" in question:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            self.wfile.flush()
            time.sleep(900)
            return
        tokens, answer = script_tokens(question)
        if "Wait" in prefix and not prefix.endswith("\\boxed{"):
            # After the n-th "Wait" the model thinks as many words again, then closes.
            waits = prefix.count("Wait")
            prefix = prefix.rpartition("Wait")[2]
            tokens = [f"v{waits}.{i} " for i in range(len(tokens) - 8)] + tokens[-7:]
        script = "".join(tokens)
        if prefix.endswith("\\boxed{"):
            rest = [answer, "}."]
        elif script.startswith(prefix):
            consumed, position = 0, 0
            while consumed < len(tokens) and position + len(tokens[consumed]) <= len(prefix):
                position += len(tokens[consumed])
                consumed += 1
            rest = tokens[consumed:]
        else:
            rest = ["The ", "answer ", "is ", "\\boxed{", answer, "}."]
        limit = int(request.get("max_tokens", 16))
        out = rest[:limit]
        finish = "length" if len(rest) > limit else "stop"
        text = "".join(out)
        for stop in request.get("stop") or []:
            # As vLLM: the text ends before the stop string; the tokens up to it are counted.
            for count in range(1, len(out) + 1):
                at = "".join(out[:count]).find(stop)
                if at >= 0:
                    out, text, finish = out[:count], "".join(out[:count])[:at], "stop"
                    break
        body = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "model": self.server.model_name,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(out), "total_tokens": len(prompt.split()) + len(out)},
        }
        if "hugetokens" in question:
            body["usage"]["completion_tokens"] = 9223372036854775807
        if "trickle" in question:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(3)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        self.reply(200, json.dumps(body))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--model", default="fake-qwen3")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.log_path = args.log
    server.model_name = args.model
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # serve until the parent closes our stdin (or kills us)
    server.shutdown()


if __name__ == "__main__":
    main()
