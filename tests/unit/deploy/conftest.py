"""Offline validators for rendered deployment files, and a recipe renderer.

Core Kubernetes objects go through `kubernetes-validate` (the Kubernetes JSON schemas it
ships, strict variant); the LeaderWorkerSet through its CRD's OpenAPI schema and compose
files through the compose-spec JSON schema, both vendored in tests/data/deploy (see its README).
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache

import pytest
import yaml

from tests.conftest import RECIPES, REPO

DATA = REPO / "tests" / "data" / "deploy"
# The oldest Kubernetes the manifests must suit and the newest the validator knows.
K8S_VERSIONS = ("1.29", "latest")


def _strict(schema):
    """Unknown fields become errors, as with `kubectl apply --validate=strict` against the CRD."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=1)
def _lws_validator():
    import jsonschema

    schema = _strict(json.loads((DATA / "leaderworkerset-v1.schema.json").read_text()))
    return jsonschema.Draft7Validator(schema)


@lru_cache(maxsize=1)
def _compose_validator():
    import jsonschema

    return jsonschema.Draft7Validator(json.loads((DATA / "compose-spec.json").read_text()))


def _errors(validator, document) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def validate_k8s(obj: dict) -> None:
    """Raise AssertionError naming every schema problem of one Kubernetes object."""
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    if obj["kind"] == "LeaderWorkerSet":
        problems = _errors(_lws_validator(), obj)
        assert not problems, problems
        # The CRD embeds PodTemplateSpec; check both templates against the core schema too.
        templates = obj["spec"]["leaderWorkerTemplate"]
        for role in ("leaderTemplate", "workerTemplate"):
            validate_k8s({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"check-{role.lower()}"},
                          "template": copy.deepcopy(templates[role])})
        return
    for version in K8S_VERSIONS:
        version = latest_version() if version == "latest" else version
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            raise AssertionError(f"{obj['kind']} against Kubernetes {version}: {path}: {exc.message}") from None


def validate_compose(document: dict) -> None:
    problems = _errors(_compose_validator(), document)
    assert not problems, problems


@pytest.fixture
def rendered():
    """rendered(recipe_file, target, overrides=[...], **options) -> (files {name: text}, docs {name: parsed})."""
    from orchestrator.recipe.loader import load_recipe
    from orchestrator.stages.deploy import DeployOptions, Target, render

    def make(recipe_file: str, target: str, overrides: list[str] | None = None, **options):
        recipe = load_recipe(RECIPES / recipe_file, overrides or [])
        result = render(recipe, DeployOptions(target=Target(target), **options))
        docs = {name: yaml.safe_load(text) for name, text in result.files.items() if name.endswith(".yaml")}
        return result, docs

    return make
