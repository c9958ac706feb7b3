"""`orchestrator deploy`: writes a whole directory atomically, prints paths, exit 2 on impossible choices."""

from __future__ import annotations

import subprocess

from tests.conftest import RECIPES

B200 = str(RECIPES / "mixtral-8x7b-instruct-nvfp4-b200.yaml")
TWO_SPARKS = str(RECIPES / "mixtral-8x7b-instruct-nvfp4-2x-dgx-spark.yaml")


def test_deploy_writes_the_manifests_and_prints_their_paths(cli, tmp_path):
    out = tmp_path / "k8s"
    result = cli("deploy", B200, "--target", "kubernetes", "--out", out)
    assert result.exit_code == 0, result.output
    printed = [line for line in result.stdout.splitlines() if line.strip()]
    assert printed == [str(out / name) for name in ("configmap.yaml", "deployment.yaml", "service.yaml")]
    assert all((out / name).is_file() for name in ("configmap.yaml", "deployment.yaml", "service.yaml"))
    assert not list(tmp_path.glob(".*partial*")), "temporary directory left behind"


def test_rerender_replaces_the_directory_whole(cli, tmp_path):
    out = tmp_path / "k8s"
    assert cli("deploy", B200, "--target", "kubernetes", "--out", out).exit_code == 0
    result = cli("deploy", B200, "--target", "kubernetes", "--out", out, "--nodes", "2")
    assert result.exit_code == 0, result.output
    # The single-node Deployment must not linger beside the LeaderWorkerSet for `kubectl apply -f`.
    assert sorted(p.name for p in out.glob("*.yaml")) == ["configmap.yaml", "leaderworkerset.yaml", "service.yaml"]


def test_deploy_never_overwrites_a_foreign_directory(cli, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    result = cli("deploy", B200, "--target", "compose", "--out", tmp_path)
    assert result.exit_code == 2
    assert "was not written by `orchestrator deploy`" in result.output
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_stdout_prints_and_writes_nothing(cli, tmp_path):
    result = cli("deploy", TWO_SPARKS, "--target", "compose", "--hosts", "10.0.0.1,10.0.0.2", "--stdout",
                 "--workdir", tmp_path / "wd")
    assert result.exit_code == 0, result.output
    assert "# ---- compose.yaml" in result.stdout and "trtllm-llmapi-launch" in result.stdout
    assert not (tmp_path / "wd").exists()


def test_default_out_is_under_the_workdir(cli, tmp_path):
    result = cli("deploy", B200, "--target", "compose", "--workdir", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "deploy" / "compose" / "compose.yaml").is_file()
    assert str(tmp_path) in (tmp_path / "deploy" / "compose" / "compose.yaml").read_text()  # the read-only mount


def test_impossible_choices_exit_2_with_one_line(cli, tmp_path):
    result = cli("deploy", B200, "--target", "kubernetes", "--nodes", "3", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "cannot be spread evenly over 3 nodes" in result.output
    result = cli("deploy", TWO_SPARKS, "--target", "compose", "--out", tmp_path / "y")
    assert result.exit_code == 2 and "--hosts" in result.output


def test_help_does_not_import_heavy_modules():
    import sys

    code = ("import sys; from orchestrator.cli import app; from typer.testing import CliRunner; "
            "CliRunner().invoke(app, ['deploy', '--help']); "
            "print(','.join(m for m in ('torch', 'jsonschema', 'kubernetes_validate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
