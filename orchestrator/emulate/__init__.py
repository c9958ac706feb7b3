"""Run an exported quantized checkpoint exactly as modelopt's fake quantization would, on any hardware.

Nothing here needs a Blackwell GPU or TensorRT-LLM: a quantized linear of the exported
unified-HF checkpoint becomes an `EmulatedLinear` whose weight is the checkpoint's NVFP4
(or FP8) weight dequantized with its own scales, and whose input goes through the same
activation fake quantization modelopt applies (per-16 block E4M3 scales under the
exported `input_scale`, E2M1 rounding). The rest of the model is the original
transformers architecture with the checkpoint's unquantized tensors.

Compute dtype: the model's own (BF16 for the shipped recipes), because that is what
modelopt's fake-quant forward runs in: its quantizers compute in float32 and hand back
the input's dtype, and the GEMM, norms, attention and routers run in BF16. FP32 works too
(`load_emulated_model(..., dtype=torch.float32)`), but then everything around the
quantizers is more precise than the model modelopt calibrated and exported.

- `activations`: the activation fake quantization (NVFP4, FP8), torch, CPU or CUDA.
- `linear`: `EmulatedLinear` and the input cache its siblings share.
- `kv_cache`: FP8 KV-cache fake quantization through transformers' attention interface.
- `checkpoint`: read the exported files and build the emulated model.
"""

from __future__ import annotations
