"""The image lock as data: shipped facts, round-trip rewriting, overrides, `images show|lock`, docker/ files in step."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
import yaml

from orchestrator.errors import UserError
from orchestrator.images import Resolution, _header, _read, image_for, load_lock, render_lock, write_lock
from orchestrator.platforms import PLATFORMS
from tests.conftest import REPO

LOCK = REPO / "docker" / "images.lock.yaml"


def test_every_gpu_platform_pins_a_versioned_image_with_a_source():
    lock = load_lock(LOCK)
    for name, platform in PLATFORMS.items():
        if not platform.has_gpu:
            continue
        for backend in ("tensorrt", "pytorch"):
            image = image_for(name, backend, lock=lock)
            assert image is not None and image.cli_spec in ("1.2", "main") and not image.moving
            assert platform.arch in image.architectures and platform.arch in image.digests
    assert image_for("dgx-spark", "tensorrt", lock=lock).ships_trtllm_build is True
    assert all(entry.source for entry in lock.images.values())


def test_shipped_lock_is_in_its_rewrite_form():
    """`images lock` rewrites the file through render_lock: the shipped text must already be that form."""
    text = LOCK.read_text()
    assert render_lock(_read(LOCK), header=_header(text)) == text


def test_write_lock_sets_digests_for_present_architectures_only(tmp_path):
    path = tmp_path / "lock.yaml"
    path.write_text(LOCK.read_text())
    lock = load_lock(path)
    digest = "sha256:" + "0" * 64
    changed = write_lock(lock, [Resolution("1.3.0rc13", lock.images["1.3.0rc13"].ref, digest, ["x86_64"], ["aarch64"]),
                                Resolution("1.2.0rc6", lock.images["1.2.0rc6"].ref, error="unreachable")],
                         now=datetime(2026, 8, 1, tzinfo=timezone.utc))
    assert changed
    data = yaml.safe_load(path.read_text())
    assert data["images"]["1.3.0rc13"]["digests"] == {"aarch64": None, "x86_64": digest}
    assert data["images"]["1.3.0rc13"]["resolved_at"] == "2026-08-01T00:00:00Z"
    assert data["images"]["1.2.0rc6"]["digests"] == {"aarch64": None, "x86_64": None}
    assert path.read_text().startswith(_header(LOCK.read_text()))
    assert load_lock(path).images["1.3.0rc13"].pinned_ref("x86_64").endswith("@" + digest)


def test_moving_tags_are_never_pinned_nor_accepted_as_overrides(tmp_path):
    with pytest.raises(UserError, match="moving tag"):
        image_for("dgx-spark", "pytorch", "spark-single-gpu-dev", lock=load_lock(LOCK))
    data = yaml.safe_load(LOCK.read_text())
    data["platforms"]["dgx-spark"]["pytorch"] = "spark-single-gpu-dev"
    path = tmp_path / "lock.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="unknown"):
        load_lock(path)


def test_versioned_override_outside_the_lock_gets_its_cli_spec():
    image = image_for("b200", "pytorch", "1.3.0rc9", lock=load_lock(LOCK))
    assert (image.cli_spec, image.in_lock, image.ships_trtllm_build) == ("main", False, False)


def test_images_show(cli):
    result = cli("images", "show")
    assert result.exit_code == 0, result.output
    assert re.search(r"dgx-spark\s+tensorrt\s+aarch64\s+TRT-LLM 1\.2\.0rc6", result.output)
    as_json = json.loads(cli("images", "show", "--json").output)
    spark = next(row for row in as_json["pins"] if row["platform"] == "dgx-spark" and row["backend"] == "tensorrt")
    assert spark["image"].startswith("nvcr.io/nvidia/tensorrt-llm/release") and spark["arch"] == "aarch64"


def test_images_lock_without_an_engine_is_exit_2(cli, tmp_path):
    result = cli("images", "lock", env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert result.exit_code == 2
    assert "no Docker engine answers" in result.output


def test_dockerfile_default_base_is_the_spark_pin():
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", (REPO / "docker" / "Dockerfile").read_text(), re.M).group(1)
    assert default == image_for("dgx-spark", "tensorrt", lock=load_lock(LOCK)).ref


def test_compose_serving_file():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    schema_path = REPO / "tests" / "data" / "deploy" / "compose-spec.json"
    if schema_path.exists():
        jsonschema = pytest.importorskip("jsonschema")
        jsonschema.validate(compose, json.loads(schema_path.read_text()))
    serve = compose["services"]["serve"]
    assert serve["ports"] == ["127.0.0.1:${PORT:-8000}:${PORT:-8000}"]
    assert "/health" in " ".join(serve["healthcheck"]["test"]) and serve["restart"] == "unless-stopped"
    devices = serve["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    read_only = {v["target"] for v in serve["volumes"] if v.get("read_only")}
    assert read_only == {"/workspace/engine", "/workspace/checkpoint-hf"}
    assert serve["ipc"] == "host" and serve["ulimits"] == {"memlock": -1, "stack": 67108864}
