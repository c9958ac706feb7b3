"""docker compose files: compose-spec valid, loopback by default, GPUs = tp x pp, read-only model, no secrets."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.unit.deploy.conftest import validate_compose

B200 = "mixtral-8x7b-instruct-nvfp4-b200.yaml"
H100 = "mixtral-8x7b-instruct-fp8-h100.yaml"
SPARK = "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"
TWO_SPARKS = "mixtral-8x7b-instruct-nvfp4-2x-dgx-spark.yaml"
SPARK_HOSTS = ("192.168.100.10", "192.168.100.11")


@pytest.mark.parametrize("recipe_file", [B200, H100, SPARK])
def test_single_node_compose_is_valid_and_binds_loopback(rendered, recipe_file):
    from orchestrator.recipe.loader import load_recipe
    from tests.conftest import RECIPES

    recipe = load_recipe(RECIPES / recipe_file)
    _, docs = rendered(recipe_file, "compose")
    compose = docs["compose.yaml"]
    validate_compose(compose)
    (service,) = compose["services"].values()
    assert service["ports"] == [{"target": 8000, "published": "8000", "host_ip": "127.0.0.1", "protocol": "tcp"}]
    (gpus,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["count"] == recipe.checkpoint.tp * recipe.checkpoint.pp and gpus["capabilities"] == ["gpu"]
    (model,) = [v for v in service["volumes"] if v["target"] == "/workdir"]
    assert model["read_only"] is True and model["source"].startswith("/")
    assert service["command"][0] == "trtllm-serve" and service["command"][1].startswith("/workdir/")
    assert "no-new-privileges:true" in service["security_opt"] and service["cap_drop"] == ["ALL"]
    probe = " ".join(service["healthcheck"]["test"])
    assert "/health" in probe and service["healthcheck"]["start_period"] == f"{int(recipe.serve.health_timeout_s)}s"


def test_serve_host_decides_the_published_address(rendered):
    _, docs = rendered(B200, "compose", overrides=["serve.host=0.0.0.0", "serve.port=9001"])
    (service,) = docs["compose.yaml"]["services"].values()
    assert service["ports"][0]["host_ip"] == "0.0.0.0" and service["ports"][0]["published"] == "9001"
    assert service["command"][service["command"].index("--port") + 1] == "9001"


def test_listed_gpus_become_device_ids(rendered):
    _, docs = rendered(B200, "compose", overrides=["serve.gpus=[2, 3]"])
    (service,) = docs["compose.yaml"]["services"].values()
    (gpus,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["device_ids"] == ["2", "3"] and "count" not in gpus
    validate_compose(docs["compose.yaml"])


def test_llm_api_yaml_is_a_config_file_beside_compose(rendered):
    result, docs = rendered(B200, "compose")
    compose = docs["compose.yaml"]
    (service,) = compose["services"].values()
    (config,) = service["configs"]
    assert compose["configs"][config["source"]] == {"file": "./llm-api-options.yaml"}
    command = service["command"]
    assert command[command.index("--extra_llm_api_options") + 1] == config["target"]
    assert "llm-api-options.yaml" in result.files


@pytest.mark.parametrize("recipe_file", [B200, TWO_SPARKS])
def test_no_secret_is_written(rendered, recipe_file, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_stand_in_secret_value_123")
    options = {"hosts": SPARK_HOSTS} if recipe_file == TWO_SPARKS else {}
    result, docs = rendered(recipe_file, "compose", **options)
    assert not any("hf_stand_in_secret_value_123" in text for text in result.files.values())
    for service in docs["compose.yaml"]["services"].values():
        assert "HF_TOKEN" in service["environment"]  # passed through from the shell, never a value
        assert not any(str(e).startswith("HF_TOKEN=") for e in service["environment"])


def test_two_sparks_render_a_leader_and_a_worker_on_the_host_network(rendered):
    result, docs = rendered(TWO_SPARKS, "compose", hosts=SPARK_HOSTS)
    compose = docs["compose.yaml"]
    validate_compose(compose)
    leader, worker = compose["services"]["trtllm-leader"], compose["services"]["trtllm-worker"]
    assert leader["profiles"] == ["leader"] and worker["profiles"] == ["worker"]
    for service in (leader, worker):
        assert service["network_mode"] == "host"
        assert service["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 1  # tp 2 over 2 nodes
        assert "NCCL_SOCKET_IFNAME=enp1s0f0np0,enp1s0f1np1" in service["environment"]
        assert service["devices"] == ["/dev/infiniband:/dev/infiniband"]
        assert all(v["read_only"] for v in service["volumes"])
    assert result.files["openmpi-hostfile"] == "192.168.100.10 slots=1\n192.168.100.11 slots=1\n"
    launch = result.files["leader.sh"].strip().splitlines()[-1]
    assert "--hostfile /etc/orchestrator/openmpi-hostfile -np 2 --map-by ppr:1:node" in launch
    assert "-x NCCL_SOCKET_IFNAME" in launch and "trtllm-llmapi-launch trtllm-serve" in launch
    # Host network: trtllm-serve binds serve.host itself, loopback by default.
    assert "--host 127.0.0.1" in launch and "healthcheck" in leader and "ports" not in leader


def test_nic_option_overrides_the_platform_interfaces(rendered):
    result, docs = rendered(TWO_SPARKS, "compose", hosts=SPARK_HOSTS, nics=("enp1s0f1np1",))
    leader = docs["compose.yaml"]["services"]["trtllm-leader"]
    assert "NCCL_SOCKET_IFNAME=enp1s0f1np1" in leader["environment"]


@pytest.mark.parametrize(("options", "message"), [
    ({}, "2 nodes need 2 addresses"),
    ({"hosts": SPARK_HOSTS, "model_pvc": "ckpt"}, "--model-pvc is for --target kubernetes"),
])
def test_compose_choices_that_cannot_work_are_user_errors(rendered, options, message):
    from orchestrator.errors import UserError

    with pytest.raises(UserError, match=message):
        rendered(TWO_SPARKS, "compose", **options)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_launch_scripts_are_valid_bash(rendered):
    result, _ = rendered(TWO_SPARKS, "compose", hosts=SPARK_HOSTS)
    _, k8s = rendered(TWO_SPARKS, "kubernetes")
    scripts = [result.files["leader.sh"], result.files["worker.sh"], k8s["configmap.yaml"]["data"]["leader.sh"]]
    for script in scripts:
        check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr
