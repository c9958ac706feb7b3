"""Load a recipe: YAML + `key.path=value` overrides -> validated `Recipe`, or one RecipeError listing every problem."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from orchestrator.errors import RecipeError, UserError

# Parts of a pydantic error location that name a union branch, not a YAML key.
_UNION_BRANCH_MARKERS = ("[", "function-")
_TYPE_NAMES = {"int", "str", "float", "bool", "list", "dict", "none", "literal", "enum"}


def read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"recipe {path} not found", hint="orchestrator recipe list shows the shipped recipes") from None
    except IsADirectoryError:
        raise UserError(f"recipe {path} is a directory; give a .yaml file") from None
    except (PermissionError, UnicodeDecodeError) as exc:
        raise UserError(f"recipe {path}: cannot read it as text ({type(exc).__name__}); give a YAML recipe") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError(f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping (name:, model:, platform:, ...), not {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides; values are parsed as YAML scalars/lists (port=9000 -> int)."""
    import yaml

    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r}: write key.path=value, e.g. serve.port=9000")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _key_path(loc: tuple[Any, ...]) -> str:
    parts = []
    for part in loc:
        text = str(part)
        if any(marker in text for marker in _UNION_BRANCH_MARKERS) or text.split("[")[0] in _TYPE_NAMES:
            continue
        parts.append(f"[{text}]" if isinstance(part, int) else text)
    return ".".join(parts).replace(".[", "[") or "(recipe)"


def _fields_at(model_cls: type, loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the section at `loc` (for 'did you mean')."""
    from pydantic import BaseModel

    cls = model_cls
    for part in loc:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            break
        ann = field.annotation
        candidates = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            break
        cls = candidates[0]
    return list(getattr(cls, "model_fields", {}))


def format_validation_error(exc: Any, model_cls: type) -> list[str]:
    """One line per problem: key path, value, what is wrong, and the fix where we know it."""
    merged: dict[str, tuple[Any, list[str]]] = {}
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = _key_path(loc)
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            parent = tuple(p for p in loc[:-1] if isinstance(p, str))
            valid = _fields_at(model_cls, parent)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "") + f" Valid keys: {', '.join(valid)}"
            value = None
        elif err["type"] == "missing":
            msg = "required key is missing"
            value = None
        else:
            msg = err["msg"]
        previous = merged.get(key)
        if previous:
            previous[1].append(msg)
        else:
            merged[key] = (value, [msg])
    lines = []
    for key, (value, messages) in merged.items():
        shown = "" if value is None or isinstance(value, dict) else f"={value!r}"
        lines.append(f"{key}{shown}: {' or '.join(dict.fromkeys(messages))}")
    return lines


def validate_recipe(data: dict[str, Any], source: Path | None = None):
    """Validate a recipe mapping; all problems (field and cross-field) are raised together."""
    from pydantic import ValidationError

    from orchestrator.recipe.checks import cross_check
    from orchestrator.recipe.root import Recipe

    where = f"{source}" if source else "recipe"
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(exc, Recipe)
        raise RecipeError(f"{where}: {len(lines)} problem(s)", details=lines) from None
    recipe._source_path = source
    problems = cross_check(recipe)
    if problems:
        raise RecipeError(f"{where}: {len(problems)} problem(s)", details=[str(p) for p in problems])
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None):
    """Read, override and validate the recipe at `path`."""
    path = Path(path)
    data = apply_overrides(read_yaml(path), list(overrides or []))
    return validate_recipe(data, source=path)
