"""Forward process: power-law grids, the bridge, y0 upsampling, Stage I's N schedule."""

from __future__ import annotations

import pytest
import torch

from gtasr.method.schedule import (
    STAGE1_POWER,
    BridgeGrid,
    bridge,
    power_grid,
    stage1_num_intervals,
    upsample_lr,
)


def test_stage1_grid_n4_matches_method_values() -> None:
    grid = power_grid(4, power=STAGE1_POWER)
    expected = torch.tensor([0, 0.0313, 0.1768, 0.4871, 1.0], dtype=grid.dtype)
    assert torch.allclose(grid, expected, atol=5e-5)
    # exact definition (i / N) ** 2.5
    assert grid[1].item() == pytest.approx(0.25**2.5, abs=1e-15)
    assert grid[0].item() == 0.0 and grid[-1].item() == 1.0


def test_stage1_grid_n3_and_stage2_grid() -> None:
    g3 = power_grid(3)
    assert torch.allclose(g3, torch.tensor([0, 0.0642, 0.3629, 1.0], dtype=g3.dtype), atol=5e-5)
    g2 = power_grid(3, power=1.0)  # Stage II
    assert torch.allclose(g2, torch.tensor([0, 1 / 3, 2 / 3, 1.0], dtype=g2.dtype), atol=1e-15)
    with pytest.raises(ValueError):
        power_grid(0)


def test_bridge_grid_scales_only_the_noise_by_sigma_max() -> None:
    grid = BridgeGrid.power_law(3, power=1.0, sigma_max=0.5)
    assert grid.num_intervals == 3
    assert grid.shift == pytest.approx((0, 1 / 3, 2 / 3, 1))
    assert grid.noise == pytest.approx((0, 1 / 6, 1 / 3, 0.5))


def test_bridge_endpoints_and_midpoint() -> None:
    g = torch.Generator().manual_seed(0)
    x0, y0, eps = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))
    assert torch.equal(bridge(x0, y0, eps, 0.0), x0)
    assert torch.allclose(bridge(x0, y0, eps, 1.0), y0 + eps)
    assert torch.allclose(bridge(x0, y0, eps, 0.25), 0.75 * x0 + 0.25 * (y0 + eps), atol=1e-6)
    # per-sample eta and a separate noise level
    eta = torch.tensor([0.0, 0.5])
    out = bridge(x0, y0, eps, eta, sigma=torch.tensor([0.0, 0.1]))
    assert torch.equal(out[0], x0[0])
    assert torch.allclose(out[1], 0.5 * x0[1] + 0.5 * y0[1] + 0.1 * eps[1], atol=1e-6)


def keys_matrix(lr: int, scale: int = 4, a: float = -0.75) -> torch.Tensor:
    """HR x LR matrix of cubic convolution (Keys, a = -0.75) with half-pixel centres.

    HR pixel j samples the LR position u = (j + 0.5) / scale - 0.5 from its four neighbours,
    indices clamped at the border (the edge pixel is repeated).
    """

    def kernel(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0

    matrix = torch.zeros(lr * scale, lr, dtype=torch.float64)
    for j in range(lr * scale):
        u = (j + 0.5) / scale - 0.5
        base = int(torch.floor(torch.tensor(u)))
        for i in range(base - 1, base + 3):
            matrix[j, min(max(i, 0), lr - 1)] += kernel(u - i)
    return matrix


def test_upsample_lr_is_clamped_bicubic_x4() -> None:
    y = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y[0, 0, 2, 2], y[0, 0, 2, 3] = 1.0, -1.0  # a hard edge: bicubic overshoots here
    rows, cols = keys_matrix(5), keys_matrix(6)
    bicubic = rows @ y.double() @ cols.T
    assert bicubic.abs().max() > 1.05
    up = upsample_lr(y)
    assert up.shape == (2, 3, 20, 24)
    assert torch.allclose(up.double(), bicubic.clamp(-1, 1), atol=1e-6)


def test_stage1_n_schedule_halves() -> None:
    total = 1000
    assert [stage1_num_intervals(i, total) for i in (0, 499, 500, 999, 1500)] == [4, 4, 3, 3, 3]
    # 11 iterations: two phases of floor(11 / 2) = 5
    assert stage1_num_intervals(4, 11) == 4 and stage1_num_intervals(5, 11) == 3
