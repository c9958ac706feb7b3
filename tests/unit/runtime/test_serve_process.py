"""Server lifecycle pieces that need no child process: port check, URLs, health wait decisions, state."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.errors import StageFailed, UserError
from orchestrator.runtime import serve_process as sp


class FakeHandle:
    def __init__(self, exit_after_polls: int | None = None):
        self.polls = 0
        self.exit_after = exit_after_polls
        self.stopped = False

    def poll(self):
        self.polls += 1
        return 4 if self.exit_after is not None and self.polls > self.exit_after else None

    def stop(self, timeout=30.0):
        self.stopped = True
        return 0

    def log_tail(self, lines=30):
        return ["last line"]


@pytest.fixture
def health_server():
    """An in-process HTTP server whose /health answers 503 until `ready` is set."""
    ready = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/health":
                self.send_response(200 if ready.is_set() else 503)
                self.end_headers()
            elif self.path == "/v1/models":
                body = json.dumps({"data": [{"id": "m1"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", ready
    server.shutdown()
    server.server_close()


def test_port_in_use_is_a_user_error_naming_port_and_fix():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is already in use.*serve.port") as info:
            sp.ensure_port_free("127.0.0.1", port)
    assert info.value.exit_code == 2
    sp.ensure_port_free("127.0.0.1", port)  # free again once closed


def test_unbindable_host_is_a_user_error():
    with pytest.raises(UserError, match="cannot listen on 203.0.113.7"):
        sp.ensure_port_free("203.0.113.7", 8000)


def test_urls_reach_wildcard_binds_on_loopback():
    assert sp.base_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert sp.base_url("::1", 9) == "http://[::1]:9"


def test_health_wait_returns_once_healthy(health_server):
    url, ready = health_server
    threading.Timer(0.3, ready.set).start()
    waited = sp.wait_for_health(url, FakeHandle(), timeout_s=10, poll_s=0.05)
    assert 0.25 <= waited < 5
    assert sp.model_ids(url) == ["m1"]


def test_health_wait_times_out_and_stops_the_server(health_server):
    url, _ready = health_server
    handle = FakeHandle()
    with pytest.raises(StageFailed, match="within 0.3 s") as info:
        sp.wait_for_health(url, handle, timeout_s=0.3, poll_s=0.05)
    assert handle.stopped and info.value.details == ["last line"] and info.value.exit_code == 1


def test_health_wait_reports_an_early_exit():
    handle = FakeHandle(exit_after_polls=2)
    with pytest.raises(StageFailed, match="exited with code 4 during start-up"):
        sp.wait_for_health("http://127.0.0.1:9", handle, timeout_s=30, poll_s=0.01)


def test_server_info_curl_example_and_state_round_trip(tmp_path):
    info = sp.ServerInfo(recipe="r", base_url="http://127.0.0.1:8000", model="engine", log_path="l", argv=["x"],
                         runtime="local", started_at="t", startup_s=1.0, handle_state={"runtime": "local", "pid": 7})
    assert info.curl_example().startswith("curl http://127.0.0.1:8000/v1/chat/completions ")
    assert '"model": "engine"' in info.curl_example()
    sp.write_state(tmp_path / "serve.json", info)
    state = sp.read_state(tmp_path / "serve.json")
    assert state["url"] == "http://127.0.0.1:8000/v1" and state["pid"] == 7 and state["model"] == "engine"
    assert sp.read_state(tmp_path / "absent.json") is None


def test_stale_state_is_forgotten(tmp_path):
    path = tmp_path / "serve.json"
    path.write_text(json.dumps({"runtime": "local", "pid": 1}))

    class GoneRunner:
        name = "local"

        def attach(self, state):
            return FakeHandle(exit_after_polls=0)

    assert sp.running_server(path, lambda name: GoneRunner()) is None
    assert not path.exists()
