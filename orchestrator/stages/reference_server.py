"""The CPU reference engine for `platform: cpu`: `transformers serve`, transformers' own OpenAI-compatible server.

It exists so that `make serve` and `orchestrator bench` work on a laptop and in CI. It is
labelled everywhere as REFERENCE_LABEL: it tests the endpoint tooling, it is not TensorRT-LLM
and its numbers say nothing about TensorRT-LLM performance.

What transformers 4.57.6's `transformers serve` is (read from transformers/commands/serving.py
and checked by running it):
- endpoints: POST /v1/chat/completions, POST /v1/responses, POST /v1/audio/transcriptions,
  GET /v1/models, GET /health. There is no /v1/completions (404), so the bench uses chat.
- it takes no model at start-up: each request names one and it is loaded on first use
  (and unloaded after --model_timeout idle seconds). `--force_model DIR` makes every request use
  our local directory whatever name it sends; /health answers before the model is loaded, so
  `preload` sends one request to load it.
- every chat answer is streamed (SSE), text chunks at word boundaries (TextIteratorStreamer),
  no usage and no `data: [DONE]`; unknown request keys (ignore_eos, min_tokens) are refused with
  422, but a JSON `generation_config` ({"min_new_tokens": N}) is honoured.
- GET /v1/models lists a fixed set of hub models and, unless HF_HUB_OFFLINE=1, asks the hub about
  each: hence `reference_serve_env`.
- a generate() failure in its worker thread leaves the stream open forever (seen with a tokenizer
  that returns token_type_ids): the bench's per-request timeout is what ends such a request.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from orchestrator.errors import StageFailed, UserError

REFERENCE_LABEL = "CPU reference engine (transformers serve) — for testing, not TensorRT-LLM"
HEALTH_PATH = "/health"
# Seconds the server keeps an idle model loaded; effectively "for the server's lifetime".
MODEL_TIMEOUT_S = 10_000_000

Weights = Literal["original", "dequantized"]


def original_model_dir(recipe) -> Path:
    """The original (unquantized) model directory: the builtin model, a local dir, or the fetched snapshot."""
    from orchestrator.stages.fetch import resolve_model

    return resolve_model(recipe, download=False).path


def dequantized_model_dir(recipe) -> Path:
    """Where the NVFP4 checkpoint dequantized to BF16 (no quantization_config) is expected.

    transformers cannot load the ModelOpt NVFP4 checkpoint itself (its quantization_config names
    a method transformers 4.57 does not have), so this must be a plain BF16 export of the
    dequantized weights, written by the reference dequantize helper (orchestrator.nvfp4).
    """
    return recipe.resolved_workdir / "reference-bf16"


def reference_model_dir(recipe, weights: Weights = "original") -> Path:
    """The directory the reference engine serves, checked to hold a model."""
    if weights == "original":
        path, fix = original_model_dir(recipe), "run `orchestrator run RECIPE` (or the fetch stage) first"
    elif weights == "dequantized":
        path, fix = dequantized_model_dir(recipe), "export the dequantized BF16 reference model first"
    else:
        raise UserError(f"reference weights {weights!r}: choose 'original' or 'dequantized'")
    if not (path / "config.json").is_file():
        raise UserError(f"the CPU reference engine has no model to serve: {path}/config.json is missing", hint=fix)
    if "@" in str(path):
        # transformers serve splits the model name at '@' into id and revision.
        raise UserError(f"model path {path} contains '@', which transformers serve reads as a revision",
                        hint="move the workdir to a path without '@'")
    return path


def reference_serve_argv(recipe, weights: Weights = "original", model_dir: Path | None = None) -> list[str]:
    """argv of the CPU reference engine serving `weights` (or `model_dir`) at recipe.serve host:port."""
    model = Path(model_dir) if model_dir is not None else reference_model_dir(recipe, weights)
    return [
        sys.executable, "-m", "transformers.commands.transformers_cli", "serve",
        "--force_model", str(Path(model).resolve()),
        "--host", recipe.serve.host,
        "--port", str(recipe.serve.port),
        "--device", "cpu",
        "--dtype", recipe.model.dtype.value,
        "--model_timeout", str(MODEL_TIMEOUT_S),
        "--log_level", "info",
    ]


def reference_serve_env() -> dict[str, str]:
    """Environment of the reference engine: offline, so neither model loading nor /v1/models reach the hub."""
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def preload(url: str, timeout_s: float = 300.0) -> float:
    """Load the model by sending one 1-token chat request (transformers serve loads lazily); return seconds."""
    import time

    import httpx

    body = {"model": "reference", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 1,
            "stream": True}
    start = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as client, \
                client.stream("POST", url.rstrip("/") + "/v1/chat/completions", json=body) as response:
            text = "".join(response.iter_text())
    except httpx.HTTPError as exc:
        raise StageFailed(f"the CPU reference engine at {url} did not load its model: {exc}") from None
    if response.status_code != 200 or '"error"' in text:
        raise StageFailed(f"the CPU reference engine at {url} could not load its model: "
                          f"HTTP {response.status_code} {text.strip()[:300]}")
    return time.perf_counter() - start
