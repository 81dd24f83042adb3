"""One-step and multi-step samplers."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gtasr.method.precond import ConsistencyModel, c_skip
from gtasr.method.sampling import sample_multistep, sample_one_step
from gtasr.method.schedule import upsample_lr


class ZeroBackbone(nn.Module):
    def forward(self, x: Tensor, c_noise: Tensor, y: Tensor) -> Tensor:
        return torch.zeros_like(x)


def noise(seed: int, shape=(2, 3, 16, 16)) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_one_step_with_zero_backbone_is_cskip_times_x_top(batch) -> None:
    model = ConsistencyModel(ZeroBackbone())
    y, eps = batch["y"], noise(0)
    out = sample_one_step(model, y, eps)
    x_top = upsample_lr(y) + eps
    expected = (0.25 / (10.0**2 + 0.25) * x_top).clamp(-1, 1)
    assert torch.allclose(out, expected, atol=1e-7)
    # sigma_max and an explicit y0 are honoured
    y0 = torch.full_like(eps, 0.5)
    out = sample_one_step(model, y, eps, sigma_max=0.2, y0=y0)
    expected = c_skip(torch.tensor(0.2)) * (y0 + 0.2 * eps)
    assert torch.allclose(out, expected.clamp(-1, 1), atol=1e-7)


def test_one_step_is_seed_reproducible_and_in_range(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=4)).eval()
    a = sample_one_step(model, batch["y"], noise(1))
    b = sample_one_step(model, batch["y"], noise(1))
    c = sample_one_step(model, batch["y"], noise(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (2, 3, 16, 16) and a.abs().max() <= 1 and not a.requires_grad


def test_multistep_reproducible_and_reduces_to_one_step(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=4)).eval()
    y = batch["y"]
    etas = [0.0, 1 / 3, 2 / 3, 1.0]
    a = sample_multistep(model, y, etas, torch.Generator().manual_seed(9))
    b = sample_multistep(model, y, etas, torch.Generator().manual_seed(9))
    c = sample_multistep(model, y, etas, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)
    eps = noise(3)
    one = sample_multistep(model, y, [1.0], torch.Generator().manual_seed(0), eps=eps)
    assert torch.equal(one, sample_one_step(model, y, eps))
    with pytest.raises(ValueError):
        sample_multistep(model, y, [0.0], torch.Generator())


def test_multistep_renoises_along_the_bridge(batch) -> None:
    # With F = 0 every step is f = c_skip(eta) * state: follow two steps by hand.
    model = ConsistencyModel(ZeroBackbone())
    y, eps = batch["y"], noise(5)
    out = sample_multistep(model, y, [1.0, 0.25], torch.Generator().manual_seed(6), eps=eps)
    y0 = upsample_lr(y)
    first = (c_skip(torch.tensor(1.0)) * (y0 + eps)).clamp(-1, 1)
    eps2 = torch.randn(eps.shape, generator=torch.Generator().manual_seed(6))
    state = 0.75 * first + 0.25 * (y0 + eps2)
    assert torch.allclose(out, (c_skip(torch.tensor(0.25)) * state).clamp(-1, 1), atol=1e-6)
