"""Quantize a model larger than the GPU: weights stay in CPU memory, each decoder layer visits the GPU once.

`LayerStreamer` keeps the decoder layers' weights in CPU memory and the small rest
(embeddings, final norm, lm_head, rotary tables) on the GPU. A forward pre-hook on every
decoder layer brings that layer's weights to the GPU when it is called and sends back the
layers that are done, so at most `window` layers are on the GPU at once.

That alone is no faster than accelerate's offload when the whole model runs once per
batch (every layer crosses PCIe per batch: DESIGN.md measured 4.97 s per layer, ~15x
the in-memory rate). It pays off with modelopt's layerwise calibration, which already
works layer by layer: it captures layer k's inputs for *all* calibration batches, then
runs and calibrates layer k on them, then moves on. Under the streamer each layer's
weights therefore cross PCIe once for calibration (`with_layerwise` turns that mode on).

Export goes the same way: modelopt 0.47's `export_hf_checkpoint` has a streaming writer
for offloaded models that packs one decoder layer at a time and writes it straight to a
shard file. It recognises accelerate offload only, so `streamed_export` tells it, for
the duration of the call, that this model is offloaded and that the way to make a
decoder layer's weights readable is the streamer. The packing then runs on the GPU,
layer by layer, and the exported tensors are the ones modelopt's own writer produces.

Weights are swapped, not copied back: a parameter's `.data` points at a GPU copy while
the layer is resident and at the untouched CPU tensor afterwards. Calibration methods
that change weights (AWQ, SmoothQuant, GPTQ) set `writeback=True` and copy them back.
Pinned CPU memory makes the copies asynchronous and about twice as fast.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from orchestrator.errors import UserError

# Layers on the GPU at once. modelopt's layerwise step k runs layer k to capture layer k+1's
# inputs, then calibrates layer k: both are needed, and k+1 is needed again in step k+1.
DEFAULT_WINDOW = 2


def decoder_layers(model, purpose: str = "quantize.memory=stream",
                   instead: str = "quantize.memory=offload (accelerate)") -> Any:
    """The decoder layers modelopt's layerwise calibration and streaming export walk (one discovery for all).

    Also the units FSDP2 shards (quantize_fsdp.py); the error names `purpose` and what to use `instead`.
    """
    from modelopt.torch.quantization.utils.layerwise_calib import LayerActivationCollector

    layers = LayerActivationCollector.get_decoder_layers(model)
    if layers is None or len(layers) == 0:
        raise UserError(f"{purpose}: modelopt finds no decoder layers in {type(model).__name__}",
                        hint=f"use {instead} for this architecture")
    return layers


def with_layerwise(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """`config` with modelopt's layerwise calibration on (kept as is when it already is, or when None)."""
    if config is None:
        return None
    algorithm = config.get("algorithm") or "max"
    algorithm = {"method": algorithm} if isinstance(algorithm, str) else dict(algorithm)
    if (algorithm.get("layerwise") or {}).get("enable"):
        return config
    algorithm["layerwise"] = {**(algorithm.get("layerwise") or {}), "enable": True}
    streamed = copy.copy(config)
    streamed["algorithm"] = algorithm
    return streamed


