"""A live Docker engine for tests/docker, and base images made without any registry.

The session fixture `docker_engine` uses the engine that answers; when none does and we are
root, it installs Debian's docker.io (+ debootstrap) if `dockerd` is missing and starts
`dockerd --storage-driver=vfs` in the background (stopped again at the end of the session).
Tests skip, with the reason, only when no engine can be had at all.

Images (cached by tag, built once per machine):
  orchestrator-test/debian-python:<suite>  debootstrap minbase + python3, python3-venv (Dockerfile tests)
  orchestrator-test/busybox:<suite>        static busybox alone (runner tests: a container starts in ~0.3 s)
Both come from one debootstrap run with the Debian mirror of /etc/apt/sources.list.d/, then
`docker import` of the directory: no registry is contacted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

DEBIAN_IMAGE = "orchestrator-test/debian-python"
BUSYBOX_IMAGE = "orchestrator-test/busybox"
DEFAULT_MIRROR = ("http://deb.debian.org/debian", "bookworm")
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SOCKET = Path("/var/run/docker.sock")
BUILD_LOCK = Path(tempfile.gettempdir()) / "orchestrator-test-images.lock"


def _ping():
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return None


def _apt_install(*packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env, capture_output=True)


def _start_dockerd(log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")
    proc = subprocess.Popen(["dockerd", "--storage-driver=vfs"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A docker SDK client connected to a live engine (started here when needed)."""
    client = _ping()
    if client is not None:
        yield client
        return
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers and we are not root, so dockerd cannot be installed/started")
    if shutil.which("dockerd") is None:
        if shutil.which("apt-get") is None:
            pytest.skip("no Docker engine, no dockerd and no apt-get to install Debian's docker.io")
        try:
            _apt_install("docker.io", "debootstrap")
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"apt-get install docker.io failed: {exc.stderr.decode(errors='replace')[-300:]}")
    log_path = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    proc = _start_dockerd(log_path)
    deadline = time.monotonic() + 60
    while client is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        client = _ping() if SOCKET.exists() else None
    if client is None:
        proc.terminate()
        pytest.skip(f"dockerd did not start: {log_path.read_text(errors='replace')[-500:]}")
    yield client
    client.close()
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def debian_mirror() -> tuple[str, str]:
    """(mirror URL, suite) of this machine's Debian sources, so debootstrap uses the mirror apt uses."""
    try:
        text = SOURCES.read_text()
    except OSError:
        return DEFAULT_MIRROR
    for stanza in text.split("\n\n"):
        uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
        suites = re.search(r"^Suites:\s*(\S+)", stanza, re.M)
        if uris and suites and not suites.group(1).endswith("-security"):
            return uris.group(1), suites.group(1)
    return DEFAULT_MIRROR


def _has_image(client, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


@contextlib.contextmanager
def _build_lock():
    """One image build per machine at a time (parallel test sessions share the engine)."""
    with open(BUILD_LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


PYTHON_LABEL = "org.trtllm-orchestrator.test.python"


def _import_dir(client, rootfs: Path, ref: str, workdir: Path) -> None:
    """`docker import` of a directory; the image is labelled with its python3 version (X.Y) when it has one."""
    tarball = workdir / (ref.replace("/", "_").replace(":", "_") + ".tar")
    subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], check=True)
    repository, tag = ref.rsplit(":", 1)
    python = rootfs / "usr" / "bin" / "python3"
    changes = [f"LABEL {PYTHON_LABEL}={os.readlink(python).removeprefix('python')}"] if python.is_symlink() else None
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
    tarball.unlink()


def _prune(rootfs: Path) -> None:
    """Drop the apt caches and docs (~150 of 275 MB): every container and build step copies the rootfs on vfs."""
    for relative in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        shutil.rmtree(rootfs / relative, ignore_errors=True)


def _busybox_rootfs(busybox: Path, root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    for name in ("tmp", "etc", "proc", "sys", "dev"):
        (root / name).mkdir()
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")


@pytest.fixture(scope="session")
def test_images(docker_engine):
    """{"debian": ref, "busybox": ref}: built here without a registry unless already cached by tag."""
    mirror, suite = debian_mirror()
    refs = {"debian": f"{DEBIAN_IMAGE}:{suite}", "busybox": f"{BUSYBOX_IMAGE}:{suite}"}
    with _build_lock():
        if all(_has_image(docker_engine, ref) for ref in refs.values()):
            return refs
        if shutil.which("debootstrap") is None:
            if os.geteuid() != 0 or shutil.which("apt-get") is None:
                pytest.skip("debootstrap is missing and cannot be installed here")
            _apt_install("debootstrap")
        work = Path(tempfile.mkdtemp(prefix="orchestrator-rootfs-"))
        try:
            rootfs = work / "debian"
            started = time.monotonic()
            done = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,busybox-static",
                                   suite, str(rootfs), mirror], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"debootstrap {suite} {mirror} failed: {done.stdout[-500:]}{done.stderr[-500:]}")
            print(f"\ndebootstrap {suite} took {time.monotonic() - started:.1f} s")
            _busybox_rootfs(rootfs / "bin" / "busybox", work / "busybox")
            _prune(rootfs)
            _import_dir(docker_engine, work / "busybox", refs["busybox"], work)
            _import_dir(docker_engine, rootfs, refs["debian"], work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return refs
