"""Quantize the tiny Mixtral on CUDA with real modelopt; hold the exported NVFP4 bytes against modelopt's own math.

- our `nvfp4.dequantize` of every exported weight equals modelopt's fake-quantized weight
  (`weight_quantizer(weight)`, the CUDA path that CPU cannot run) within one bf16 rounding;
- our `nvfp4.quantize` and modelopt's `NVFP4QTensor.quantize` reproduce the exported packed
  weights and block scales bit for bit;
- the CUDA-made checkpoints pass verify (convert only under transformers 4.57.x).
Run: python -m pytest -q -s -m gpu tests/gpu  (prints the numbers for the issue note)
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
pytest.importorskip("modelopt.torch.quantization")

from orchestrator import nvfp4  # noqa: E402
from tests.integration.tiny_mixtral import build_tiny_mixtral, tiny_recipe, write_corpus  # noqa: E402

GLOBAL_DIVISOR = nvfp4.E2M1_MAX * nvfp4.E4M3_MAX


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.quantize import quantize

    root = tmp_path_factory.mktemp("gpu")
    model_dir = build_tiny_mixtral(root / "model")
    corpus = write_corpus(root / "calibration.txt")
    data = tiny_recipe(model_dir, corpus, root / "work")
    data["quantize"]["device"] = "cuda"
    data["quantize"]["calibration"]["batch_size"] = "auto"
    recipe = validate_recipe(data)
    result = quantize(recipe)
    print(f"\n[gpu] quantize on {torch.cuda.get_device_name(0)}: {result.duration_s:.2f} s "
          f"(calibration {result.calibration_s:.2f} s, export {result.export_s:.2f} s), auto batch "
          f"{result.calibration['batch_size']}, peak GPU {result.peak_gpu_mem_gb} GiB")
    return recipe, result


def _checkpoint_tensors(result) -> dict:
    from safetensors.torch import load_file

    tensors = {}
    for path in sorted(result.checkpoint_dir.glob("*.safetensors")):
        tensors.update(load_file(str(path)))
    return tensors


def _quantized_linears(model, tensors):
    """(name, module) of enabled NVFP4 weight quantizers whose weight the checkpoint holds under the same name."""
    for name, module in model.named_modules():
        quantizer = getattr(module, "weight_quantizer", None)
        weight = getattr(module, "weight", None)
        if quantizer is None or not quantizer.is_enabled or weight is None or weight.dim() != 2:
            continue
        if f"{name}.weight_scale" in tensors:
            yield name, module


def test_dequantized_export_equals_modelopt_fake_quant(quantized):
    _, result = quantized
    tensors = _checkpoint_tensors(result)
    compared, exact, total, worst = 0, 0, 0, 0.0
    for name, module in _quantized_linears(result.model, tensors):
        packed = tensors[f"{name}.weight"].numpy()
        scales = tensors[f"{name}.weight_scale"].view(torch.uint8).numpy()
        scale_2 = tensors[f"{name}.weight_scale_2"].item()
        ours = torch.from_numpy(nvfp4.dequantize(packed, scales, scale_2))
        quantizer = module.weight_quantizer
        saved = quantizer._amax.detach().clone()
        try:
            # The export shares one global scale across fused q/k/v and w1/w3; fake-quant with that one.
            # (amax is kept in the model dtype; scale_2 * 6 * 448 rounds back to the exported amax.)
            quantizer._amax.data.copy_(torch.tensor(scale_2 * GLOBAL_DIVISOR).reshape(saved.shape))
            with torch.no_grad():
                fake = quantizer(module.weight).float().cpu()  # bf16 values, held as fp32
        finally:
            quantizer._amax.data.copy_(saved)
        ours_rounded = ours.to(module.weight.dtype).float()
        # modelopt's CUDA fake quant is a Triton kernel with approximate division: values that sit on an
        # E2M1 rounding midpoint can land one code away from the exported (NVFP4QTensor) value. So a few
        # values may differ, each by at most one E2M1 step (2 x the block's scale at the top of the range).
        differ = fake != ours_rounded
        step_bound = 2.0 * (fake.abs().amax() / 6.0)
        assert float((fake - ours_rounded).abs().max()) <= float(step_bound) + 1e-6, name
        worst = max(worst, float(differ.float().mean()))
        exact += int((~differ).sum())
        total += fake.numel()
        compared += 1
    print(f"\n[gpu] fake-quant vs nvfp4.dequantize: {compared} linears, {exact}/{total} values bit-equal, "
          f"worst layer {worst:.4%} differ")
    assert compared >= 4 * 2  # at least the attention projections of both layers
    assert (total - exact) / total < 0.01


def test_packing_is_bit_exact_with_the_export_and_nvfp4qtensor(quantized):
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    _, result = quantized
    tensors = _checkpoint_tensors(result)
    compared = 0
    for name, module in _quantized_linears(result.model, tensors):
        exported = tensors[f"{name}.weight"].numpy()
        exported_scales = tensors[f"{name}.weight_scale"].view(torch.uint8).numpy()
        scale_2 = tensors[f"{name}.weight_scale_2"]
        weight = module.weight.detach()
        qtensor, theirs_scales, _ = NVFP4QTensor.quantize(weight.clone(), 16, weights_scaling_factor_2=scale_2.cuda())
        ours, ours_scales, _ = nvfp4.quantize(weight.float().cpu().numpy(), weight_scale_2=scale_2.item())
        assert np.array_equal(qtensor._quantized_data.cpu().numpy(), exported), name
        assert np.array_equal(theirs_scales.view(torch.uint8).cpu().numpy(), exported_scales), name
        assert np.array_equal(ours, exported) and np.array_equal(ours_scales, exported_scales), name
        compared += 1
    rng = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(4):
        weight = torch.randn(256, 512, device="cuda", generator=rng, dtype=torch.bfloat16)
        qtensor, scales, scale_2 = NVFP4QTensor.quantize(weight.clone(), 16)
        # Same global scale for both (modelopt derives it on the GPU in its own precision; the packing and
        # block scales are what this test holds to bit-exactness).
        ours, ours_scales, _ = nvfp4.quantize(weight.float().cpu().numpy(), weight_scale_2=float(scale_2))
        assert np.array_equal(ours, qtensor._quantized_data.cpu().numpy())
        assert np.array_equal(ours_scales, scales.view(torch.uint8).cpu().numpy())
    print(f"\n[gpu] packing bit-exact on {compared} exported linears and 4 random tensors")


def test_cuda_checkpoints_pass_verify(quantized):
    import importlib.metadata

    from orchestrator.stages.convert import convert
    from orchestrator.stages.verify import verify_checkpoint

    recipe, result = quantized
    report = verify_checkpoint(result.checkpoint_dir)
    assert report.quant_algo == "NVFP4"
    provenance = json.loads((result.checkpoint_dir / "orchestrator.json").read_text())
    assert provenance["device"] == "cuda"
    if int(importlib.metadata.version("transformers").split(".")[0]) >= 5:
        pytest.skip("modelopt 0.47's TRT-LLM export needs transformers 4.57.x for Mixtral")
    start = time.perf_counter()
    converted = convert(recipe, model=result.model)
    print(f"\n[gpu] convert (in-memory model) {time.perf_counter() - start:.2f} s")
    assert verify_checkpoint(converted.checkpoint_dir).kind == "trtllm"
