"""Write recipes out: resolved YAML/JSON, the JSON Schema, the list of shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.images import REPO_ROOT

RECIPES_DIR = REPO_ROOT / "recipes"
SCHEMA_PATH = RECIPES_DIR / "recipe.schema.json"


def recipe_dict(recipe: Any) -> dict[str, Any]:
    """The recipe as plain data, every default filled in (only for writing it out)."""
    data = recipe.model_dump(mode="json")
    data["workdir"] = str(recipe.resolved_workdir)
    return data


def dump_recipe(recipe: Any, as_json: bool = False) -> str:
    import yaml

    data = recipe_dict(recipe)
    if as_json:
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


def schema_json() -> str:
    from orchestrator.recipe.root import Recipe

    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "orchestrator recipe"
    return json.dumps(schema, indent=2, sort_keys=True)


def shipped_recipes() -> list[tuple[Path, str]]:
    """(path, command) for each recipe in recipes/; the command is its first comment line."""
    rows = []
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        rows.append((path.relative_to(REPO_ROOT), first.lstrip("# ").strip()))
    return rows
