#!/usr/bin/env python3
"""A fake Hugging Face Hub on loopback, for the download tests: the real URL layout and headers.

    fake_hub.py --repo ORG/NAME=FOLDER [--repo …] [--private ORG/NAME] [--token T]
                [--rename OLD/NAME=ORG/NAME] [--throttle N] [--drop-after BYTES] [--corrupt]
                [--cdn-unavailable N] [--ignore-range-start] [--log FILE]

Prints its port on the first line of stdout and serves until stdin closes. Each repository is a
local folder at one commit (the SHA-1 of its file list). Endpoints, as huggingface.co answers them:

- GET /api/models/ORG/NAME/revision/REV: {"id", "sha", "siblings": [{"rfilename"}]}; and
  /api/models/ORG/NAME/tree/REV (what huggingface_hub's snapshot_download lists): one page.
- HEAD|GET /ORG/NAME/resolve/REV/PATH: small files answer 200 with `ETag` (the git blob SHA-1)
  and `X-Repo-Commit`; LFS files (*.safetensors, *.gguf, *.bin) answer 302 to a CDN URL on
  another host name (localhost instead of 127.0.0.1) with `X-Linked-Etag` (their SHA-256) and
  `X-Linked-Size`, as the Hub does.
- GET /cdn/SHA256: the blob; honours `Range`; refuses requests that carry `Authorization`
  (presigned CDN URLs reject them).

Faults: --private needs `Authorization: Bearer TOKEN` (401 otherwise); unknown repositories,
revisions and files are 404 with `X-Error-Code`; --rename answers the old name with a relative
307 redirect; --throttle answers the first N API requests 429 with `Retry-After: 0`;
--drop-after closes the first CDN download of each blob after that many bytes; --corrupt flips
a bit of every blob the CDN sends; --cdn-unavailable answers the first N CDN requests 503;
--ignore-range-start answers every range request from byte 0 (with a truthful Content-Range). --log writes
each request as a JSON line.
"""
import argparse
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")


