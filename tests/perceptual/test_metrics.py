"""Behaviour of the perceptual metrics as losses, and of Charbonnier and Sobel."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from gtasr.perceptual import LPIPS, charbonnier, sobel_magnitude

METRICS = ("lpips_alex", "lpips_vgg", "dists")


def _batch(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, size, size, generator=generator) * 2 - 1
    b = (a + 0.4 * torch.randn(n, 3, size, size, generator=generator)).clamp(-1, 1)
    return a, b


@pytest.mark.parametrize("metric", METRICS)
def test_gradients_reach_inputs_but_not_weights(metric, request):
    module = request.getfixturevalue(metric)
    a, b = _batch(2)
    a.requires_grad_(True)
    values = module(a, b)
    assert values.shape == (2,)
    values.sum().backward()
    assert a.grad is not None
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert list(module.parameters()) == []
    assert all(not w.requires_grad and w.grad is None for w in module.buffers())


@pytest.mark.parametrize("metric", METRICS)
def test_stays_frozen_in_eval_mode_inside_a_training_parent(metric, request):
    module = request.getfixturevalue(metric)
    parent = nn.ModuleDict({"loss": module, "head": nn.Linear(2, 2)})
    parent.train()
    parent.requires_grad_(True)
    assert parent["head"].training
    assert not any(m.training for m in module.modules())
    # Only the parent's own layer is trainable; the metric's weights are out of reach.
    assert len(list(parent.parameters())) == 2
    assert not any(w.requires_grad for w in module.buffers())
    assert sum(w.numel() for w in module.buffers()) > 1000


@pytest.mark.parametrize("metric", METRICS)
def test_batch_equals_singles_and_zero_on_identical_inputs(metric, request):
    module = request.getfixturevalue(metric)
    a, b = _batch(3, seed=1)
    with torch.no_grad():
        together = module(a, b)
        singles = torch.cat([module(a[i : i + 1], b[i : i + 1]) for i in range(3)])
        same = module(a, a)
    torch.testing.assert_close(together, singles, rtol=0, atol=1e-6)
    assert together.min() > 0.01
    assert same.abs().max() < 1e-6


@pytest.mark.parametrize("metric", METRICS)
def test_bfloat16_autocast_on_cpu(metric, request):
    module = request.getfixturevalue(metric)
    a, b = _batch(2, seed=2)
    with torch.no_grad():
        full = module(a, b)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = module(a, b)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, full, rtol=0.01, atol=1e-3)


def test_rejects_bad_inputs(lpips_alex, dists):
    a, _ = _batch(1)
    for module in (lpips_alex, dists):
        with pytest.raises(ValueError, match="shapes differ"):
            module(a, a[..., :-1])
        with pytest.raises(ValueError, match="NCHW RGB"):
            module(a[:, :1], a[:, :1])
    with pytest.raises(ValueError, match="unknown LPIPS network"):
        LPIPS("squeeze")


def test_charbonnier_per_sample_values():
    a = torch.zeros(2, 3, 2, 2)
    b = torch.zeros(2, 3, 2, 2)
    b[0] = 3.0
    b[1, :, 0] = 3.0**0.5  # half the entries differ by sqrt(3), half by 0
    values = charbonnier(a, b, eps=1.0)
    # sample 0: sqrt(9 + 1); sample 1: (sqrt(3 + 1) + sqrt(0 + 1)) / 2
    torch.testing.assert_close(values, torch.tensor([10.0**0.5, 1.5]))
    torch.testing.assert_close(charbonnier(a, b)[0], torch.tensor(3.0))


def test_charbonnier_gradient_is_finite_at_zero_difference():
    a = torch.zeros(1, 3, 4, 4, requires_grad=True)
    charbonnier(a, torch.zeros(1, 3, 4, 4)).sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().max() == 0


def test_sobel_magnitude_of_ramps_and_constants():
    height, width, step = 5, 6, 0.25
    x = torch.zeros(2, 3, height, width)
    x[:, 0] = torch.arange(width) * step  # horizontal ramp
    x[:, 1] = 0.7  # constant
    x[:, 2] = (torch.arange(height) * step)[:, None]  # vertical ramp
    s = sobel_magnitude(x)
    assert s.shape == x.shape
    # Interior: central difference 2*step times the smoothing weights 1 + 2 + 1.
    torch.testing.assert_close(s[:, 0, :, 1:-1], torch.full((2, height, width - 2), 8 * step))
    # Replicate padding: one-sided difference (step) at the left and right borders.
    torch.testing.assert_close(s[:, 0, :, 0], torch.full((2, height), 4 * step))
    torch.testing.assert_close(s[:, 0, :, -1], torch.full((2, height), 4 * step))
    torch.testing.assert_close(s[:, 1], torch.full((2, height, width), 1e-6))
    torch.testing.assert_close(s[:, 2, 1:-1], torch.full((2, height - 2, width), 8 * step))
    torch.testing.assert_close(s[:, 2, 0], torch.full((2, width), 4 * step))


def test_sobel_diagonal_edge_and_gradient():
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 2, 2] = 1.0
    x.requires_grad_(True)
    s = sobel_magnitude(x, eps=0.0)
    # At the centre the single bright corner pixel gives gx = gy = 1.
    assert s[0, 0, 1, 1].item() == pytest.approx(2.0**0.5)
    sobel_magnitude(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_constant_target_side_gives_the_same_value_and_gradient(lpips_alex):
    """A target without grad takes the no-autograd path; results equal the joint pass."""
    g = torch.Generator().manual_seed(3)
    a = torch.rand(2, 3, 40, 40, generator=g) * 2 - 1
    b = torch.rand(2, 3, 40, 40, generator=g) * 2 - 1
    a_split = a.clone().requires_grad_(True)
    split = lpips_alex(a_split, b)
    split.sum().backward()
    a_joint = a.clone().requires_grad_(True)
    b_joint = b.clone().requires_grad_(True)
    joint = lpips_alex(a_joint, b_joint)
    joint.sum().backward()
    torch.testing.assert_close(split, joint, rtol=0, atol=1e-6)
    torch.testing.assert_close(a_split.grad, a_joint.grad, rtol=1e-5, atol=1e-8)
    assert split.grad_fn is not None


@pytest.mark.slow  # bf16 convolutions are emulated on CPUs without native bf16
def test_trunk_cast_once_matches_autocast_and_float32():
    # A trunk converted to bf16 once computes what autocast computes with per-call casts;
    # channels_last changes the layout only. Gradients reach the float32 inputs.
    reference = LPIPS("vgg")
    converted = LPIPS("vgg").set_compute(torch.bfloat16, channels_last=True)
    fp32_nhwc = LPIPS("vgg").set_compute(torch.float32, channels_last=True)
    a, b = _batch(2, seed=3)
    a.requires_grad_(True)
    with torch.no_grad():
        full = reference(a, b)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = reference(a, b)
        torch.testing.assert_close(fp32_nhwc(a, b), full, rtol=1e-5, atol=1e-6)
    low = converted(a, b)
    assert low.dtype == torch.float32 and converted.trunk.features[0].weight.dtype == torch.bfloat16
    torch.testing.assert_close(low.detach(), autocast, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(low.detach(), full, rtol=0.01, atol=1e-3)
    low.sum().backward()
    assert a.grad is not None and a.grad.dtype == torch.float32 and a.grad.abs().sum() > 0


def _dense_layout(tensor: torch.Tensor) -> str | None:
    """The layout ("nchw" or "nhwc") a 4-D tensor is dense in, if exactly one, else None."""
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
        return None
    nchw = tensor.is_contiguous()
    nhwc = tensor.is_contiguous(memory_format=torch.channels_last)
    return "nchw" if nchw and not nhwc else "nhwc" if nhwc and not nchw else None


class _LayoutMixes(TorchDispatchMode):
    """Records every computing op whose 4-D inputs are dense in different layouts (a slow CPU
    path). Copies are left out: converting a layout is what they are for."""

    CONVERSIONS = ("aten.copy_.default", "aten._to_copy.default", "aten.clone.default")

    def __init__(self) -> None:
        super().__init__()
        self.mixed: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        layouts = {_dense_layout(arg) for arg in args} - {None}
        if len(layouts) > 1 and str(func) not in self.CONVERSIONS:
            self.mixed.append(str(func))
        return func(*args, **(kwargs or {}))


def test_channels_last_trunk_never_mixes_layouts_forward_or_backward():
    # With a channels-last trunk the distance's backward pass must hand the trunk
    # channels-last gradients: an op mixing NCHW and NHWC operands runs many times slower.
    lpips = LPIPS("alex").set_compute(torch.float32, channels_last=True)
    a, b = _batch(2, seed=5)
    a.requires_grad_(True)
    with _LayoutMixes() as mode:
        lpips(a, b).sum().backward()
    assert mode.mixed == []
    assert a.grad is not None and a.grad.abs().sum() > 0
