"""The quantizer state that lets convert run without calibrating again, and the in-memory hand-off.

Saved into <workdir>/modelopt-state/:
- modelopt_state.pth: `mto.modelopt_state(model)` (which modules became quantized, their configs);
- quantizer_state.safetensors: every tensor of every quantizer (the calibrated amax values);
- weights.safetensors: only when the algorithm changes weights (AWQ, SmoothQuant, GPTQ);
- source.json: which model (path, revision, dtype) the state belongs to.
`restore_quantized_model` loads the source model and applies the three files: the same
model, bit for bit, that calibration produced.

`export_preserving_weights` exists because modelopt 0.47's `export_hf_checkpoint` packs the
model's weights in place (the Parameters become uint8); a TRT-LLM export of that model
afterwards writes wrong block scales ([out, in/32], saturated). Seen here and caught by
verify. The context keeps the original Parameters and quantizer tensors and puts them
back, so convert can reuse the in-memory model.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

STATE_FILE = "modelopt_state.pth"
QUANTIZER_FILE = "quantizer_state.safetensors"
WEIGHTS_FILE = "weights.safetensors"
SOURCE_FILE = "source.json"
# Calibration algorithms that only set quantizer amax; the others rewrite weights too.
AMAX_ONLY_ALGORITHMS = (None, "max", "mse", "local_hessian")


def _is_quantizer_tensor(name: str) -> bool:
    return any(part.endswith("quantizer") for part in name.split(".")[:-1])


def quantizer_tensors(model) -> dict[str, Any]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if _is_quantizer_tensor(k)}


def save_state(model, directory: Path, source: dict[str, Any], algorithm: str | None) -> None:
    """Write the files that restore `model`'s quantization onto a fresh copy of the source model."""
    import modelopt.torch.opt as mto
    import torch
    from safetensors.torch import save_file

    torch.save(mto.modelopt_state(model), directory / STATE_FILE)
    save_file(quantizer_tensors(model), str(directory / QUANTIZER_FILE))
    if algorithm not in AMAX_ONLY_ALGORITHMS:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
                   if not _is_quantizer_tensor(k)}
        save_file(weights, str(directory / WEIGHTS_FILE))
    (directory / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")


def read_source(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / SOURCE_FILE).read_text())
    except FileNotFoundError:
        raise UserError(f"{directory} holds no quantizer state; run `orchestrator quantize` first") from None


def restore_quantized_model(directory: Path, load_model) -> Any:
    """The calibrated model again: `load_model(source_info)` loads the source, the saved state goes on top."""
    import modelopt.torch.opt as mto
    from safetensors.torch import load_file

    source = read_source(directory)
    model = load_model(source)
    model = mto.restore_from_modelopt_state(model, modelopt_state=mto.load_modelopt_state(directory / STATE_FILE,
                                                                                          weights_only=False))
    tensors = load_file(str(directory / QUANTIZER_FILE))
    if (directory / WEIGHTS_FILE).is_file():
        tensors.update(load_file(str(directory / WEIGHTS_FILE)))
    result = model.load_state_dict(tensors, strict=False)
    if result.unexpected_keys:
        raise UserError(f"{directory}: quantizer state does not fit the model ({result.unexpected_keys[0]} ...); "
                        "the source model changed since quantize: run `orchestrator quantize --force`")
    missing = [k for k in result.missing_keys if _is_quantizer_tensor(k)]
    if missing:
        raise UserError(f"{directory}: quantizer state lacks {missing[0]}; run `orchestrator quantize --force`")
    return model


@contextlib.contextmanager
def export_preserving_weights(model) -> Iterator[None]:
    """Run an export that mutates `model` in place, then give the model back as it was."""
    import torch

    parameters = {name: dict(module._parameters) for name, module in model.named_modules()}
    buffers = {name: dict(module._buffers) for name, module in model.named_modules()}
    quantizers = {k: v.detach().clone() for k, v in model.state_dict().items() if _is_quantizer_tensor(k)}
    try:
        yield
    finally:
        for name, module in model.named_modules():
            if name in parameters:
                module._parameters.clear()
                module._parameters.update(parameters[name])
                module._buffers.clear()
                module._buffers.update(buffers[name])
        # The restored buffer objects may have been changed in place (fused-layer amax sync).
        with torch.no_grad():
            current = model.state_dict()
            for key, value in quantizers.items():
                current[key].copy_(value)


# modelopt collects excluded module names in a set, so their order in the exported JSON varies from
# run to run. Sorting them makes a re-run's checkpoint byte-identical (resume and fingerprints rely on it).
_EXCLUDE_LISTS = {
    "config.json": (("quantization", "exclude_modules"), ("quantization_config", "ignore")),
    "hf_quant_config.json": (("quantization", "exclude_modules"),),
}


def sort_exclude_lists(export_dir: Path) -> None:
    """Sort the excluded-module lists in an exported checkpoint's JSON files, in place."""
    for name, keys in _EXCLUDE_LISTS.items():
        path = export_dir / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        changed = False
        for section, key in keys:
            values = (data.get(section) or {}).get(key)
            if isinstance(values, list) and all(isinstance(v, str) for v in values):
                data[section][key] = sorted(values)
                changed = True
        if changed:
            path.write_text(json.dumps(data, indent=4) + "\n")