class LayerStreamer:
    """Decoder layers live in CPU memory; each one is put on `device` while it runs (see the module docstring)."""

    def __init__(self, model, device: str, *, window: int = DEFAULT_WINDOW, writeback: bool = False):
        import torch

        self.model = model
        self.device = torch.device(device)
        self.window = window
        self.writeback = writeback
        self.layers = list(decoder_layers(model))
        self._index = {id(layer): i for i, layer in enumerate(self.layers)}
        # layer -> [(parameter, its CPU tensor)], least recently used first
        self._resident: OrderedDict[int, list[tuple[Any, Any]]] = OrderedDict()
        self._home: list[tuple[Any, Any]] = []  # the non-layer parameters moved to the GPU
        self._hooks: list[Any] = []
        self.loads = 0
        self.bytes_loaded = 0
        self.load_s = 0.0

    # -- placement ---------------------------------------------------------------------------------------

    def _layer_modules(self) -> set[int]:
        return {id(m) for layer in self.layers for m in layer.modules()}

    def _other_modules(self) -> Iterator[Any]:
        inside = self._layer_modules()
        return (m for m in self.model.modules() if id(m) not in inside)

    def _put(self, modules, device) -> list[tuple[Any, Any]]:
        """Point every parameter of `modules` at a copy on `device`; buffers are moved. Returns what to undo."""
        moved = []
        for module in modules:
            for parameter in module._parameters.values():
                if parameter is not None and parameter.device != device:
                    moved.append((parameter, parameter.data))
                    self.bytes_loaded += parameter.nbytes
                    parameter.data = parameter.data.to(device, non_blocking=True)
            for name, buffer in module._buffers.items():
                if buffer is not None and buffer.device != device:
                    module._buffers[name] = buffer.to(device, non_blocking=True)
        return moved

    def _send_back(self, modules, moved, writeback: bool) -> None:
        import torch

        cpu = torch.device("cpu")
        for parameter, home in moved:
            parameter.data = parameter.data.to(cpu) if writeback else home
        for module in modules:
            for name, buffer in module._buffers.items():
                # Quantizer amax and other buffers calibration creates on the GPU come home too.
                if buffer is not None and buffer.device != cpu:
                    module._buffers[name] = buffer.to(cpu)

    def load(self, index: int) -> None:
        """Layer `index` onto the device (no-op when it is there)."""
        if index in self._resident:
            return
        start = time.perf_counter()
        self._resident[index] = self._put(list(self.layers[index].modules()), self.device)
        self.loads += 1
        self.load_s += time.perf_counter() - start

    def evict(self, index: int) -> None:
        """Layer `index` back to CPU memory."""
        moved = self._resident.pop(index, None)
        if moved is not None:
            self._send_back(list(self.layers[index].modules()), moved, self.writeback)

    def release(self) -> None:
        """Every decoder layer back to CPU memory (the non-layer modules stay on the device)."""
        for index in list(self._resident):
            self.evict(index)

    def _before_layer(self, index: int) -> None:
        """Least recently used goes: in layerwise step k modelopt runs k, captures k+1, then replays k,
        so step k+1 (k+1 first) finds k+1 resident and sends k back."""
        if index in self._resident:
            self._resident.move_to_end(index)
            return
        while len(self._resident) >= self.window:
            self.evict(next(iter(self._resident)))
        self.load(index)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def attach(self) -> None:
        """Put the non-layer modules on the device and hook every decoder layer."""
        self._home = self._put(list(self._other_modules()), self.device)
        for index, layer in enumerate(self.layers):
            self._hooks.append(layer.register_forward_pre_hook(
                lambda _module, _args, i=index: self._before_layer(i)))

    def detach(self) -> None:
        """Remove the hooks and bring everything back to CPU memory: the model is whole again, on the CPU."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self.release()
        self._send_back(list(self._other_modules()), self._home, writeback=False)
        self._home = []
        # Whatever else was created on the device while attached (buffers of quantizers made after
        # attach, state restored by a caller's own context) comes home too: the model leaves whole.
        self._send_back(list(self.model.modules()), [], writeback=False)

    @contextlib.contextmanager
    def attached(self) -> Iterator[LayerStreamer]:
        self.attach()
        try:
            yield self
        finally:
            self.detach()

    def index_of(self, module) -> int | None:
        return self._index.get(id(module))

    @contextlib.contextmanager
    def materialized(self, index: int) -> Iterator[None]:
        """Layer `index` on the device for work that replaces its tensors (export); its state comes back as it was."""
        self._before_layer(index)
        modules = list(self.layers[index].modules())
        saved = [(m, dict(m._parameters), dict(m._buffers)) for m in modules]
        try:
            yield
        finally:
            for module, parameters, buffers in saved:
                module._parameters.clear()
                module._parameters.update(parameters)
                module._buffers.clear()
                module._buffers.update(buffers)
            moved = self._resident.pop(index, None)
            if moved is not None:
                self._send_back(modules, moved, writeback=False)

    def stats(self) -> dict[str, Any]:
        return {"layers": len(self.layers), "loads": self.loads, "gib_loaded": round(self.bytes_loaded / 2**30, 3),
                "load_s": round(self.load_s, 3), "window": self.window}


@contextlib.contextmanager
def streamed_export(model, streamer: LayerStreamer) -> Iterator[None]:
    """Make modelopt's `export_hf_checkpoint` take its layer-by-layer writer, materializing layers through `streamer`.

    Two modelopt 0.47 names are replaced for the duration: `has_accelerate_offload` (which
    picks the streaming writer) answers True for this model, and
    `enable_weight_access_and_writeback` (which that writer enters per decoder layer)
    loads the layer through the streamer. Anything else goes to modelopt's own functions.
    """
    from modelopt.torch.export import unified_export_hf
    from modelopt.torch.quantization.utils import core_utils

    if not (hasattr(unified_export_hf, "has_accelerate_offload")
            and hasattr(core_utils, "enable_weight_access_and_writeback")):
        raise UserError("quantize.memory=stream needs modelopt 0.47's streaming export "
                        "(export.unified_export_hf.has_accelerate_offload is missing)",
                        hint="install nvidia-modelopt 0.47.x, or use quantize.memory=offload")
    original_offloaded = unified_export_hf.has_accelerate_offload
    original_access = core_utils.enable_weight_access_and_writeback

    def offloaded(module) -> bool:
        return module is model or original_offloaded(module)

    @contextlib.contextmanager
    def access(module, root_model, name_to_module=None, writeback=True):
        index = streamer.index_of(module)
        if index is None:
            with original_access(module, root_model, name_to_module, writeback=writeback):
                yield
        else:
            with streamer.materialized(index):
                yield

    unified_export_hf.has_accelerate_offload = offloaded
    core_utils.enable_weight_access_and_writeback = access
    try:
        yield
    finally:
        unified_export_hf.has_accelerate_offload = original_offloaded
        core_utils.enable_weight_access_and_writeback = original_access
