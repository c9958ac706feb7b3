#!/usr/bin/env python3
"""A stand-in for trtllm-serve (TensorRT-LLM cannot be installed here): a real HTTP server process.

It takes trtllm-serve's argv shape (MODEL positional, --host, --port, --served_model_name;
everything else ignored) and answers GET /health and GET /v1/models the way trtllm-serve's
OpenAI server does: the model id is --served_model_name, else the model directory's name.
Behaviour for lifecycle tests comes from the environment:
  STANDIN_HEALTH_DELAY_S  seconds before /health answers 200 (503 until then)
  STANDIN_LISTEN_DELAY_S  seconds before it starts listening at all (model loading)
  STANDIN_CRASH_EXIT      exit with this code after printing a few log lines, never listening
On SIGINT/SIGTERM it logs "stand-in: clean shutdown" and exits 0, as uvicorn does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(prog="trtllm-serve")
    parser.add_argument("model")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served_model_name", default=None)
    args, _unknown = parser.parse_known_args()
    print(f"stand-in trtllm-serve: loading {args.model}", flush=True)

    crash = os.environ.get("STANDIN_CRASH_EXIT")
    if crash:
        for i in range(40):
            print(f"stand-in: loading layer {i}", flush=True)
        print("stand-in: RuntimeError: CUDA out of memory (simulated)", flush=True)
        return int(crash)

    def shutdown(signum, _frame):
        print(f"stand-in: clean shutdown (signal {signum})", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    time.sleep(float(os.environ.get("STANDIN_LISTEN_DELAY_S", "0")))
    model_dir = Path(args.model)
    model_id = args.served_model_name or (model_dir.name if model_dir.is_dir() else args.model)
    healthy_at = time.monotonic() + float(os.environ.get("STANDIN_HEALTH_DELAY_S", "0"))

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path == "/health":
                ready = time.monotonic() >= healthy_at
                self._reply(200 if ready else 503, {})
            elif self.path == "/v1/models":
                self._reply(200, {"object": "list", "data": [{"id": model_id, "object": "model"}]})
            else:
                self._reply(404, {"detail": "Not Found"})

        def log_message(self, fmt, *fmt_args):
            print(f"stand-in: {fmt % fmt_args}", flush=True)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"stand-in: Uvicorn running on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
