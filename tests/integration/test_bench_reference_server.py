"""The bench against the real CPU reference engine (`transformers serve`) on a tiny Mixtral built here.

Not a stand-in: transformers' own OpenAI-compatible server is started with the argv and
environment `orchestrator.stages.reference_server` gives the serve stage, and `orchestrator
bench` runs against it. The model (random weights) and its word-level tokenizer are built in the
test so that streamed text re-tokenizes to exactly the tokens generated.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.integration

OUTPUT_LEN, INPUT_LEN = 16, 24


def build_tiny_chat_mixtral(out: Path) -> Path:
    """A 2-layer, 4-expert Mixtral (random BF16 weights) with a word-level tokenizer and a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, MixtralConfig, MixtralForCausalLM, PreTrainedTokenizerFast

    from orchestrator.stages.bench.prompt import WORDS

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(WORDS)) + ["User:", "Assistant:"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        model_input_names=["input_ids", "attention_mask"],  # transformers serve fails on token_type_ids
        chat_template="{{ bos_token }}{% for m in messages %}User: {{ m['content'] }} {% endfor %}"
                      "{% if add_generation_prompt %}Assistant:{% endif %}",
    )
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = MixtralConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                           max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    model = MixtralForCausalLM(config).to(torch.bfloat16)
    with torch.no_grad():
        # Logit 0 for the special tokens, so greedy decoding picks a word: the server skips special
        # tokens when it detokenizes, and a stream-side count could not see them.
        model.lm_head.weight[: len(specials)] = 0
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3)
    model.save_pretrained(out)
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def reference_server(tmp_path_factory):
    """(recipe path, url): transformers serve on the tiny model, as the serve stage launches it."""
    pytest.importorskip("fastapi", reason="needs the serving extra: pip install 'transformers[serving]'")
    import httpx

    from orchestrator.recipe.loader import load_recipe
    from orchestrator.stages.reference_server import preload, reference_serve_argv, reference_serve_env

    root = tmp_path_factory.mktemp("reference")
    model_dir = build_tiny_chat_mixtral(root / "tiny-chat-mixtral")
    port = _free_port()
    data = yaml.safe_load((REPO / "recipes" / "tiny-mixtral-nvfp4-cpu.yaml").read_text())
    data["model"]["source"] = str(model_dir)
    # The shipped calibration/eval text belongs to the builtin model; these stages do not run here.
    data["quantize"]["calibration"]["dataset"] = "c4"
    data["eval"]["perplexity"]["dataset"] = "wikitext-2"
    data["serve"]["port"] = port
    data["workdir"] = str(root / "work")
    data["bench"] = {"concurrency": [1, 2], "input_len": INPUT_LEN, "output_len": OUTPUT_LEN,
                     "requests_per_level": 4, "warmup": 1, "request_timeout_s": 60, "budget_s": 240}
    recipe_path = root / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(data))
    argv = reference_serve_argv(load_recipe(recipe_path))
    log = open(root / "serve.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(argv, env={**os.environ, **reference_serve_env()}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (root / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(url + "/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "transformers serve did not answer /health in 180 s"
            time.sleep(0.5)
        preload(url, timeout_s=120)
        yield recipe_path, url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_bench_against_transformers_serve(cli, reference_server):
    recipe_path, url, _ = reference_server
    result = cli("bench", recipe_path)
    assert result.exit_code == 0, result.output
    assert "CPU reference engine (transformers serve)" in result.output

    data = json.loads((recipe_path.parent / "work" / "bench.json").read_text())
    assert data["complete"] is True
    assert data["api"] == "chat"  # transformers serve 4.57 has no /v1/completions
    assert data["output"]["fixed_length_method"].startswith("generation_config")
    assert data["output"]["count_method"].startswith("tokenizer")
    for level in data["levels"]:
        assert level["completed"] == 4 and level["errors"] == 0
        assert level["prompt_tokens_mean"] == INPUT_LEN
        assert level["output_tokens_mean"] == OUTPUT_LEN  # exactly N, measured from the stream
        assert level["ttft_ms"]["p50"] > 0 and level["tok_s_aggregate"] > 0
    assert data["headline"]["tokens_per_s_c1"] > 0
    assert (recipe_path.parent / "work" / "bench.png").is_file()


def test_bench_after_the_server_stopped_exits_2(cli, reference_server):
    recipe_path, _, proc = reference_server
    proc.terminate()
    proc.wait(timeout=20)
    result = cli("bench", recipe_path)
    assert result.exit_code == 2 and "nothing is listening" in result.output
