"""The model card: README.md in the quantized checkpoint, every number from manifest.json.

`write_card(recipe)` is what `orchestrator card` and the pipeline's card stage call. The
front matter (front_matter.py) inherits the base model's license; the sections (sections.py)
follow the seed card and print "not measured (<reason>)" for anything the manifest lacks
(facts.py says where each number is read from).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.atomic import atomic_write_text
from orchestrator.errors import UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.manifest import Manifest, load_manifest

CARD_NAME = "README.md"


def render_card(recipe, manifest: Manifest, model_dir: Path | None) -> tuple[str, str]:
    """(card text, where the license came from) for `recipe` from `manifest`; `model_dir` is the base model's."""
    from orchestrator.stages.card import sections
    from orchestrator.stages.card.facts import ManifestFacts
    from orchestrator.stages.card.front_matter import front_matter, inherited_license, render_front_matter

    facts = ManifestFacts(manifest)
    license_info, license_note = inherited_license(model_dir)
    parts = [
        render_front_matter(front_matter(recipe, facts, license_info)),
        sections.title(recipe),
        f"License: `{license_info['license']}` ({license_note}).\n",
        sections.format_section(recipe),
        sections.size_section(facts),
        sections.method_section(recipe, facts),
        sections.hardware_section(facts),
        sections.eval_section(facts),
        sections.bench_section(recipe, facts),
        sections.usage_section(recipe),
        sections.provenance_section(recipe, manifest),
    ]
    return "\n".join(parts), license_note


def write_card(recipe) -> Path:
    """Write README.md into the quantized checkpoint (atomically) and return its path."""
    from orchestrator.stages.card.front_matter import source_model_dir

    layout = WorkdirLayout(recipe.resolved_workdir)
    if not layout.checkpoint_hf.is_dir():
        raise UserError(f"no quantized checkpoint at {layout.checkpoint_hf}; run `orchestrator quantize` "
                        "(or `orchestrator run`) first")
    text, _ = render_card(recipe, load_manifest(layout.manifest, recipe.name), source_model_dir(recipe))
    path = layout.checkpoint_hf / CARD_NAME
    atomic_write_text(path, text)
    return path
