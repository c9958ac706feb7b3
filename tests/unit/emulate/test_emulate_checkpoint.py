"""load_emulated_model on hand-written unified-HF checkpoints of a tiny Mixtral (no modelopt needed).

The checkpoints are written from `orchestrator.nvfp4.quantize` in modelopt's layout, so the
loader's wiring (names, experts, excluded modules, scales, KV cache) is checked against a
reference built independently: the original model with its linears' weights swapped for
the dequantized ones and forward pre-hooks that fake-quantize their inputs.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from orchestrator import nvfp4  # noqa: E402
from orchestrator.emulate.activations import fp8_fake_quant, nvfp4_fake_quant  # noqa: E402
from orchestrator.errors import UserError  # noqa: E402

EXCLUDED = ("lm_head", "block_sparse_moe.gate")


def tiny_model(seed: int = 0):
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(seed)
    config = MixtralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, num_local_experts=2, num_experts_per_tok=2,
                           max_position_embeddings=64, tie_word_embeddings=False, architectures=["MixtralForCausalLM"])
    return MixtralForCausalLM(config).to(torch.bfloat16).eval()


def quantized_linears(model):
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.endswith(EXCLUDED)]


def write_checkpoint(model, directory, *, fp8: tuple[str, ...] = (), kv_cache: bool = False, extra=None,
                     drop: tuple[str, ...] = (), quant_algo: str = "NVFP4"):
    """Export `model` as modelopt lays out a unified HF checkpoint; input_scale from a fixed amax of 4."""
    from safetensors.torch import save_file

    tensors = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    for name in quantized_linears(model):
        weight = tensors.pop(f"{name}.weight").float()
        if name in fp8:
            scale = weight.abs().max() / 448.0
            tensors[f"{name}.weight"] = (weight / scale).to(torch.float8_e4m3fn)
            tensors[f"{name}.weight_scale"] = scale.reshape(())
            tensors[f"{name}.input_scale"] = torch.tensor(4.0 / 448.0)
            continue
        packed, scales, scale_2 = nvfp4.quantize(weight.numpy())
        tensors[f"{name}.weight"] = torch.from_numpy(packed)
        tensors[f"{name}.weight_scale"] = torch.from_numpy(scales).view(torch.float8_e4m3fn)
        tensors[f"{name}.weight_scale_2"] = torch.tensor(float(scale_2))
        tensors[f"{name}.input_scale"] = torch.tensor(4.0 / (6 * 448))
    if kv_cache:
        tensors["model.layers.0.self_attn.k_proj.k_scale"] = torch.tensor(0.5 / 448.0)
        tensors["model.layers.0.self_attn.v_proj.v_scale"] = torch.tensor(0.25 / 448.0)
    tensors.update(extra or {})
    for name in drop:
        tensors.pop(name)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(directory)
    (directory / "hf_quant_config.json").write_text(json.dumps({"quantization": {
        "quant_algo": quant_algo, "kv_cache_quant_algo": "FP8" if kv_cache else None, "group_size": 16,
        "exclude_modules": ["lm_head", "model.layers.0.block_sparse_moe.gate"]}}))
    return directory


def hooked_reference(model, checkpoint, fp8: tuple[str, ...] = ()):
    """The original model, dequantized weights swapped in, inputs fake-quantized by forward pre-hooks."""
    from safetensors.torch import load_file

    tensors = load_file(str(checkpoint / "model.safetensors"))
    for name in quantized_linears(model):
        module = model.get_submodule(name)
        if name in fp8:
            weight = tensors[f"{name}.weight"].float() * tensors[f"{name}.weight_scale"]
            quantize = fp8_fake_quant
        else:
            weight = torch.from_numpy(nvfp4.dequantize(
                tensors[f"{name}.weight"].numpy(), tensors[f"{name}.weight_scale"].view(torch.uint8).numpy(),
                float(tensors[f"{name}.weight_scale_2"])))
            quantize = nvfp4_fake_quant
        module.weight.data = weight.to(torch.bfloat16)
        scale = tensors[f"{name}.input_scale"]
        module.register_forward_pre_hook(lambda _m, args, q=quantize, s=scale: (q(args[0], s),))
    return model


@pytest.fixture
def ids():
    return torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(3))


def test_every_quantized_linear_is_emulated_and_matches_the_hooked_reference(tmp_path, ids):
    from orchestrator.emulate.checkpoint import load_emulated_model
    from orchestrator.emulate.linear import EmulatedLinear

    checkpoint = write_checkpoint(tiny_model(), tmp_path / "ckpt")
    emulated, report = load_emulated_model(checkpoint, torch.bfloat16, "cpu")
    names = quantized_linears(tiny_model())
    assert len(names) == 4 + 2 * 3  # q k v o + 2 experts x (w1 w2 w3)
    assert all(isinstance(emulated.get_submodule(n), EmulatedLinear) for n in names)
    assert isinstance(emulated.get_submodule("lm_head"), torch.nn.Linear)
    assert isinstance(emulated.get_submodule("model.layers.0.block_sparse_moe.gate"), torch.nn.Linear)
    assert report.layers == {"nvfp4/nvfp4": 10} and report.unquantized_linears == 2
    assert report.quant_algo == "NVFP4" and not report.kv_cache_emulated

    reference = hooked_reference(tiny_model(), checkpoint)
    with torch.no_grad():
        assert torch.equal(emulated(ids).logits, reference(ids).logits)


def test_fp8_layers_and_weight_only_layers(tmp_path, ids):
    from orchestrator.emulate.checkpoint import load_emulated_model

    fp8 = ("model.layers.0.self_attn.o_proj",)
    weight_only = "model.layers.0.block_sparse_moe.experts.1.w2"
    model = tiny_model()
    checkpoint = write_checkpoint(model, tmp_path / "ckpt", fp8=fp8, drop=(f"{weight_only}.input_scale",))
    emulated, report = load_emulated_model(checkpoint, torch.bfloat16, "cpu")
    assert report.layers == {"nvfp4/nvfp4": 8, "fp8/fp8": 1, "nvfp4/none": 1}
    layer = emulated.get_submodule(weight_only)
    x = torch.randn(3, 64).to(torch.bfloat16)
    assert torch.equal(layer.quantize_input(x), x)  # W4A16: the input is not touched
    assert "format=fp8" in repr(emulated.get_submodule(fp8[0]))


def test_fp8_kv_cache_fake_quantizes_keys_and_values(tmp_path, ids, monkeypatch):
    from orchestrator.emulate import activations
    from orchestrator.emulate.checkpoint import load_emulated_model

    checkpoint = write_checkpoint(tiny_model(), tmp_path / "ckpt", kv_cache=True)
    emulated, report = load_emulated_model(checkpoint, torch.bfloat16, "cpu")
    assert report.kv_cache_emulated and report.kv_cache_quant_algo == "FP8"
    seen = []
    real = activations.fp8_fake_quant
    monkeypatch.setattr(activations, "fp8_fake_quant", lambda x, s: seen.append((tuple(x.shape), float(s))) or real(x, s))
    with torch.no_grad():
        quantized_kv = emulated(ids).logits
    # keys then values of the one layer, [batch, kv heads, seq, head_dim], after RoPE
    assert seen == [((2, 1, 24, 16), pytest.approx(0.5 / 448)), ((2, 1, 24, 16), pytest.approx(0.25 / 448))]
    plain, _ = load_emulated_model(checkpoint, torch.bfloat16, "cpu", kv_cache=False)
    with torch.no_grad():
        assert not torch.equal(plain(ids).logits, quantized_kv)


def test_missing_and_unknown_tensors_are_user_errors(tmp_path):
    from orchestrator.emulate.checkpoint import load_emulated_model

    missing = write_checkpoint(tiny_model(), tmp_path / "missing", drop=("model.norm.weight",))
    with pytest.raises(UserError, match="missing.*model.norm.weight"):
        load_emulated_model(missing, torch.bfloat16)
    unknown = write_checkpoint(tiny_model(), tmp_path / "unknown", extra={"model.layers.7.mystery": torch.ones(2)})
    with pytest.raises(UserError, match="no place for.*mystery"):
        load_emulated_model(unknown, torch.bfloat16)
    nvfp4_without_global = write_checkpoint(tiny_model(), tmp_path / "noglobal",
                                            drop=("model.layers.0.self_attn.q_proj.weight_scale_2",))
    with pytest.raises(UserError, match="q_proj: a U8"):
        load_emulated_model(nvfp4_without_global, torch.bfloat16)


def test_unsupported_format_and_missing_checkpoint(tmp_path):
    from orchestrator.emulate.checkpoint import load_emulated_model

    int4 = write_checkpoint(tiny_model(), tmp_path / "int4", quant_algo="W4A16_AWQ")
    with pytest.raises(UserError, match="W4A16_AWQ cannot be emulated"):
        load_emulated_model(int4, torch.bfloat16)
    with pytest.raises(UserError, match="no config.json"):
        load_emulated_model(tmp_path / "nothing", torch.bfloat16)
