"""Model resolution: builtin, local directory, hub id; every fixable failure is one UserError line."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserError
from orchestrator.stages import fetch as fetch_module
from orchestrator.stages.fetch import resolve_model


def _recipe(source, revision=None):
    from types import SimpleNamespace

    return SimpleNamespace(model=SimpleNamespace(source=source, revision=revision,
                                                 is_builtin=source.startswith("builtin:")))


def test_local_directory_is_used_in_place(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    location = resolve_model(_recipe(str(tmp_path)))
    assert location.path == tmp_path.resolve() and location.kind == "local" and location.revision is None


def test_local_directory_without_config_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(_recipe(str(tmp_path)))


def test_missing_builtin_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("orchestrator.models.BUILTIN_MODELS", {"tiny-mixtral": tmp_path / "absent"})
    with pytest.raises(UserError, match="embedded model is not in this install"):
        resolve_model(_recipe("builtin:tiny-mixtral"))


def test_offline_and_not_cached_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="HF_HUB_OFFLINE=1 and it is not in the local cache") as caught:
        resolve_model(_recipe("some-org/some-model", "abc123"))
    assert "\n" not in caught.value.message


def _raising(exc):
    def snapshot_download(*args, **kwargs):
        raise exc

    return snapshot_download


@pytest.mark.parametrize(("error_name", "expected"), [
    ("GatedRepoError", "is gated: accept its license"),
    ("RepositoryNotFoundError", "not found on the hub"),
    ("RevisionNotFoundError", "does not exist in org/model"),
])
def test_hub_errors_say_what_to_do(monkeypatch, error_name, expected):
    import huggingface_hub
    from huggingface_hub import errors

    exc = getattr(errors, error_name)("boom", response=None) if error_name != "RevisionNotFoundError" else \
        errors.RevisionNotFoundError("boom", response=None)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _raising(exc))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    with pytest.raises(UserError, match=expected) as caught:
        resolve_model(_recipe("org/model", "v1"))
    assert "hf_secret_value" not in caught.value.message


def test_hub_download_returns_the_resolved_commit(monkeypatch, tmp_path):
    import huggingface_hub

    snapshot = tmp_path / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    calls = {}

    def snapshot_download(repo_id, **kwargs):
        calls.update(kwargs, repo_id=repo_id)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    location = resolve_model(_recipe("org/model", "main"))
    assert location.revision == "0123abcd" and location.kind == "hub" and calls["revision"] == "main"
    assert "*.safetensors" in calls["allow_patterns"] and "consolidated*" in calls["ignore_patterns"]
    assert fetch_module.ALLOW_PATTERNS == calls["allow_patterns"]
