"""DockerRunner without an engine: the container it would create, path mapping, secret masking, plan output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import UserError
from orchestrator.recipe.loader import load_recipe
from orchestrator.runtime.base import Job, Redactor
from orchestrator.runtime.docker import CONTAINER_HF_HOME, CONTAINER_MODEL, DockerRunner
from tests.conftest import RECIPES, REPO

SPARK = RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"


@pytest.fixture
def no_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf-home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)


def _spark(tmp_path, *overrides):
    return load_recipe(SPARK, [f"workdir={tmp_path / 'work'}", *overrides])


def test_spark_build_container_spec(tmp_path, no_hf_cache):
    runner = DockerRunner(_spark(tmp_path))
    work = (tmp_path / "work").absolute()
    job = Job(stage="build", argv=["trtllm-build", "--output_dir", str(runner.path_in_runtime(work / "engine"))],
              log_path=work / "logs" / "build.log")
    spec = runner.container_spec(job)
    assert spec["image"] == "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6" and not spec["pinned_by_digest"]
    assert spec["platform"] == "linux/arm64"
    assert spec["command"] == ["trtllm-build", "--output_dir", "/workspace/engine"]
    assert spec["mounts"] == [{"host": str(work), "container": "/workspace", "mode": "rw"}]
    assert spec["device_requests"] == [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]],
                                        "Options": {}}]
    assert spec["ipc_mode"] == "host" and spec["ulimits"] == {"memlock": -1, "stack": 67108864}
    assert spec["ports"] == {} and spec["working_dir"] == "/workspace"
    assert spec["name"] == "orchestrator-mixtral-8x7b-instruct-nvfp4-build"


def test_serve_spec_publishes_on_the_recipe_host_and_listens_inside(tmp_path, no_hf_cache):
    runner = DockerRunner(_spark(tmp_path, "serve.port=9001", "serve.gpus=[0]"))
    job = Job(stage="serve", argv=["trtllm-serve", "/workspace/engine", "--host", "127.0.0.1", "--port", "9001"],
              log_path=tmp_path / "serve.log", ports={9001: ("127.0.0.1", 9001)})
    spec = runner.container_spec(job)
    assert spec["ports"] == {"9001/tcp": "127.0.0.1:9001"}
    assert spec["command"][spec["command"].index("--host") + 1] == "0.0.0.0"
    assert spec["device_requests"][0]["DeviceIDs"] == ["0"] and spec["device_requests"][0]["Count"] == 0


def test_env_names_shown_values_never(tmp_path, monkeypatch):
    hf = tmp_path / "hf"
    hf.mkdir()
    monkeypatch.setenv("HF_HOME", str(hf))
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    runner = DockerRunner(_spark(tmp_path))
    job = Job(stage="build", argv=["trtllm-build"], log_path=tmp_path / "b.log", env={"CUDA_VISIBLE_DEVICES": "0"})
    spec = runner.container_spec(job)
    assert spec["env"] == ["CUDA_VISIBLE_DEVICES", "HF_HOME", "HF_TOKEN"] and spec["secret_env"] == ["HF_TOKEN"]
    assert "hf_abcdefghijklmnop" not in json.dumps(spec)
    assert {"host": str(hf.resolve()), "container": str(CONTAINER_HF_HOME), "mode": "ro"} in spec["mounts"]
    assert runner.create_kwargs(job)["environment"]["HF_TOKEN"] == "hf_abcdefghijklmnop"  # passed, by name


def test_pinned_digest_is_used_when_locked(tmp_path, no_hf_cache, monkeypatch):
    lock = yaml.safe_load((REPO / "docker" / "images.lock.yaml").read_text())
    digest = "sha256:" + "ab" * 32
    lock["images"]["1.2.0rc6"]["digests"]["aarch64"] = digest
    path = tmp_path / "lock.yaml"
    path.write_text(yaml.safe_dump(lock))
    monkeypatch.setenv("ORCHESTRATOR_IMAGES_LOCK", str(path))
    spec = DockerRunner(_spark(tmp_path)).container_spec(Job(stage="build", argv=["x"], log_path=tmp_path / "l"))
    assert spec["image"] == f"nvcr.io/nvidia/tensorrt-llm/release@{digest}" and spec["pinned_by_digest"]


def test_path_in_runtime_maps_mounts_and_refuses_the_rest(tmp_path, no_hf_cache):
    model = tmp_path / "models" / "mixtral"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    runner = DockerRunner(load_recipe(SPARK, [f"workdir={tmp_path / 'work'}", f"model.source={model}"]))
    work = (tmp_path / "work").absolute()
    assert runner.path_in_runtime(work / "checkpoint-hf") == Path("/workspace/checkpoint-hf")
    assert runner.path_in_runtime(model / "config.json") == CONTAINER_MODEL / "config.json"
    assert {"host": str(model.resolve()), "container": str(CONTAINER_MODEL), "mode": "ro"} in \
        runner.container_spec(Job(stage="build", argv=["x"], log_path=work / "l"))["mounts"]
    (work).mkdir(parents=True)
    (work / "model").symlink_to(model)  # a fetched/linked source model seen through the workdir
    assert runner.path_in_runtime(work / "model" / "config.json") == CONTAINER_MODEL / "config.json"
    with pytest.raises(UserError, match="not visible inside the container"):
        runner.path_in_runtime(tmp_path / "elsewhere" / "file")


def test_cpu_platform_has_no_image_but_an_explicit_one_runs_plain(tmp_path, no_hf_cache):
    tiny = load_recipe(RECIPES / "tiny-mixtral-nvfp4-cpu.yaml", [f"workdir={tmp_path}"])
    with pytest.raises(UserError, match="no TRT-LLM image"):
        DockerRunner(tiny)
    spec = DockerRunner(tiny, image="local/test:1").container_spec(Job(stage="x", argv=["x"], log_path=tmp_path / "l"))
    assert spec["device_requests"] == [] and spec["ulimits"] == {}


def test_redactor_masks_secret_values_only():
    redact = Redactor({"HF_TOKEN": "hf_secret_123", "MY_API_KEY": "k-98765", "GREETING": "hello"}, ("HF_TOKEN",))
    assert redact("token hf_secret_123 key k-98765 says hello") == "token *** key *** says hello"


def test_plan_shows_the_pinned_aarch64_image_and_container_spec(cli, tmp_path, no_hf_cache):
    result = cli("plan", SPARK, f"workdir={tmp_path / 'work'}", "runtime=docker", "--json")
    assert result.exit_code == 0, result.output
    stages = {s["name"]: s for s in json.loads(result.output)["stages"]}
    build, serve = stages["build"]["container"], stages["serve"]["container"]
    assert build["image"] == serve["image"] == "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6"
    assert build["platform"] == "linux/arm64" and build["device_requests"][0]["Count"] == -1
    assert stages["build"]["argv"][stages["build"]["argv"].index("--checkpoint_dir") + 1] == "/workspace/checkpoint-trtllm"
    assert serve["ports"] == {"8000/tcp": "127.0.0.1:8000"}
    assert {"host": str((tmp_path / "work").absolute()), "container": "/workspace", "mode": "rw"} in build["mounts"]
    local = json.loads(cli("plan", SPARK, f"workdir={tmp_path / 'work'}", "runtime=local", "--json").output)
    assert all(s["container"] is None for s in local["stages"])
