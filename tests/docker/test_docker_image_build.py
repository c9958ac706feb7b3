"""docker/Dockerfile built for real on a locally made base (Debian + python3; a stand-in for the TRT-LLM image).

The orchestrator's light dependencies are downloaded on the host (`pip download`) into the
build context and installed offline (`--no-index --find-links`), with the build's network
switched off, as on a machine whose containers cannot reach the package index.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.docker.conftest import PYTHON_LABEL

pytestmark = pytest.mark.docker

IMAGE = "orchestrator-test/orchestrator:latest"
WHEEL_CACHE = Path.home() / ".cache" / "orchestrator-tests" / "wheels"
CONTEXT_PARTS = ("pyproject.toml", "README.md", "Makefile", ".dockerignore", "orchestrator", "recipes", "docker")


def _requirements() -> list[str]:
    """The build backend and the orchestrator's own dependencies (no extras: the base image brings those)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return ["wheel", *project["build-system"]["requires"], *project["project"]["dependencies"]]


def _wheels(python_version: str) -> Path:
    """Wheels for the base image's Python, downloaded once per dependency set (cached under ~/.cache)."""
    requirements = _requirements()
    key = hashlib.sha256("\n".join([python_version, *requirements]).encode()).hexdigest()[:16]
    target = WHEEL_CACHE / key
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--dest", str(target), "--only-binary=:all:",
                        "--python-version", python_version, *requirements], check=True)
        (target / ".complete").touch()
    return target


def _context(tmp_path: Path, wheels: Path) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.whl")
    for part in CONTEXT_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, context / part, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, context / part)
    for wheel in wheels.glob("*.whl"):
        shutil.copy2(wheel, context / "docker" / "wheels" / wheel.name)
    return context


def _run(client, image: str, *argv: str) -> str:
    output = client.containers.run(image, list(argv), remove=True, network_mode="none", stderr=True)
    return output.decode()


def test_dockerfile_builds_offline_on_a_local_base_and_runs_the_cli(docker_engine, test_images, tmp_path):
    import docker

    base = test_images["debian"]
    python_version = docker_engine.images.get(base).labels.get(PYTHON_LABEL) or _run(
        docker_engine, base, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").strip()
    started = time.monotonic()
    wheels = _wheels(python_version)
    context = _context(tmp_path, wheels)
    prepared = time.monotonic()
    try:
        image, logs = docker_engine.images.build(path=str(context), dockerfile="docker/Dockerfile", tag=IMAGE,
                                                 buildargs={"BASE_IMAGE": base}, network_mode="none", rm=True,
                                                 forcerm=True)
    except docker.errors.BuildError as exc:
        pytest.fail("docker build failed:\n" + "".join(str(line.get("stream", line)) for line in exc.build_log)[-3000:])
    built = time.monotonic()
    try:
        print(f"\nwheels + context {prepared - started:.1f} s; image build {built - prepared:.1f} s; {IMAGE} "
              f"{image.attrs['Size'] / 1e6:.0f} MB on base {base} {docker_engine.images.get(base).attrs['Size'] / 1e6:.0f} MB")
        # One container for every check: each container start copies the whole image on vfs.
        script = " && ".join([
            "orchestrator --help",
            "orchestrator recipe validate recipes/tiny-mixtral-nvfp4-cpu.yaml",
            "orchestrator images show",
            # `make engine` in the container installs nothing: its stamp is newer than pyproject.toml.
            "test .venv/.installed-quantize-bench-serving-dev -nt pyproject.toml && echo stamp-ok",
        ])
        output = _run(docker_engine, IMAGE, "sh", "-c", script)
        assert "Usage: orchestrator" in output
        assert "ok: recipes/tiny-mixtral-nvfp4-cpu.yaml" in output
        assert "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6" in output  # the lock travels with the image
        assert output.rstrip().endswith("stamp-ok")
        print(f"checks in the container {time.monotonic() - built:.1f} s")
    finally:
        docker_engine.images.remove(IMAGE, force=True)
