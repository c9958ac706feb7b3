"""A stand-in OpenAI-compatible streaming server for the bench's unit tests (not a real engine).

A real HTTP server (http.server, one thread per request) that streams SSE like trtllm-serve
(one token per chunk, `data: [DONE]`) or, with `strict_keys`/`no_completions`, refuses what
transformers serve refuses. Knobs make it fail, hang, stop early at EOS or exit mid-run, so the
bench's error counting, timeouts and partial results are tested against real sockets.

Run in a thread with `StandinServer(...).start()`, or as a process (to be killed) with
`python -m tests.unit.bench.standin_openai --port N [--exit-after K]`.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    ttft_s: float = 0.002
    token_delay_s: float = 0.001
    apis: tuple[str, ...] = ("completions", "chat")
    strict_keys: bool = False  # 422 on ignore_eos/min_tokens, like transformers serve
    eos_after: int | None = None  # stop after this many tokens unless told to ignore EOS
    fail_every: int = 0  # every k-th request answers 500
    hang_every: int = 0  # every k-th request stalls mid-stream for `hang_s`
    hang_s: float = 30.0
    stream_error_every: int = 0  # every k-th request sends an error event mid-stream
    send_usage: bool = False
    exit_after: int = 0  # the process exits (os._exit) while streaming request k
    models: tuple[str, ...] = ("standin-model",)
    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    behaviour: Behaviour

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.behaviour.models]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        b = self.behaviour
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        api = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}.get(self.path)
        if api is None or api not in b.apis:
            self._json(404, {"detail": "Not Found"})
            return
        unknown = {"ignore_eos", "min_tokens"} & set(body) if b.strict_keys else set()
        if unknown:
            self._json(422, {"detail": f"Unexpected keys in the request: {unknown}"})
            return
        with b.lock:
            b.requests.append({"api": api, **body})
            number = len(b.requests)
        if b.fail_every and number % b.fail_every == 0:
            self._json(500, {"error": {"message": "stand-in failure"}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        wanted = int(body.get("max_tokens") or 16)
        if b.eos_after is not None and not body.get("ignore_eos") and "generation_config" not in body:
            wanted = min(wanted, b.eos_after)
        time.sleep(b.ttft_s)
        for index in range(wanted):
            if b.exit_after and number >= b.exit_after and index == wanted // 2:
                os._exit(17)
            if b.hang_every and number % b.hang_every == 0 and index == 1:
                time.sleep(b.hang_s)
            if b.stream_error_every and number % b.stream_error_every == 0 and index == 1:
                self._event({"error": {"message": "stand-in stream error"}})
                break
            text = f" w{index}"
            choice = {"index": 0, "text": text} if api == "completions" else {"index": 0, "delta": {"content": text}}
            self._event({"choices": [choice]})
            time.sleep(b.token_delay_s)
        if b.send_usage:
            self._event({"choices": [], "usage": {"completion_tokens": wanted}})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _event(self, payload: dict) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that hung up is expected here
        pass


class StandinServer:
    """The stand-in on 127.0.0.1 in a background thread; `url` is its base URL."""

    def __init__(self, port: int = 0, **behaviour):
        self.behaviour = Behaviour(**behaviour)
        handler = type("Handler", (_Handler,), {"behaviour": self.behaviour})
        self.httpd = _QuietServer(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> StandinServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def requests(self) -> list[dict]:
        return self.behaviour.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--exit-after", type=int, default=0)
    parser.add_argument("--token-delay-s", type=float, default=0.01)
    args = parser.parse_args()
    server = StandinServer(args.port, exit_after=args.exit_after, token_delay_s=args.token_delay_s)
    print(f"listening on {server.url}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
