"""Kubernetes manifests: schema-valid offline, GPUs = tp x pp, /health probes, read-only model, no inline secrets."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import pytest

from tests.unit.deploy.conftest import validate_k8s

B200 = "mixtral-8x7b-instruct-nvfp4-b200.yaml"  # tp=2, ep=2, pytorch backend
H100 = "mixtral-8x7b-instruct-fp8-h100.yaml"  # tp=2, tensorrt engine
SPARK = "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"  # tp=1, tensorrt engine
TWO_SPARKS = "mixtral-8x7b-instruct-nvfp4-2x-dgx-spark.yaml"  # tp=2 over nodes=2, pytorch
GPU_RECIPES = [B200, H100, SPARK, TWO_SPARKS]
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def _pod_specs(obj: dict) -> list[dict]:
    if obj["kind"] == "Deployment":
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "LeaderWorkerSet":
        lwt = obj["spec"]["leaderWorkerTemplate"]
        return [lwt["leaderTemplate"]["spec"], lwt["workerTemplate"]["spec"]]
    return []


def _workload(docs: dict) -> dict:
    return docs.get("deployment.yaml") or docs["leaderworkerset.yaml"]


@pytest.mark.parametrize("recipe_file", GPU_RECIPES)
def test_every_manifest_validates_against_the_kubernetes_schemas(rendered, recipe_file):
    _, docs = rendered(recipe_file, "kubernetes")
    assert docs
    for obj in docs.values():
        validate_k8s(obj)
        assert DNS_1035.match(obj["metadata"]["name"]), obj["metadata"]["name"]


def test_the_validators_are_strict():
    """A stand-in for `kubectl apply --validate=strict`: misspelt or retired fields fail here, offline."""
    from orchestrator.recipe.loader import load_recipe
    from orchestrator.stages.deploy import DeployOptions, Target
    from orchestrator.stages.deploy.kubernetes import manifests
    from orchestrator.stages.deploy.shared import deployment
    from tests.conftest import RECIPES

    single = manifests(deployment(load_recipe(RECIPES / B200), DeployOptions(Target.kubernetes)))
    bad = copy.deepcopy(single["deployment.yaml"])
    bad["spec"]["template"]["spec"]["containers"][0]["gpus"] = 2
    with pytest.raises(AssertionError, match="gpus"):
        validate_k8s(bad)
    multi = manifests(deployment(load_recipe(RECIPES / TWO_SPARKS), DeployOptions(Target.kubernetes)))
    bad = copy.deepcopy(multi["leaderworkerset.yaml"])
    bad["spec"]["networkConfig"] = {"subdomainPolicy": "Shared", "leaderServicePort": [{"port": 8000}]}
    with pytest.raises(AssertionError, match="leaderServicePort"):
        validate_k8s(bad)
    bad = copy.deepcopy(multi["leaderworkerset.yaml"])
    bad["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["readOnly"] = True
    with pytest.raises(AssertionError, match="readOnly"):
        validate_k8s(bad)


@pytest.mark.parametrize("recipe_file", [B200, H100, SPARK])
def test_single_node_is_a_deployment_with_all_gpus_in_one_pod(rendered, recipe_file):
    result, docs = rendered(recipe_file, "kubernetes")
    from orchestrator.recipe.loader import load_recipe
    from tests.conftest import RECIPES

    recipe = load_recipe(RECIPES / recipe_file)
    deploy = docs["deployment.yaml"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == recipe.checkpoint.tp * recipe.checkpoint.pp
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    args = container["args"]
    assert args[0] == "trtllm-serve"
    assert args[args.index("--tp_size") + 1] == str(recipe.checkpoint.tp)
    assert args[args.index("--host") + 1] == "0.0.0.0"  # the pod network; the Service decides exposure
    assert all(not a.startswith(str(recipe.resolved_workdir)) for a in args), "host paths leaked into the pod"
    assert args[1].startswith("/workdir/")
    service = docs["service.yaml"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    assert deploy["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_llm_api_options_come_from_a_configmap(rendered):
    from orchestrator.recipe.loader import load_recipe
    from orchestrator.stages.serve import llm_api_yaml
    from tests.conftest import RECIPES

    _, docs = rendered(B200, "kubernetes")
    config = docs["configmap.yaml"]
    assert config["data"]["llm-api-options.yaml"] == llm_api_yaml(load_recipe(RECIPES / B200))
    pod = docs["deployment.yaml"]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    options_path = next(a for a in args if a.endswith("llm-api-options.yaml"))
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "config")
    assert options_path == f"{mount['mountPath']}/llm-api-options.yaml" and mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    # The tensorrt backend takes no llm-api YAML: no ConfigMap at all.
    _, docs = rendered(H100, "kubernetes")
    assert "configmap.yaml" not in docs


@pytest.mark.parametrize("recipe_file", GPU_RECIPES)
def test_probes_watch_health_with_room_for_the_model_load(rendered, recipe_file):
    from orchestrator.recipe.loader import load_recipe
    from tests.conftest import RECIPES

    timeout = load_recipe(RECIPES / recipe_file).serve.health_timeout_s
    _, docs = rendered(recipe_file, "kubernetes")
    serving = _pod_specs(_workload(docs))[0]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in serving["ports"]}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = serving[kind]
        assert probe["httpGet"]["path"] == "/health" and probe["httpGet"]["port"] in ports
    startup = serving["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= timeout >= 600
    assert serving["livenessProbe"]["periodSeconds"] * serving["livenessProbe"]["failureThreshold"] >= 120


@pytest.mark.parametrize("recipe_file", GPU_RECIPES)
def test_model_volume_is_read_only_and_pods_cannot_escalate(rendered, recipe_file):
    _, docs = rendered(recipe_file, "kubernetes")
    for pod in _pod_specs(_workload(docs)):
        model = next(v for v in pod["volumes"] if v["name"] == "model")
        assert model["hostPath"]["path"].startswith("/") and model["hostPath"]["type"] == "Directory"
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory"
        for container in pod["containers"]:
            mounts = {m["name"]: m for m in container["volumeMounts"]}
            assert mounts["model"]["readOnly"] is True and mounts["dshm"]["mountPath"] == "/dev/shm"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert "privileged" not in container["securityContext"]


def test_model_from_a_read_only_pvc(rendered):
    _, docs = rendered(TWO_SPARKS, "kubernetes", model_pvc="mixtral-ckpt")
    for pod in _pod_specs(docs["leaderworkerset.yaml"]):
        model = next(v for v in pod["volumes"] if v["name"] == "model")
        assert model == {"name": "model", "persistentVolumeClaim": {"claimName": "mixtral-ckpt", "readOnly": True}}


@pytest.mark.parametrize("recipe_file", GPU_RECIPES)
def test_no_secret_is_inlined(rendered, recipe_file, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_stand_in_secret_value_123")
    result, docs = rendered(recipe_file, "kubernetes", hf_secret="my-hf")
    assert not any("hf_stand_in_secret_value_123" in text for text in result.files.values())
    assert all(obj["kind"] != "Secret" for obj in docs.values())
    for pod in _pod_specs(_workload(docs)):
        for container in pod["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "my-hf"
            assert "value" not in env["HF_TOKEN"]
            secretish = [n for n, e in env.items() if re.search("TOKEN|KEY|SECRET|PASSWORD", n) and "value" in e]
            assert not secretish


def test_image_is_the_pinned_one_by_digest_when_the_lock_has_it(rendered, tmp_path, monkeypatch):
    import yaml

    from orchestrator.images import lock_path

    digest = "sha256:" + "ab" * 32
    data = yaml.safe_load(lock_path().read_text())
    for entry in data["images"].values():
        entry["digests"] = {arch: digest for arch in entry.get("architectures") or ("x86_64", "aarch64")}
    lock = tmp_path / "images.lock.yaml"
    lock.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("ORCHESTRATOR_IMAGES_LOCK", str(lock))
    _, docs = rendered(B200, "kubernetes")
    image = docs["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"nvcr.io/nvidia/tensorrt-llm/release@{digest}"


def test_two_nodes_make_a_leaderworkerset_with_one_rank_per_gpu(rendered):
    result, docs = rendered(TWO_SPARKS, "kubernetes", namespace="llm")
    assert set(docs) == {"configmap.yaml", "leaderworkerset.yaml", "service.yaml"}
    lws = docs["leaderworkerset.yaml"]
    lwt = lws["spec"]["leaderWorkerTemplate"]
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1" and lwt["size"] == 2
    assert lwt["restartPolicy"] == "RecreateGroupOnPodRestart"
    for pod in _pod_specs(lws):
        assert int(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) == 1  # tp 2 / 2 nodes
        ssh = next(v for v in pod["volumes"] if v["name"] == "ssh")
        assert ssh["secret"]["secretName"] == "mixtral-8x7b-instruct-nvfp4-2x-dgx-spark-ssh"
    assert all(obj["metadata"]["namespace"] == "llm" for obj in docs.values())
    # The client Service reaches the leader only (worker-index 0); LWS owns the headless one.
    service = docs["service.yaml"]
    assert service["metadata"]["name"] != lws["metadata"]["name"]
    assert service["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    leader = docs["configmap.yaml"]["data"]["leader.sh"]
    launch = leader.strip().splitlines()[-1]
    assert 'exec "$(command -v mpirun)"' in launch and "-np 2 --map-by ppr:1:node" in launch
    assert "trtllm-llmapi-launch trtllm-serve /workdir/checkpoint-hf" in launch and "--tp_size 2" in launch
    assert "LWS_LEADER_ADDRESS" in leader and "LWS_GROUP_SIZE" in leader


def test_nodes_option_spreads_a_single_node_recipe(rendered):
    _, docs = rendered(B200, "kubernetes", nodes=2)
    lws = docs["leaderworkerset.yaml"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    for pod in _pod_specs(lws):
        assert int(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) == 1
    validate_k8s(lws)


@pytest.mark.parametrize(("recipe_file", "options", "message"), [
    (B200, {"nodes": 3}, "cannot be spread evenly"),
    (TWO_SPARKS, {"nodes": 1}, "a dgx-spark has 1"),
    (B200, {"hosts": ("10.0.0.1",)}, "--hosts is for --target compose"),
])
def test_impossible_choices_are_user_errors(rendered, recipe_file, options, message):
    from orchestrator.errors import UserError

    with pytest.raises(UserError, match=message):
        rendered(recipe_file, "kubernetes", **options)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_leader_writes_the_hostfile_from_the_lws_environment(tmp_path):
    """The leader script's hostfile step, run for real with the variables LWS injects."""
    from orchestrator.stages.deploy.launch import _LWS_HOSTFILE

    hostfile = tmp_path / "hosts"
    script = _LWS_HOSTFILE.format(slots=4, hostfile=hostfile)
    env = {"PATH": "/usr/bin:/bin", "LWS_LEADER_ADDRESS": "mixtral-1.mixtral.llm", "LWS_GROUP_SIZE": "3"}
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, check=True)
    assert hostfile.read_text().splitlines() == [
        "mixtral-1.mixtral.llm slots=4", "mixtral-1-1.mixtral.llm slots=4", "mixtral-1-2.mixtral.llm slots=4"]
