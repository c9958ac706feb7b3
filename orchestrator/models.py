"""Models shipped inside the package (the embedded default) and where they live."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
BUILTIN_MODELS = {"tiny-mixtral": ASSETS / "tiny_mixtral"}


def builtin_model_dir(source: str) -> Path:
    """The directory of a `builtin:<name>` model source."""
    name = source.split(":", 1)[1]
    return BUILTIN_MODELS[name]
