"""Our emulated forward from the exported files vs modelopt's own fake-quant forward of the same model, on CUDA.

For each format the test calibrates the shipped tiny Mixtral (trained; a random tiny
Mixtral when the assets are absent) with modelopt on the GPU, applies the scale changes
modelopt's export makes in place before it writes anything (`prepare_like_export`: MoE
input amax for idle experts, q/k/v and w1/w3 share one amax, gate/up safety sync), so the
in-memory quantizers hold exactly the scales that get written, takes modelopt's fake-quant
logits, exports the unified HF checkpoint, and runs `orchestrator.emulate`'s model built
from the exported files on the same tokens. Without that preparation the reference would
use w1/w3 scales that never ship (seen on CPU: modelopt 0.47 warns "mismatched
weight_scale_2 ... taking element-wise max").

Tolerances. The emulation repeats modelopt's elementwise math (same E4M3 block scales, same
E2M1 comparisons, same dtypes) in IEEE arithmetic; on the CPU, with modelopt's CUDA-only
block op swapped for ours, the logits are bit-equal. On the GPU modelopt's Triton kernel
divides with `div.full.f32` (within 2 ulp), so values that sit exactly on an E2M1 midpoint
(common: BF16 inputs over E4M3 scales give exact ties for ~0.2% of elements) can round the
other way: a coin flip of one E2M1 step. Modelled on the CPU as +-2 ulp on every division
(pessimistic), that moves a linear's output by 0.7% on average (max 2.0%) and, compounded
through 4 layers and the MoE routers, the logits by 6.7-7.3% (the quantization itself:
8.3-8.5%), the top-1 token at 10% of positions, and the perplexity by 0.6%. Logits of two
fake-quant forwards are chaotic (every coin flip feeds more), so they are reported, not
bounded tightly. The assertions:
(a) teacher-forced, every quantized linear run on exactly the input modelopt's saw:
    mean relative output error < 1e-2 and max < 3e-2 (a wrong scale, block layout or
    expert shows up as 10-100%);
(b) end to end: perplexity within 2% of modelopt's (the tightest shipped gate is 5%) and
    the same top-1 token at >= 80% of positions.

FP8 is compared in float32: modelopt's FP8 export divides a BF16 weight by a 0-dim FP32
scale, which torch keeps in BF16, so the scaled weight is rounded twice (BF16, then E4M3)
where its fake quant rounds once; about 1.6% of the tiny model's weights land one E4M3
step apart (seen on CPU). The emulation follows the exported file, which is what gets
deployed. In float32 both sides round once; what remains are 1-ulp differences of the
scales (modelopt multiplies by 448/amax, the file holds amax/448) that flip rare E4M3
roundings: on the CPU 0.02% mean / 1.1% max per linear, 1.1% on the logits.

Run: python -m pytest -q -s -m gpu tests/gpu/test_emulation_vs_modelopt.py  (prints the numbers)
Needs transformers 4.57.x (separate expert modules; transformers 5 fuses Mixtral's experts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
pytest.importorskip("modelopt.torch.quantization")
transformers = pytest.importorskip("transformers")
if int(transformers.__version__.split(".")[0]) >= 5:
    pytest.skip("the emulator needs transformers 4.57.x (transformers 5 fuses Mixtral experts); "
                "pip install 'transformers>=4.57,<4.58' 'huggingface_hub<1.0'", allow_module_level=True)

LINEAR_MEAN_RELATIVE_ERROR = 1e-2
LINEAR_MAX_RELATIVE_ERROR = 3e-2
PERPLEXITY_RELATIVE_ERROR = 2e-2
MIN_TOP1_AGREEMENT = 0.8
CASES = [("nvfp4", "none", "bfloat16"), ("nvfp4", "fp8", "bfloat16"), ("fp8", "none", "float32")]


def model_and_tokens(root: Path) -> tuple[Path, object, object]:
    """(model dir, calibration ids [32, 256], evaluation ids [16, 256]) — the shipped model's own text when present."""
    from orchestrator.models import builtin_model_dir

    model_dir = builtin_model_dir("builtin:tiny-mixtral")
    if (model_dir / "model.safetensors").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        calibration = tokenizer((model_dir / "corpus" / "calibration.txt").read_text())["input_ids"]
        heldout = tokenizer((model_dir / "corpus" / "heldout.txt").read_text())["input_ids"]
        return (model_dir, torch.tensor(calibration[:32 * 256]).view(32, 256),
                torch.tensor(heldout[:16 * 256]).view(16, 256))
    from tests.integration.tiny_mixtral import VOCAB_SIZE, build_tiny_mixtral

    generator = torch.Generator().manual_seed(0)
    return (build_tiny_mixtral(root / "model"), torch.randint(3, VOCAB_SIZE, (32, 256), generator=generator),
            torch.randint(3, VOCAB_SIZE, (16, 256), generator=generator))


def quant_config(model_dir: Path, fmt: str, kv_cache: str):
    """The config the pipeline would build for this format (orchestrator.stages.quant_config)."""
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.quant_config import build_quant_config

    recipe = validate_recipe({"name": "gpu-emulation", "model": {"source": str(model_dir)}, "platform": "cpu",
                              "quantize": {"format": fmt, "kv_cache": kv_cache}, "run": {"until": "convert"}})
    return build_quant_config(recipe)


