"""The text the perplexity gate is measured on: WikiText-2, the builtin model's held-out split, or a local file.

WikiText-2 (raw, test split) is the seed's metric, read through `datasets` and joined
with blank lines the way Hugging Face's perplexity guide does; without network it is a
UserError that names the offline alternatives. A local .txt is taken whole; a .jsonl
contributes the "text" field of each line, documents joined with blank lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.stages.calibration import jsonl_texts, read_text_file

WIKITEXT2 = ("Salesforce/wikitext", "wikitext-2-raw-v1", "test")  # hub id, config, split
WIKITEXT2_NAMES = ("wikitext-2", "wikitext2", "wikitext-2-raw-v1")
HELDOUT = Path("corpus") / "heldout.txt"
KEY = "eval.perplexity.dataset"


@dataclass(frozen=True)
class EvalText:
    text: str
    source: str  # what it was, for the record: "wikitext-2 (wikitext/wikitext-2-raw-v1, test)", a path


def load_eval_text(dataset: str, model_dir: Path | None) -> EvalText:
    """The evaluation text named by `eval.perplexity.dataset` (`model_dir`: the source model, for 'builtin')."""
    if dataset in WIKITEXT2_NAMES:
        return _wikitext2()
    if dataset == "builtin":
        path = model_dir / HELDOUT if model_dir is not None else None
        if path is None or not path.is_file():
            raise UserError(f"{KEY}=builtin: the model has no held-out text ({path or HELDOUT} is missing)",
                            hint="only builtin: models ship corpus/heldout.txt; use wikitext-2 or a local .txt/.jsonl")
        return EvalText(_read(path), f"builtin ({path})")
    path = Path(dataset).expanduser()
    if path.suffix not in (".txt", ".jsonl"):
        raise UserError(f"{KEY}={dataset}: use wikitext-2, builtin, or a local .txt/.jsonl file")
    text = _read(path)
    if path.suffix == ".jsonl":
        text = "\n\n".join(jsonl_texts(path, text))
    return EvalText(text, str(path))


def _read(path: Path) -> str:
    text = read_text_file(path, f"{KEY}:")
    if not text.strip():
        raise UserError(f"{KEY}: {path} is empty")
    return text


def _wikitext2() -> EvalText:
    repo, config, split = WIKITEXT2
    try:
        import datasets
    except ImportError:
        raise UserError(f"{KEY}=wikitext-2 needs the `datasets` package",
                        hint="pip install 'trtllm-orchestrator[quantize]', or use builtin / a local .txt file") from None
    try:
        records = datasets.load_dataset(repo, config, split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types for "offline" / "not found"
        raise UserError(f"{KEY}=wikitext-2: WikiText-2 is not reachable through `datasets` "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                        hint="offline? set eval.perplexity.dataset to builtin (the embedded model) or a local "
                        ".txt/.jsonl file; or download it once with network (it is cached)") from None
    return EvalText("\n\n".join(records["text"]), f"wikitext-2 ({repo} {config}, {split})")
