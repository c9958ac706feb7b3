"""Regenerate tests/golden/ (exact trtllm-build / trtllm-serve argv and llm-api YAML per shipped recipe).

    python scripts/update_goldens.py

Run it deliberately after a change to the argv builders, the recipes or the CLI spec, and
review the diff: the goldens are what every shipped recipe hands TensorRT-LLM.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.golden.goldens import golden_dir, shipped_recipes, write_goldens  # noqa: E402


def main() -> int:
    for recipe in shipped_recipes():
        changed = write_goldens(recipe)
        where = golden_dir(recipe).relative_to(REPO)
        print(f"{where}: {'updated ' + ', '.join(changed) if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