class Repo:
    def __init__(self, folder):
        self.files = {}
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                relative = os.path.relpath(path, folder)
                with open(path, "rb") as f:
                    data = f.read()
                self.files[relative] = {
                    "data": data,
                    "sha1": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "lfs": relative.endswith(LFS_SUFFIXES),
                }
        listing = "".join(f"{n} {f['sha1']}\n" for n, f in sorted(self.files.items()))
        self.commit = hashlib.sha1(listing.encode()).hexdigest()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", action="append", default=[])
    parser.add_argument("--private", action="append", default=[])
    parser.add_argument("--token", default="hf_test_token")
    parser.add_argument("--rename", action="append", default=[])
    parser.add_argument("--throttle", type=int, default=0)
    parser.add_argument("--drop-after", type=int, default=0)
    parser.add_argument("--corrupt", action="store_true")
    parser.add_argument("--cdn-unavailable", type=int, default=0)
    parser.add_argument("--ignore-range-start", action="store_true")
    parser.add_argument("--log")
    args = parser.parse_args()

    repos = {}
    for spec in args.repo:
        name, folder = spec.split("=", 1)
        repos[name] = Repo(folder)
    renames = dict(spec.split("=", 1) for spec in args.rename)
    blobs = {f["sha256"]: f for repo in repos.values() for f in repo.files.values()}
    state = {"throttle": args.throttle, "dropped": set(), "unavailable": args.cdn_unavailable}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def record(self, status):
            if not args.log:
                return
            entry = {"method": self.command, "path": self.path, "status": status,
                     "authorization": self.headers.get("Authorization"), "range": self.headers.get("Range"),
                     "host": self.headers.get("Host")}
            with lock, open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")

        def reply(self, status, headers=None, body=b"", send_body=True):
            self.record(status)
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body and self.command != "HEAD":
                self.wfile.write(body)

        def error(self, status, code, message):
            body = json.dumps({"error": message}).encode()
            self.reply(status, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}, body)

        def authorized(self, name):
            if name not in args.private:
                return True
            return self.headers.get("Authorization") == f"Bearer {args.token}"

        def do_HEAD(self):
            self.handle_request()

        def do_GET(self):
            self.handle_request()

        def handle_request(self):
            path = unquote(urlsplit(self.path).path)
            parts = path.strip("/").split("/")
            if parts[:1] == ["cdn"] and len(parts) == 2:
                return self.serve_blob(parts[1])
            api = parts[:1] == ["api"]
            if api:
                parts = parts[1:]
                if parts[:1] == ["models"]:
                    parts = parts[1:]
                else:
                    return self.error(404, "EntryNotFound", "unknown API path")
            if len(parts) < 2:
                return self.error(404, "RepoNotFound", "Repository not found")
            name = "/".join(parts[:2])
            if api:
                with lock:
                    throttled = state["throttle"] > 0
                    state["throttle"] -= 1
                if throttled:
                    return self.reply(429, {"Retry-After": "0"}, b"Too Many Requests")
            if name in renames:
                new = renames[name]
                location = ("/api/models/" if api else "/") + new + "/" + "/".join(parts[2:])
                return self.reply(307, {"Location": location})
            repo = repos.get(name)
            if repo is None or not self.authorized(name):
                # The Hub answers 401 for both, so as not to reveal private repositories.
                return self.error(401, "RepoNotFound", "Repository not found or private")
            if api:
                if len(parts) < 4 or parts[2] not in ("revision", "tree"):
                    return self.error(404, "EntryNotFound", "unknown API path")
                if parts[3] not in ("main", repo.commit):
                    return self.error(404, "RevisionNotFound", f"Invalid rev id: {parts[3]}")
                if parts[2] == "revision":
                    listing = {"id": name, "sha": repo.commit, "siblings": [{"rfilename": n} for n in sorted(repo.files)]}
                else:
                    listing = [{"type": "file", "oid": f["sha1"], "size": len(f["data"]), "path": n,
                                **({"lfs": {"oid": f["sha256"], "size": len(f["data"]), "pointerSize": 134}} if f["lfs"] else {})}
                               for n, f in sorted(repo.files.items())]
                return self.reply(200, {"Content-Type": "application/json"}, json.dumps(listing).encode())
            if len(parts) < 5 or parts[2] != "resolve":
                return self.error(404, "EntryNotFound", "unknown path")
            if parts[3] not in ("main", repo.commit):
                return self.error(404, "RevisionNotFound", f"Invalid rev id: {parts[3]}")
            entry = repo.files.get("/".join(parts[4:]))
            if entry is None:
                return self.error(404, "EntryNotFound", f"{'/'.join(parts[4:])} does not exist on \"{parts[3]}\"")
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{entry["sha1"]}"'}
            if entry["lfs"]:
                port = self.server.server_address[1]
                headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(len(entry["data"])),
                                "Location": f"http://localhost:{port}/cdn/{entry['sha256']}"})
                return self.reply(302, headers)
            headers["Content-Length"] = str(len(entry["data"]))
            self.reply(200, headers, entry["data"])

        def serve_blob(self, sha256):
            entry = blobs.get(sha256)
            if entry is None:
                return self.error(404, "EntryNotFound", "no such blob")
            if self.headers.get("Authorization"):
                return self.error(400, "BadRequest", "Only one auth mechanism allowed")
            with lock:
                unavailable = state["unavailable"] > 0
                state["unavailable"] -= 1
            if unavailable:
                return self.reply(503, {"Retry-After": "0"}, b"Service Unavailable")
            data = entry["data"]
            if args.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])
            start, status, headers = 0, 200, {}
            requested = self.headers.get("Range")
            if requested and requested.startswith("bytes="):
                first, _, last = requested[6:].partition("-")
                start = 0 if args.ignore_range_start else int(first)
                end = int(last) if last else len(data) - 1
                if start >= len(data):
                    return self.reply(416, {"Content-Range": f"bytes */{len(data)}"})
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data = data[start:end + 1]
            headers["Content-Length"] = str(len(data))
            if args.drop_after and sha256 not in state["dropped"] and len(data) > args.drop_after:
                state["dropped"].add(sha256)
                self.record(status)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data[:args.drop_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.reply(status, headers, data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
