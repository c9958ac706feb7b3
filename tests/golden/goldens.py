"""The golden files: exact TRT-LLM argv and llm-api YAML per shipped recipe, as `plan` computes them.

tests/golden/<recipe file stem>/build.argv   one argument per line (recipes that build an engine)
                               serve.argv   one argument per line (GPU recipes: trtllm-serve)
                               llm-api-options.yaml   the YAML serve writes (when it writes one)
Paths are the local form of the recipe's default workdir (work/<name>/...), as the local
runner passes them. The CPU recipe has none: its serve is our own reference engine, not
TensorRT-LLM. `python scripts/update_goldens.py` rewrites them deliberately.
"""

from __future__ import annotations

from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent
REPO = GOLDEN_DIR.parents[1]
FILE_NAMES = ("build.argv", "serve.argv", "llm-api-options.yaml")


def argv_text(argv: list[str]) -> str:
    return "".join(f"{arg}\n" for arg in argv)


def expected_files(recipe_path: Path) -> dict[str, str]:
    """Golden file name -> content for one shipped recipe, from orchestrator.plan."""
    from orchestrator.plan import plan
    from orchestrator.recipe.loader import load_recipe

    recipe = load_recipe(recipe_path)
    if not recipe.platform_info.has_gpu:
        return {}
    stages = {stage.name: stage for stage in plan(recipe)}
    files = {}
    if stages["build"].argv:
        files["build.argv"] = argv_text(stages["build"].argv)
    files["serve.argv"] = argv_text(stages["serve"].argv)
    for content in stages["serve"].files.values():
        files["llm-api-options.yaml"] = content
    return files


def golden_dir(recipe_path: Path) -> Path:
    return GOLDEN_DIR / recipe_path.stem


def committed_files(recipe_path: Path) -> dict[str, str]:
    folder = golden_dir(recipe_path)
    return {name: (folder / name).read_text() for name in FILE_NAMES if (folder / name).is_file()}


def shipped_recipes() -> list[Path]:
    return sorted((REPO / "recipes").glob("*.yaml"))


def write_goldens(recipe_path: Path) -> list[str]:
    """Rewrite one recipe's golden files (removing ones it no longer has); the names that changed."""
    folder = golden_dir(recipe_path)
    expected = expected_files(recipe_path)
    changed = []
    for name in FILE_NAMES:
        path = folder / name
        if name in expected:
            if not path.is_file() or path.read_text() != expected[name]:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(expected[name])
                changed.append(name)
        elif path.exists():
            path.unlink()
            changed.append(name)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return changed
