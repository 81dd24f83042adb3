"""The CT-only baseline path equals stage1_objective with ta_weight 0 (value and gradient)."""

from __future__ import annotations

import torch

from gtasr.method.objectives import Stage1Config, stage1_objective
from gtasr.method.precond import ConsistencyModel
from gtasr.method.schedule import BridgeGrid
from gtasr.nets import build_network
from gtasr.perceptual import charbonnier
from gtasr.train.trainer import consistency_only_objective


def test_ct_only_objective_matches_stage1_with_zero_ta_weight() -> None:
    torch.manual_seed(0)
    model = ConsistencyModel(build_network("tiny"))
    x0 = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.nn.functional.avg_pool2d(x0, 4)
    y0 = torch.nn.functional.interpolate(y, scale_factor=4, mode="bicubic")
    grid = BridgeGrid.power_law(4, power=2.5)

    results = []
    for objective in ("ours", "reference"):
        model.zero_grad()
        gen = torch.Generator().manual_seed(3)
        if objective == "ours":
            total, parts = consistency_only_objective(model, x0, y, y0, grid, charbonnier, gen)
        else:
            total, parts = stage1_objective(
                model, x0, y, y0, grid, charbonnier, gen, Stage1Config(1.0, 0.0)
            )
        total.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((total.detach(), parts["ct"], grads))
    (ours, ct_ours, g_ours), (ref, ct_ref, g_ref) = results
    assert float(ours) > 0
    assert torch.equal(ours, ref) and torch.equal(ct_ours, ct_ref)
    assert all(torch.equal(a, b) for a, b in zip(g_ours, g_ref, strict=True))