def prepare_like_export(model, dtype) -> None:
    """The in-place amax changes of modelopt 0.47's `_export_transformers_checkpoint`, before its first write."""
    from modelopt.torch.export import unified_export_hf as export

    export._prepare_moe_inputs(model, dtype, False)
    export.requantize_resmooth_fused_llm_layers(model)
    export.sync_moe_gate_up_amax(model)
    export.sync_tied_input_amax(model, export.TiedWeightMap(model))


def relative_error(ours, reference) -> float:
    return float((ours - reference).norm() / reference.norm())


def nll_per_token(logits, ids):
    """Next-token negative log-likelihood of every position but the last, float64."""
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).double(),
                                             ids[:, 1:].reshape(-1), reduction="none")


def capture_linear_io(model, names):
    """Forward hooks recording every (input, output) of the named modules; returns (records, handles)."""
    records: dict[str, list] = {name: [] for name in names}
    handles = [model.get_submodule(name).register_forward_hook(
        lambda _m, args, out, n=name: records[n].append((args[0].detach().clone(), out.detach().clone())))
        for name in names]
    return records, handles


def compare(fmt: str, kv_cache: str, dtype_name: str, export_dir: Path, device: str = "cuda") -> dict:
    """Calibrate, take modelopt's fake-quant logits, export, take the emulation's logits; the numbers."""
    import modelopt.torch.quantization as mtq
    from modelopt.torch.export import export_hf_checkpoint
    from transformers import AutoModelForCausalLM

    from orchestrator.emulate.checkpoint import load_emulated_model
    from orchestrator.emulate.linear import EmulatedLinear

    dtype = getattr(torch, dtype_name)
    model_dir, calibration, evaluation = model_and_tokens(export_dir.parent)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    evaluation = evaluation.to(device)
    with torch.no_grad():
        original = model(evaluation).logits.float()

        def forward_loop(m):
            for batch in calibration.split(8):
                m(batch.to(device))

        model = mtq.quantize(model, quant_config(model_dir, fmt, kv_cache), forward_loop)
        prepare_like_export(model, dtype)
        linears = [n for n, m in model.named_modules() if getattr(getattr(m, "weight_quantizer", None),
                                                                     "is_enabled", False)]
        records, handles = capture_linear_io(model, linears)
        reference = model(evaluation).logits.float()
        for handle in handles:
            handle.remove()
    export_hf_checkpoint(model, dtype=dtype, export_dir=export_dir)
    del model
    emulated, report = load_emulated_model(export_dir, dtype, device)
    with torch.no_grad():
        ours = emulated(evaluation).logits.float()
        # Teacher-forced: each emulated linear on exactly the input modelopt's linear saw.
        layer_errors, equal, total = [], 0, 0
        for name, calls in records.items():
            module = emulated.get_submodule(name)
            assert isinstance(module, EmulatedLinear), name
            for x, y in calls:
                if x.numel() == 0:
                    continue
                y_ours = module(x)
                layer_errors.append(relative_error(y_ours.float(), y.float()))
                equal += int((y_ours == y).sum())
                total += y.numel()
    difference = (ours - reference).abs()
    nll = {key: nll_per_token(value, evaluation) for key, value in
           (("original", original), ("modelopt", reference), ("emulated", ours))}
    return {
        "format": fmt, "kv_cache": kv_cache, "dtype": dtype_name,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else device,
        "tokens": int(evaluation.numel()), "emulated_layers": report.layers,
        "kv_cache_emulated": report.kv_cache_emulated,
        "linear_calls": len(layer_errors), "linear_max_relative_error": max(layer_errors),
        "linear_mean_relative_error": sum(layer_errors) / len(layer_errors),
        "linear_bit_equal_outputs": equal / total,
        "relative_error": relative_error(ours, reference),
        "quantization_relative_error": relative_error(reference, original),
        "max_abs_error": float(difference.max()), "max_abs_logit": float(reference.abs().max()),
        "mean_abs_error": float(difference.mean()), "mean_abs_logit": float(reference.abs().mean()),
        "bit_equal_logits": float((ours == reference).float().mean()),
        "top1_agreement": float((ours.argmax(-1) == reference.argmax(-1)).float().mean()),
        "top1_agreement_unquantized": float((original.argmax(-1) == reference.argmax(-1)).float().mean()),
        "ppl_original": float(nll["original"].mean().exp()), "ppl_modelopt": float(nll["modelopt"].mean().exp()),
        "ppl_emulated": float(nll["emulated"].mean().exp()),
    }


@pytest.mark.parametrize(("fmt", "kv_cache", "dtype"), CASES, ids=[f"{f}-kv_{k}-{d}" for f, k, d in CASES])
def test_emulated_checkpoint_matches_modelopt_fake_quant(fmt, kv_cache, dtype, tmp_path, record_property):
    numbers = compare(fmt, kv_cache, dtype, tmp_path / "checkpoint-hf")
    print(f"\n[gpu-emulation] {json.dumps(numbers)}")
    for key, value in numbers.items():
        record_property(key, value)
    assert numbers["kv_cache_emulated"] == (kv_cache == "fp8")
    assert numbers["linear_mean_relative_error"] < LINEAR_MEAN_RELATIVE_ERROR
    assert numbers["linear_max_relative_error"] < LINEAR_MAX_RELATIVE_ERROR
    ppl_error = abs(numbers["ppl_emulated"] - numbers["ppl_modelopt"]) / numbers["ppl_modelopt"]
    assert ppl_error < PERPLEXITY_RELATIVE_ERROR
    assert numbers["top1_agreement"] >= MIN_TOP1_AGREEMENT
