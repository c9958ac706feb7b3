"""The recipe and plan commands through Typer's runner, and the installed console script for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RECIPES, REPO

SPARK = RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"
TINY = RECIPES / "tiny-mixtral-nvfp4-cpu.yaml"
B200 = RECIPES / "mixtral-8x7b-instruct-nvfp4-b200.yaml"


def test_validate_ok(cli):
    result = cli("recipe", "validate", SPARK)
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output


def test_validate_nvfp4_on_hopper_names_platform_and_blackwell(cli):
    result = cli("recipe", "validate", SPARK, "platform=h100")
    assert result.exit_code == 2
    assert "platform='h100'" in result.output and "Blackwell" in result.output and "SM100" in result.output
    assert "Traceback" not in result.output


def test_override_changes_value(cli):
    result = cli("recipe", "show", SPARK, "serve.port=9001", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["serve"]["port"] == 9001


def test_missing_recipe_file_is_a_user_error(cli, tmp_path):
    result = cli("recipe", "validate", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml not found" in result.output


def test_invalid_yaml_names_the_line(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: [unclosed\n")
    result = cli("recipe", "validate", bad)
    assert result.exit_code == 2
    assert "line" in result.output and "not valid YAML" in result.output


def test_schema_is_json_with_sections(cli):
    result = cli("recipe", "schema")
    schema = json.loads(result.output)
    assert {"model", "quantize", "checkpoint", "build", "serve", "eval", "bench"} <= set(schema["properties"])


def test_list_shows_commands(cli):
    result = cli("recipe", "list")
    assert "orchestrator run recipes/tiny-mixtral-nvfp4-cpu.yaml" in result.output


def test_plan_spark_shows_nvfp4_build(cli):
    result = cli("plan", SPARK)
    assert result.exit_code == 0, result.output
    assert "trtllm-build" in result.output and "--gemm_plugin nvfp4" in result.output
    assert "trtllm-serve" in result.output


def test_plan_cpu_skips_build_with_reason(cli):
    result = cli("plan", TINY, "--json")
    stages = {s["name"]: s for s in json.loads(result.output)["stages"]}
    assert stages["build"]["runs"] is False and "needs an NVIDIA GPU" in stages["build"]["reason"]
    assert stages["quantize"]["runs"] is True


@pytest.mark.parametrize(("overrides", "where"), [
    ([], "local (modelopt, auto device)"),
    (["quantize.gpus=2"], "torchrun: 2 FSDP2 ranks"),
    (["quantize.gpus=2", "quantize.parallel=layers"], "one process, layers over 2 GPUs"),
])
def test_plan_says_how_quantize_uses_the_gpus(cli, overrides, where):
    result = cli("plan", B200, *overrides, "--json")
    assert result.exit_code == 0, result.output
    stages = {s["name"]: s for s in json.loads(result.output)["stages"]}
    assert where in stages["quantize"]["where"]


def test_doctor_without_gpu_says_so(cli):
    result = cli("doctor", TINY, "--json")
    report = json.loads(result.output)
    if report["gpus"]:
        pytest.skip("this machine has a GPU")
    assert report["gpu_note"]  # why there is none (no driver / no NVML)
    assert any("disk" in msg for _, msg in report["verdict"])


def _no_torch_env():
    env = dict(os.environ)
    env.pop("ORCHESTRATOR_DEBUG", None)
    return env


def test_console_script_validates_for_real():
    exe = Path(sys.executable).with_name("orchestrator")
    ok = subprocess.run([exe, "recipe", "validate", TINY], capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([exe, "recipe", "validate", SPARK, "serve.port=99999"], capture_output=True, text=True,
                         cwd=REPO)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "serve.port=99999" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "orchestrator", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip()


def test_debug_env_shows_traceback():
    env = _no_torch_env() | {"ORCHESTRATOR_DEBUG": "1"}
    out = subprocess.run([sys.executable, "-m", "orchestrator", "recipe", "validate", "missing.yaml"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "Traceback" in out.stderr


HEAVY = ("torch", "transformers", "modelopt", "docker", "safetensors", "matplotlib")


def test_help_and_validate_do_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from orchestrator.cli import app\n"
        "r = CliRunner()\n"
        f"assert r.invoke(app, ['--help']).exit_code == 0\n"
        f"res = r.invoke(app, ['recipe', 'validate', {str(SPARK)!r}])\n"
        "assert res.exit_code == 0, res.output\n"
        f"res = r.invoke(app, ['plan', {str(SPARK)!r}])\n"
        "assert res.exit_code == 0, res.output\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout}"


def test_serve_over_several_nodes_points_to_deploy(cli):
    result = cli("serve", RECIPES / "mixtral-8x7b-instruct-nvfp4-2x-dgx-spark.yaml")
    assert result.exit_code == 2
    assert "orchestrator deploy" in result.output and "nodes=2" in result.output


def test_binary_file_as_recipe_is_a_user_error(cli, tmp_path):
    binary = tmp_path / "model.safetensors"
    binary.write_bytes(bytes(range(256)) * 4)
    result = cli("recipe", "validate", binary)
    assert result.exit_code == 2 and "cannot read it as text" in result.output


def test_damaged_manifest_is_a_user_error(cli, tmp_path):
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "manifest.json").write_text("{not json")
    result = cli("status", TINY, "-w", workdir)
    assert result.exit_code == 2 and "not a readable manifest" in result.output


def test_missing_optional_dependency_names_the_extra():
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def fake(name, *a, **k):\n"
        "    if name == 'matplotlib' or name.startswith('matplotlib.'):\n"
        "        raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = fake\n"
        "from orchestrator.cli._errors import report\n"
        "try:\n"
        "    import matplotlib\n"
        "except ModuleNotFoundError as exc:\n"
        "    sys.exit(report(exc))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2
    assert "[bench] extra" in out.stderr and "pip install 'trtllm-orchestrator[bench]'" in out.stderr
