"""`orchestrator images lock` through a live Docker engine against a stand-in registry on 127.0.0.1.

The stand-in speaks just enough of the registry v2 API for the engine's distribution
inspect (`docker SDK images.get_registry_data`): /v2/, manifest HEAD/GET by tag and by
digest, with manifest lists naming linux/amd64 and/or linux/arm64. 127.0.0.0/8 registries
are plain-HTTP by default in Docker, so no TLS is needed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from orchestrator.images import _read, load_lock

pytestmark = pytest.mark.docker

LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
REPOSITORY = "nvidia/tensorrt-llm/release"


def manifest_list(*platforms: str) -> bytes:
    manifests = []
    for platform in platforms:
        os_name, arch = platform.split("/")
        manifests.append({"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 1234,
                          "digest": "sha256:" + hashlib.sha256(platform.encode()).hexdigest(),
                          "platform": {"architecture": arch, "os": os_name}})
    return json.dumps({"schemaVersion": 2, "mediaType": LIST_TYPE, "manifests": manifests}).encode()


class StandInRegistry(BaseHTTPRequestHandler):
    """tag -> manifest list body; anything else is MANIFEST_UNKNOWN."""

    tags: dict[str, bytes] = {}

    def log_message(self, *args):  # quiet
        pass

    def _manifest(self) -> bytes | None:
        prefix = f"/v2/{REPOSITORY}/manifests/"
        if not self.path.startswith(prefix):
            return None
        reference = self.path[len(prefix):]
        for body in self.tags.values():
            if reference == "sha256:" + hashlib.sha256(body).hexdigest():
                return body
        return self.tags.get(reference)

    def _answer(self, with_body: bool) -> None:
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.send_header("Content-Length", "2")
            self.end_headers()
            if with_body:
                self.wfile.write(b"{}")
            return
        body = self._manifest()
        if body is None:
            error = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            if with_body:
                self.wfile.write(error)
            return
        self.send_response(200)
        self.send_header("Content-Type", LIST_TYPE)
        self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server API
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)


@pytest.fixture
def registry():
    StandInRegistry.tags = {"1.2.0rc6": manifest_list("linux/amd64", "linux/arm64"),
                            "1.3.0rc13": manifest_list("linux/amd64")}
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _lock_file(tmp_path, registry: str):
    path = tmp_path / "images.lock.yaml"
    images = {tag: {"trtllm": tag, "cli_spec": spec, "ships_trtllm_build": spec == "1.2",
                    "architectures": ["aarch64", "x86_64"], "digests": {"aarch64": None, "x86_64": None},
                    "source": "stand-in"}
              for tag, spec in (("1.2.0rc6", "1.2"), ("1.3.0rc13", "main"), ("1.9.9", "main"))}
    data = {"schema_version": 1, "registry": f"{registry}/{REPOSITORY}", "images": images,
            "platforms": {"dgx-spark": {"tensorrt": "1.2.0rc6", "pytorch": "1.3.0rc13"}}}
    path.write_text("# stand-in lock: this header is kept\n" + yaml.safe_dump(data, sort_keys=False))
    return path


def test_images_lock_resolves_digests_and_rewrites_the_file(docker_engine, registry, tmp_path, cli):
    path = _lock_file(tmp_path, registry)
    env = {"ORCHESTRATOR_IMAGES_LOCK": str(path)}

    result = cli("images", "lock", env=env)

    assert result.exit_code == 2, result.output  # 1.9.9 does not exist in the registry
    assert "1 of 3 image(s) not resolved" in result.output and "1.9.9" in result.output
    text = path.read_text()
    assert text.startswith("# stand-in lock: this header is kept\n")
    data = _read(path)
    both = "sha256:" + hashlib.sha256(StandInRegistry.tags["1.2.0rc6"]).hexdigest()
    amd64_only = "sha256:" + hashlib.sha256(StandInRegistry.tags["1.3.0rc13"]).hexdigest()
    assert data["images"]["1.2.0rc6"]["digests"] == {"aarch64": both, "x86_64": both}
    assert data["images"]["1.3.0rc13"]["digests"] == {"aarch64": None, "x86_64": amd64_only}  # no arm64 image
    assert data["images"]["1.9.9"]["digests"] == {"aarch64": None, "x86_64": None}
    assert "resolved_at" in data["images"]["1.2.0rc6"] and "resolved_at" not in data["images"]["1.9.9"]
    lock = load_lock(path)
    assert lock.images["1.2.0rc6"].pinned_ref("aarch64") == f"{registry}/{REPOSITORY}@{both}"

    again = cli("images", "lock", "1.2.0rc6", "1.3.0rc13", env=env)
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.output and path.read_text() == text
