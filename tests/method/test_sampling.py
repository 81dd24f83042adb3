"""The sampler: one and several steps, from x_T or from a ground-truth bridge state."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gtasr.method.precond import ConsistencyModel, c_skip
from gtasr.method.sampling import (
    fixed_noise,
    generator_noise,
    multistep_etas,
    sample,
)
from gtasr.method.schedule import upsample_lr


class ZeroBackbone(nn.Module):
    def forward(self, x: Tensor, c_noise: Tensor, y: Tensor) -> Tensor:
        return torch.zeros_like(x)


def noise(seed: int, shape=(2, 3, 16, 16)) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_one_step_with_zero_backbone_is_cskip_times_x_top(batch) -> None:
    # With F = 0, f(x, sigma, y) = c_skip(sigma) x with c_skip(1) = 0.25 / (10^2 + 0.25).
    model = ConsistencyModel(ZeroBackbone())
    y, eps = batch["y"], noise(0)
    y0 = upsample_lr(y)
    out = sample(model, y, y0, fixed_noise(eps))
    assert torch.allclose(out, (0.25 / (10.0**2 + 0.25) * (y0 + eps)).clamp(-1, 1), atol=1e-7)
    y0 = torch.full_like(eps, 0.5)
    out = sample(model, y, y0, fixed_noise(eps), [0.2])
    expected = c_skip(torch.tensor(0.2)) * (y0 + 0.2 * eps)
    assert torch.allclose(out, expected.clamp(-1, 1), atol=1e-7)


def test_given_x0_the_first_state_is_on_the_ground_truth_bridge(batch) -> None:
    model = ConsistencyModel(ZeroBackbone())
    x0, y, y0, eps = batch["x0"], batch["y"], batch["y0"], noise(1)
    out = sample(model, y, y0, fixed_noise(eps), [0.25], x0=x0)
    state = 0.75 * x0 + 0.25 * (y0 + eps)
    assert torch.allclose(out, (c_skip(torch.tensor(0.25)) * state).clamp(-1, 1), atol=1e-6)


def test_one_step_is_reproducible_and_in_range(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=4)).eval()
    y, y0 = batch["y"], batch["y0"]
    a = sample(model, y, y0, fixed_noise(noise(1)))
    b = sample(model, y, y0, fixed_noise(noise(1)))
    c = sample(model, y, y0, fixed_noise(noise(2)))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (2, 3, 16, 16) and a.abs().max() <= 1 and not a.requires_grad


def test_multistep_renoises_along_the_bridge_with_each_steps_noise(batch) -> None:
    # With F = 0 every step is f = c_skip(eta) * state: follow two steps by hand.
    model = ConsistencyModel(ZeroBackbone())
    y, y0 = batch["y"], batch["y0"]
    draws = {0: noise(5), 1: noise(6)}
    out = sample(model, y, y0, draws.__getitem__, [1.0, 0.25])
    first = (c_skip(torch.tensor(1.0)) * (y0 + draws[0])).clamp(-1, 1)
    state = 0.75 * first + 0.25 * (y0 + draws[1])
    assert torch.allclose(out, (c_skip(torch.tensor(0.25)) * state).clamp(-1, 1), atol=1e-6)


def test_generator_noise_is_fresh_at_every_step(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=4)).eval()
    y, y0 = batch["y"], batch["y0"]
    source = generator_noise(y0, torch.Generator().manual_seed(9))
    first, second = source(0), source(1)
    assert first.shape == y0.shape and not torch.equal(first, second)
    etas = multistep_etas(3)
    a = sample(model, y, y0, generator_noise(y0, torch.Generator().manual_seed(9)), etas)
    b = sample(model, y, y0, generator_noise(y0, torch.Generator().manual_seed(9)), etas)
    c = sample(model, y, y0, generator_noise(y0, torch.Generator().manual_seed(10)), etas)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_multistep_etas_and_bad_levels() -> None:
    assert multistep_etas(1) == (1.0,)
    assert multistep_etas(4) == (1.0, 0.75, 0.5, 0.25)
    assert multistep_etas(2, sigma_max=0.5) == (0.5, 0.25)
    with pytest.raises(ValueError):
        multistep_etas(0)
    model = ConsistencyModel(ZeroBackbone())
    y0 = torch.zeros(1, 3, 8, 8)
    for etas in ([], [0.0], [0.5, 1.0], [1.0, 1.0]):
        with pytest.raises(ValueError, match="decreasing"):
            sample(model, torch.zeros(1, 3, 2, 2), y0, fixed_noise(y0), etas)
