"""Generate docs/RECIPE.md (the recipe reference) from the pydantic schema: `make docs`."""

from __future__ import annotations

import sys
import typing
from enum import Enum

from pydantic import BaseModel


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"section ({annotation.__name__})"
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "null")


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    if isinstance(value, Enum):
        value = value.value
    return f"`{value!r}`" if value is not None else "`null`"


def section_rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    nested = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        rows.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            nested.append((key, sub))
    for key, sub in nested:
        rows.extend(section_rows(sub, f"{key}."))
    return rows


def main() -> None:
    from orchestrator.recipe.root import Recipe

    out = [
        "# Recipe reference",
        "",
        "Generated from the pydantic schema by `make docs` (scripts/gen_recipe_reference.py); do not edit by hand.",
        "Unknown keys are errors at every level. `orchestrator recipe schema` prints the JSON Schema;",
        "override any key on the command line as `key.path=value`.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
        *section_rows(Recipe),
        "",
    ]
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
