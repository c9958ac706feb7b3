"""Calibration data: load the text, pick the samples (seeded), hash them, and feed them to the model.

Texts come from a named dataset through `datasets` (streamed, when the hub is reachable),
from the builtin model's own corpus, or from a local .txt (documents split by blank lines,
else one per line) or .jsonl (a "text" field) file. The documents are tokenized and joined
into one stream (EOS between documents), cut into windows of `seq_len` tokens, and
`samples` windows are drawn with `random.Random(seed)`: the same recipe always calibrates
on the same tokens, and the sha256 of those token ids goes into the stage record.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.stages.progress import ProgressFn

# Named datasets: (hub id, config, text field). Streamed, so only the first documents are read.
HUB_DATASETS: dict[str, tuple[str, str | None, str]] = {
    "c4": ("allenai/c4", "en", "text"),
    "cnn_dailymail": ("abisee/cnn_dailymail", "3.0.0", "article"),
    "wikitext": ("Salesforce/wikitext", "wikitext-103-raw-v1", "text"),
    "pile": ("monology/pile-uncopyrighted", None, "text"),
}
BUILTIN_CORPUS = Path("corpus") / "calibration.txt"
JSONL_TEXT_FIELDS = ("text", "content", "article")
# Windows are drawn from a pool this many times larger than needed, so the seed matters
# without tokenizing a whole multi-GB dataset.
POOL_FACTOR = 4
MAX_AUTO_BATCH = 64



@dataclass(frozen=True)
class CalibrationData:
    """The selected samples: token ids [samples, seq_len] (a torch tensor) and their identity."""

    input_ids: Any
    source: str  # what the text was: dataset name or file path
    sha256: str  # of the selected token ids (int32 little-endian, in sample order)
    windows_available: int

    @property
    def samples(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def tokens(self) -> int:
        return self.samples * self.seq_len


def load_texts(dataset: str, model_dir: Path | None) -> tuple[Iterator[str], str]:
    """The documents of `dataset` as an iterator, and a description of where they came from."""
    if dataset == "builtin":
        if model_dir is None:
            raise UserError("quantize.calibration.dataset=builtin needs a builtin: model (it ships the text)")
        return _file_texts(model_dir / BUILTIN_CORPUS), f"builtin ({model_dir / BUILTIN_CORPUS})"
    if dataset in HUB_DATASETS:
        return _hub_texts(dataset), f"{dataset} ({HUB_DATASETS[dataset][0]})"
    path = Path(dataset).expanduser()
    if path.suffix not in (".txt", ".jsonl"):
        raise UserError(f"quantize.calibration.dataset={dataset}: use {', '.join(HUB_DATASETS)}, builtin, "
                        "or a local .txt/.jsonl file")
    return _file_texts(path), str(path)


def read_text_file(path: Path, label: str) -> str:
    """A local .txt/.jsonl data file as text; UserError (named by `label`) when missing or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{label} {path} not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{label} {path} is not UTF-8 text") from None


def _file_texts(path: Path) -> Iterator[str]:
    text = read_text_file(path, "calibration file")
    if path.suffix == ".jsonl":
        return jsonl_texts(path, text)
    blocks = [b.strip() for b in text.split("\n\n")]
    documents = [b for b in blocks if b] if len(blocks) > 1 else [line for line in text.splitlines() if line.strip()]
    if not documents:
        raise UserError(f"calibration file {path} is empty")
    return iter(documents)


def jsonl_texts(path: Path, text: str) -> Iterator[str]:
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path}:{number}: not a JSON object; .jsonl wants one object per line") from None
        field = next((f for f in JSONL_TEXT_FIELDS if isinstance(record, dict) and isinstance(record.get(f), str)),
                     None)
        if field is None:
            raise UserError(f"{path}:{number}: no text field; give each line one of {', '.join(JSONL_TEXT_FIELDS)}")
        documents.append(record[field])
    if not documents:
        raise UserError(f"calibration file {path} has no records")
    return iter(documents)


def _hub_texts(name: str) -> Iterator[str]:
    repo, config, field = HUB_DATASETS[name]
    try:
        import datasets
    except ImportError:
        raise UserError(f"quantize.calibration.dataset={name} needs the `datasets` package; "
                        "pip install 'trtllm-orchestrator[quantize]', or use a local .txt/.jsonl file") from None
    try:
        stream = datasets.load_dataset(repo, config, split="train", streaming=True)
        for record in stream:
            text = record.get(field)
            if isinstance(text, str) and text.strip():
                yield text
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many types for "offline" / "not found"
        raise UserError(f"calibration dataset {name} ({repo}) is not reachable ({type(exc).__name__}); "
                        "use quantize.calibration.dataset=<local .txt/.jsonl file> or builtin") from None


