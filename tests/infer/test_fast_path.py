"""The fast inference path: weights cast once, channels-last, and its accuracy against plain fp32.

Plain fp32 is the model as :func:`gtasr.load_model` returns it, called under inference mode
(contiguous tensors, float32 weights): the path every fast variant must agree with, on the
same input and noise, to >= 45 dB for float32 and >= 35 dB for bf16 and fp16.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from gtasr.infer.backends import TorchDenoiser
from gtasr.method.precond import ConsistencyModel
from gtasr.nets import preset_config

CPU = torch.device("cpu")
LR = 16
PAPER_LAYOUT = {
    **preset_config("paper"),
    "base_channels": 32,
    "blocks_per_level": 1,
    "emb_channels": 64,
    "swin_dim": 32,
    "swin_heads": 2,
    "head_channels": 32,
}
"""The paper preset's layout (four levels, Swin at each, nearest head) at a fraction of its size."""
FLOORS = {"fp32": 45.0, "bf16": 35.0, "fp16": 35.0}


@pytest.fixture(scope="module")
def models(
    tiny_model: ConsistencyModel, make_random_model: Callable[..., ConsistencyModel]
) -> dict[str, ConsistencyModel]:
    return {"tiny": tiny_model, "paper-layout": make_random_model(PAPER_LAYOUT, seed=3)}


def _inputs(seed: int = 0) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    y = torch.rand((1, 3, LR, LR), generator=generator) * 2 - 1
    x = torch.randn((1, 3, 4 * LR, 4 * LR), generator=generator)
    return x, y


def _plain_fp32(model: nn.Module, x: Tensor, y: Tensor, sigma: float) -> Tensor:
    with torch.inference_mode():
        return model(x, sigma, y)


def _psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of two images on [-1, 1] (peak-to-peak 2)."""
    mse = float((a.double() - b.double()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("name", ["tiny", "paper-layout"])
def test_fast_path_matches_plain_fp32(
    models: dict[str, ConsistencyModel], name: str, precision: str, one_thread: None
) -> None:
    model = models[name]
    x, y = _inputs()
    fast = TorchDenoiser(copy.deepcopy(model), CPU, precision)
    for sigma in (1.0, 0.25):
        reference = _plain_fp32(model, x, y, sigma)
        out = fast(x, sigma, y)
        assert out.dtype == torch.float32 and out.shape == reference.shape
        assert _psnr(out, reference) >= FLOORS[precision], (name, precision, sigma)


def test_a_model_stored_in_bf16_runs_as_stored(
    models: dict[str, ConsistencyModel], one_thread: None
) -> None:
    model = models["tiny"]
    x, y = _inputs(1)
    stored = TorchDenoiser(copy.deepcopy(model).to(torch.bfloat16), CPU)
    assert stored.model.backbone.conv_in.weight.dtype == torch.bfloat16
    out = stored(x, 1.0, y)
    assert out.dtype == torch.float32
    assert _psnr(out, _plain_fp32(model, x, y, 1.0)) >= FLOORS["bf16"]


def test_weights_are_cast_once_and_calls_run_channels_last_without_autocast(
    models: dict[str, ConsistencyModel], one_thread: None
) -> None:
    denoiser = TorchDenoiser(copy.deepcopy(models["tiny"]), CPU, "bf16")
    convs = [m for m in denoiser.model.modules() if isinstance(m, nn.Conv2d)]
    channels_last = torch.channels_last
    for conv in convs:
        assert conv.weight.dtype == torch.bfloat16
        assert conv.weight.is_contiguous(memory_format=channels_last)
    storage = [conv.weight.data_ptr() for conv in convs]
    seen: list[tuple[torch.dtype, bool, bool]] = []

    def record(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        inp = args[0]
        layout = inp.is_contiguous(memory_format=channels_last)
        seen.append((inp.dtype, layout, torch.is_autocast_enabled("cpu")))

    hooks = [conv.register_forward_pre_hook(record) for conv in convs]
    x, y = _inputs(2)
    try:
        denoiser(x, 1.0, y)
        denoiser(x, 0.5, y)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(seen) == 2 * len(convs)
    assert set(seen) == {(torch.bfloat16, True, False)}
    assert [conv.weight.data_ptr() for conv in convs] == storage
