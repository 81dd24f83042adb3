"""Consistency-model preconditioning (METHOD §2)."""

from __future__ import annotations

import math

import pytest
import torch

from gtasr.method.precond import ConsistencyModel, c_noise, c_out, c_skip


def approx(v: float):
    """float32 tolerance."""
    return pytest.approx(v, rel=1e-6)


def test_coefficients_match_method_formulas() -> None:
    sigma = torch.tensor([0.0, 0.05, 1 / 3, 1.0])
    s = sigma / 0.1
    assert torch.allclose(c_skip(sigma), 0.25 / (s**2 + 0.25))
    assert torch.allclose(c_out(sigma), s / torch.sqrt(s**2 + 0.25))
    # hand values at sigma = 1: s = 10
    assert c_skip(torch.tensor(1.0)).item() == approx(0.25 / 100.25)
    assert c_out(torch.tensor(1.0)).item() == approx(10 / math.sqrt(100.25))
    assert c_noise(torch.tensor(1.0, dtype=torch.float64)).item() == approx(math.log(1.002) / 4)
    assert c_skip(torch.tensor(0.0)).item() == 1.0 and c_out(torch.tensor(0.0)).item() == 0.0


def test_boundary_condition_is_bit_exact(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=3))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 3
    x[0, 0, 0, 0] = -0.0
    assert torch.equal(model(x, 0.0, batch["y"]), x)
    assert torch.equal(model(x, torch.zeros(2), batch["y"]), x)
    # mixed batch: sample 0 at sigma 0 is returned untouched, sample 1 is preconditioned
    mixed = model(x, torch.tensor([0.0, 0.4]), batch["y"])
    assert torch.equal(mixed[0], x[0])
    assert not torch.allclose(mixed[1], x[1])


def test_forward_is_cskip_x_plus_cout_f(make_backbone, batch) -> None:
    backbone = make_backbone(seed=1)
    model = ConsistencyModel(backbone)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    sigma = torch.tensor([0.2, 1.0])
    raw = backbone(x, torch.log(sigma + 0.002) / 4, batch["y"])
    s = (sigma / 0.1).reshape(-1, 1, 1, 1)
    expected = 0.25 / (s**2 + 0.25) * x + s / torch.sqrt(s**2 + 0.25) * raw
    assert torch.allclose(model(x, sigma, batch["y"]), expected, atol=1e-6)
    # a float sigma equals the same value repeated per sample
    assert torch.allclose(model(x, 0.2, batch["y"]), model(x, torch.tensor([0.2, 0.2]), batch["y"]))


def test_a_reduced_precision_backbone_takes_float32_and_keeps_the_preconditioning_float32(
    make_backbone, batch
) -> None:
    backbone = make_backbone(seed=2).to(torch.bfloat16)
    model = ConsistencyModel(backbone)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    sigma = torch.tensor([0.05, 1.0])
    out = model(x, sigma, batch["y"])
    assert out.dtype == torch.float32
    # the backbone sees bf16 inputs; c_skip x + c_out F is then formed in float32
    raw = backbone(x.bfloat16(), torch.log(sigma + 0.002) / 4, batch["y"].bfloat16()).float()
    s = (sigma / 0.1).reshape(-1, 1, 1, 1)
    expected = 0.25 / (s**2 + 0.25) * x + s / torch.sqrt(s**2 + 0.25) * raw
    assert torch.allclose(out, expected, atol=1e-6)


def test_precond_config_rebuilds(make_backbone) -> None:
    model = ConsistencyModel(make_backbone(), sigma_data=0.4, sigma_scale=0.2, noise_offset=0.01)
    cfg = model.precond_config()
    assert cfg == {"sigma_data": 0.4, "sigma_scale": 0.2, "noise_offset": 0.01}
    assert ConsistencyModel(make_backbone(), **cfg).precond_config() == cfg


def test_lr_anchor_adds_bicubic_weighted_by_one_minus_c_skip(make_backbone, batch) -> None:
    backbone = make_backbone(seed=3)
    plain, anchored = ConsistencyModel(backbone), ConsistencyModel(backbone, lr_anchor=True)
    y = batch["y"]
    x = torch.randn(y.shape[0], 3, 4 * y.shape[-2], 4 * y.shape[-1])
    y0 = torch.nn.functional.interpolate(y, scale_factor=4, mode="bicubic")
    for sigma in (0.05, 0.5, 1.0):
        expected = plain(x, sigma, y) + (1 - c_skip(torch.tensor(sigma))) * y0
        assert torch.allclose(anchored(x, sigma, y), expected, atol=1e-5)
    assert torch.equal(anchored(x, 0.0, y), x)  # the boundary condition still holds
    assert anchored.precond_config()["lr_anchor"] is True
    assert "lr_anchor" not in plain.precond_config()  # older model files stay as they were
    assert ConsistencyModel(backbone, **anchored.precond_config()).lr_anchor