def select_samples(documents: Iterator[str], tokenizer, samples: int, seq_len: int, seed: int,
                   source: str) -> CalibrationData:
    """Tokenize into one stream, cut `seq_len` windows, draw `samples` of them with the seed."""
    import torch

    needed = samples * seq_len
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for document in documents:
        stream.extend(tokenizer(document, add_special_tokens=False)["input_ids"])
        if eos is not None:
            stream.append(eos)
        if len(stream) >= POOL_FACTOR * needed:
            break
    windows = len(stream) // seq_len
    if windows == 0:
        raise UserError(f"calibration data {source} has {len(stream)} tokens, fewer than one sample of "
                        f"seq_len {seq_len}; lower quantize.calibration.seq_len or give more text")
    chosen = sorted(random.Random(seed).sample(range(windows), min(samples, windows)))
    ids = torch.tensor([stream[i * seq_len:(i + 1) * seq_len] for i in chosen], dtype=torch.int64)
    digest = hashlib.sha256(ids.to(torch.int32).numpy().astype("<i4").tobytes()).hexdigest()
    return CalibrationData(ids, source, digest, windows)


def cpu_batch_size(samples: int, seq_len: int, config: Any) -> int:
    """A batch that fits in a quarter of free RAM by a rough activation estimate (a CPU OOM kills, so no trial)."""
    import psutil

    hidden = getattr(config, "hidden_size", 4096)
    ffn = getattr(config, "intermediate_size", 4 * hidden)
    heads = getattr(config, "num_attention_heads", 32)
    # Calibration may route every token through every expert (modelopt calibrates them all).
    experts = getattr(config, "num_local_experts", 1) or 1
    per_sample = 4 * seq_len * (16 * hidden + 4 * ffn * experts + heads * seq_len)
    budget = psutil.virtual_memory().available // 4
    size = 1
    while size * 2 <= min(samples, MAX_AUTO_BATCH) and per_sample * size * 2 <= budget:
        size *= 2
    return size


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class ForwardLoop:
    """modelopt's `forward_loop(model)`: runs every calibration batch, finding `auto` batch size on the way.

    With `batch_size=None` (auto) on a GPU, the first batch starts at the largest power of
    two <= samples and halves after each out-of-memory error, retrying the same samples;
    max calibration is idempotent, so a retried batch changes no statistic. Layerwise
    calibration calls the loop once per decoder layer; `calls` counts them.
    """

    def __init__(self, data: CalibrationData, device: str, batch_size: int | None, progress: ProgressFn | None,
                 extra_kwargs: dict[str, Any] | None = None, layers: int | None = None):
        self.data = data
        self.layers = layers  # set for layerwise calibration: one pass per decoder layer
        self.device = device
        self.batch_size = batch_size or min(MAX_AUTO_BATCH, 1 << (data.samples.bit_length() - 1))
        self.find_batch = batch_size is None
        self.progress = progress
        self.extra_kwargs = extra_kwargs or {}
        self.calls = 0

    def __call__(self, model) -> None:
        import torch

        self.calls += 1
        ids = self.data.input_ids
        done = 0
        with torch.no_grad():
            while done < self.data.samples:
                batch = ids[done:done + self.batch_size]
                try:
                    model(input_ids=batch.to(self.device), use_cache=False, **self.extra_kwargs)
                except (RuntimeError, MemoryError) as exc:
                    if not (self.find_batch and _is_oom(exc) and self.batch_size > 1):
                        raise
                    self.batch_size //= 2
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    continue
                self.find_batch = False  # the first size that fits is kept for the rest
                done += len(batch)
                if self.progress:
                    self.progress("calibration samples", done, self.data.samples)
        if self.progress and self.layers:
            self.progress("calibrated layers", min(self.calls, self.layers), self.layers)


def forward_kwargs(model) -> dict[str, Any]:
    """Keep only the last position's logits: calibration needs none, and the vocab projection is costly."""
    import inspect

    parameters = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in parameters:
            return {name: 1}
    return {}
