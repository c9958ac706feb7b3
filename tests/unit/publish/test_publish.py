"""`orchestrator publish`: dry run, and the one-line errors of offline / unreachable / no token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

TINY = REPO / "recipes" / "tiny-mixtral-nvfp4-cpu.yaml"
FAKE_TOKEN = "hf_thisIsNotARealTokenButMustNeverBePrinted"


def _workdir_with_checkpoint(tmp_path: Path, card: bool = True) -> Path:
    data = yaml.safe_load(TINY.read_text())
    data["workdir"] = str(tmp_path / "work")
    ckpt = tmp_path / "work" / "checkpoint-hf"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"\0" * 1234)
    (ckpt / "config.json").write_text("{}")
    (ckpt / ".hidden.partial").write_text("not uploaded")
    if card:
        (ckpt / "README.md").write_text("---\nlicense: other\n---\n# card\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    return recipe


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE")}
    clean.update(HF_HOME=str(tmp_path / "hf-home"), **env)  # no stored login from this machine
    exe = Path(sys.executable).parent / "orchestrator"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=clean, timeout=120, cwd=tmp_path)


def test_dry_run_lists_files_and_sizes_without_network(cli, tmp_path):
    recipe = _workdir_with_checkpoint(tmp_path)
    result = cli("publish", recipe, "--repo-id", "me/tiny-nvfp4", "--dry-run",
                 env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": FAKE_TOKEN})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "1,234  model.safetensors" in lines and "2  config.json" in lines
    assert any(line.endswith("  README.md") for line in lines)
    assert ".hidden" not in result.output
    assert "3 files" in result.output and "would create private repo me/tiny-nvfp4" in result.output
    assert "token: HF_TOKEN" in result.output and FAKE_TOKEN not in result.output


def test_offline_exits_2_with_one_line(tmp_path):
    recipe = _workdir_with_checkpoint(tmp_path)
    done = _run(["publish", str(recipe), "--repo-id", "me/tiny-nvfp4"], tmp_path, HF_HUB_OFFLINE="1",
                HF_TOKEN=FAKE_TOKEN)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: HF_HUB_OFFLINE is set: publishing needs the Hugging Face Hub; unset it, or use --dry-run"]


def test_unreachable_hub_exits_2_with_one_line_and_no_token(tmp_path):
    recipe = _workdir_with_checkpoint(tmp_path)
    done = _run(["publish", str(recipe), "--repo-id", "me/tiny-nvfp4"], tmp_path,
                HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN=FAKE_TOKEN)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the Hugging Face Hub at http://127.0.0.1:9")
    assert FAKE_TOKEN not in done.stdout + done.stderr


def test_no_token_is_a_user_error(tmp_path):
    recipe = _workdir_with_checkpoint(tmp_path)
    done = _run(["publish", str(recipe), "--repo-id", "me/tiny-nvfp4"], tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    assert done.returncode == 2 and "no Hugging Face token" in done.stderr


def test_missing_card_and_bad_repo_id_are_user_errors(cli, tmp_path):
    recipe = _workdir_with_checkpoint(tmp_path, card=False)
    result = cli("publish", recipe, "--repo-id", "me/tiny", "--dry-run")
    assert result.exit_code == 2 and "orchestrator card" in result.output
    result = cli("publish", recipe, "--repo-id", "not a repo", "--dry-run")
    assert result.exit_code == 2 and "write ORG/NAME" in result.output
