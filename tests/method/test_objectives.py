"""Stage I and Stage II losses and their terms (METHOD §4, §5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gtasr.method.loss import Stage1Loss, Stage2Loss
from gtasr.method.objectives import (
    consistency_pair,
    draw_index,
    draw_noise,
    frozen_copy,
    trajectory_alignment_loss,
)
from gtasr.method.precond import ConsistencyModel
from gtasr.method.schedule import BridgeGrid, GridSchedule

STAGE1 = BridgeGrid.power_law(4, power=2.5)
STAGE2 = BridgeGrid.power_law(3, power=1.0)
STAGE1_SCHEDULE = GridSchedule((4,), iterations=1, power=2.5)
STAGE2_SCHEDULE = GridSchedule((3,), iterations=1, power=1.0)


def l1(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample mean absolute difference."""
    return (a - b).abs().mean(dim=(1, 2, 3))


def sobel(x: Tensor) -> Tensor:
    """Per-channel Sobel magnitude sqrt(gx^2 + gy^2 + 1e-12), edge pixels repeated (METHOD §5)."""
    kx = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=x.dtype)
    c = x.shape[1]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx.expand(c, 1, 3, 3), groups=c)
    gy = F.conv2d(padded, kx.t().expand(c, 1, 3, 3), groups=c)
    return torch.sqrt(gx**2 + gy**2 + 1e-12)


class ConvFeatureDistance(nn.Module):
    """A tiny frozen 'perceptual' distance: squared difference of random conv features."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(99)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            for param in self.conv.parameters():
                param.copy_(torch.randn(param.shape, generator=g))
        self.requires_grad_(False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return (torch.tanh(self.conv(a)) - torch.tanh(self.conv(b))).pow(2).mean(dim=(1, 2, 3))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_consistency_target_at_n0_is_x0(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=2, dropout=0.5)).train()
    x0, y, y0 = batch["x0"], batch["y"], batch["y0"]
    eps = draw_noise(x0, gen(1))
    x_hat, target = consistency_pair(model, x0, y, y0, STAGE1, 0, eps)
    assert torch.equal(target, x0)
    assert x_hat.requires_grad and not target.requires_grad


def test_consistency_target_is_online_net_in_eval_mode(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=2, dropout=0.5)).train()
    x0, y, y0 = batch["x0"], batch["y"], batch["y0"]
    eps = draw_noise(x0, gen(1))
    _, target = consistency_pair(model, x0, y, y0, STAGE1, 2, eps)
    assert model.training and model.backbone.drop.training  # mode restored
    x2 = (1 - STAGE1.shift[2]) * x0 + STAGE1.shift[2] * (y0 + eps)
    with torch.no_grad():
        expected = model.eval()(x2, STAGE1.noise[2], y)
    assert torch.allclose(target, expected, atol=1e-6)


def test_ta_pixel_part_is_analytic(batch) -> None:
    # With an L1 distance the paths differ by (1 - eta_k)(x0 - x_hat), whatever eps_k is:
    # L_TA = sum_k (1 - eta_k) * mean|x0 - x_hat|.
    x0, y0 = batch["x0"], batch["y0"]
    x_hat = x0 + 0.3 * torch.randn(x0.shape, generator=gen(4))
    loss = trajectory_alignment_loss(x0, x_hat, y0, STAGE1, l1, gen(5))
    gap = (x0 - x_hat).abs().mean().item()
    expected = sum((1 - STAGE1.shift[k]) * gap for k in (1, 2, 3))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_ta_one_point_per_sample_estimates_the_same_sum(batch) -> None:
    # With L1 the value for a sample at point k is (1 - eta_k) * gap; drawing k uniformly and
    # scaling by N - 1 gives sum_k (1 - eta_k) * gap on average.
    x0 = batch["x0"][:1].expand(4000, -1, -1, -1)
    y0 = batch["y0"][:1].expand(4000, -1, -1, -1)
    x_hat = x0 + 0.2
    calls = []

    def recording(a: Tensor, b: Tensor) -> Tensor:
        calls.append(a.shape[0])
        return l1(a, b)

    one = trajectory_alignment_loss(x0, x_hat, y0, STAGE1, recording, gen(5), points="one")
    every = trajectory_alignment_loss(x0, x_hat, y0, STAGE1, l1, gen(5), points="all")
    assert calls == [4000]  # one state per sample, not N - 1
    assert one.item() == pytest.approx(every.item(), rel=0.02)
    with pytest.raises(ValueError, match="ta_points"):
        trajectory_alignment_loss(x0, x_hat, y0, STAGE1, l1, gen(5), points="two")


def test_ta_one_point_uses_grid_states_with_shared_noise(batch) -> None:
    x0, y0 = batch["x0"], batch["y0"]
    calls = []

    def recording(a: Tensor, b: Tensor) -> Tensor:
        calls.append((a, b))
        return l1(a, b)

    trajectory_alignment_loss(x0, torch.zeros_like(x0), y0, STAGE1, recording, gen(6), points="one")
    real, fake = calls[0]
    for i in range(x0.shape[0]):  # fake_i = eta (y0 + eps), real_i = (1 - eta) x0 + fake_i
        eta = [
            e
            for e in STAGE1.shift[1:4]
            if torch.allclose(real[i] - fake[i], (1 - e) * x0[i], atol=1e-5)
        ]
        assert len(eta) == 1


def test_ta_is_one_batched_call_with_fresh_noise_per_point(batch) -> None:
    x0, y0 = batch["x0"], batch["y0"]
    x_hat = torch.zeros_like(x0)
    calls = []

    def recording(a: Tensor, b: Tensor) -> Tensor:
        calls.append((a, b))
        return l1(a, b)

    trajectory_alignment_loss(x0, x_hat, y0, STAGE1, recording, gen(6))
    assert len(calls) == 1
    real, fake = calls[0]
    assert real.shape[0] == 3 * x0.shape[0]
    # recover eps_k from the x0 path: real_k = (1 - eta_k) x0 + eta_k (y0 + eps_k)
    etas = STAGE1.shift[1:4]
    eps = [(real[2 * i : 2 * i + 2] - (1 - e) * x0) / e - y0 for i, e in enumerate(etas)]
    for i, e in enumerate(etas):  # the x_hat path shares eps_k
        assert torch.allclose(fake[2 * i : 2 * i + 2], e * (y0 + eps[i]), atol=1e-5)
    assert not torch.allclose(eps[0], eps[1], atol=0.1)
    assert not torch.allclose(eps[1], eps[2], atol=0.1)
    assert abs(eps[0].std().item() - 1) < 0.2  # standard normal noise


def stage1(model, batch, distance, seed: int = 7, **weights):
    """Stage I's loss object on ``batch`` at step 0 with generator seed ``seed``."""
    return Stage1Loss(distance, STAGE1_SCHEDULE, **weights)(model, batch, gen(seed), 0)


class Recording:
    """A distance that records its inputs: the calls show which terms an objective computed."""

    def __init__(self, distance=l1) -> None:
        self.distance = distance
        self.calls: list[tuple[Tensor, Tensor]] = []

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        self.calls.append((a.detach(), b.detach()))
        return self.distance(a, b)


def test_stage1_is_ct_plus_weighted_ta(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=3))
    x0 = batch["x0"]
    distance = Recording()
    total, parts = stage1(model, batch, distance)
    assert set(parts) == {"ct", "ta", "n"} and len(distance.calls) == 2  # L_CT, then L_TA batched
    x_hat, target = distance.calls[0]
    assert parts["ct"].item() == pytest.approx(l1(x_hat, target).mean().item(), rel=1e-6)
    # With d = L1 the two TA paths differ by (1 - eta_k)(x0 - x_hat) at each interior point.
    gap = (x0 - x_hat).abs().mean().item()
    expected_ta = 0.5 * sum((1 - STAGE1.shift[k]) * gap for k in (1, 2, 3))
    assert parts["ta"].item() == pytest.approx(expected_ta, rel=1e-5)
    assert total.item() == pytest.approx((parts["ct"] + parts["ta"]).item(), rel=1e-6)
    again, _ = stage1(model, batch, l1)
    assert torch.equal(total, again)
    _, doubled_parts = stage1(model, batch, l1, ta_weight=1.0)
    assert torch.equal(doubled_parts["ct"], parts["ct"])
    assert doubled_parts["ta"].item() == pytest.approx(2 * parts["ta"].item(), rel=1e-6)
    total.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_ct_only_stage1_is_the_full_objective_without_ta(make_backbone, batch) -> None:
    # ta_weight 0 (the CT baseline) computes no L_TA at all, yet draws n and eps as the full
    # objective does: its L_CT and gradient equal those of the full objective with a TA term
    # that counts for nothing.
    model = ConsistencyModel(make_backbone(seed=3, dropout=0.3))

    def run(distance, ta_weight):
        model.zero_grad()
        torch.manual_seed(0)  # the same dropout masks
        total, parts = stage1(model, batch, distance, ta_weight=ta_weight)
        total.backward()
        return total, parts, [p.grad.clone() for p in model.parameters()]

    fast = Recording()
    total, parts, grads = run(fast, 0.0)
    assert len(fast.calls) == 1
    assert parts["ta"].item() == 0 and torch.equal(total.detach(), parts["ct"])
    full = Recording(lambda a, b: l1(a, b) * (0.0 if full.calls[1:] else 1.0))
    _, full_parts, full_grads = run(full, 0.5)
    assert len(full.calls) == 2 and full_parts["ta"].item() == 0
    assert torch.equal(full_parts["ct"], parts["ct"])
    assert all(torch.equal(a, b) for a, b in zip(grads, full_grads, strict=True))


class TwoPartDistance:
    """L1 plus a squared term, reporting the two as separate parts."""

    def terms(self, a, b):
        return {"l1": l1(a, b), "sq": (a - b).pow(2).flatten(1).mean(1)}

    def __call__(self, a, b):
        return sum(self.terms(a, b).values())


def test_stage1_reports_the_distance_parts_of_each_term(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=3))
    total, parts = stage1(model, batch, TwoPartDistance())
    for term in ("ct", "ta"):
        both = parts[f"{term}_l1"] + parts[f"{term}_sq"]
        assert both.item() == pytest.approx(parts[term].item(), rel=1e-5)
        assert parts[f"{term}_sq"].item() > 0 and parts[f"{term}_l1"].item() > 0
    assert (parts["ct"] + parts["ta"]).item() == pytest.approx(total.item(), rel=1e-6)


def stage2_setup(make_backbone):
    model = ConsistencyModel(make_backbone(seed=11)).train()
    reference = frozen_copy(ConsistencyModel(make_backbone(seed=12)))
    return model, reference


def no_distance(a: Tensor, b: Tensor) -> Tensor:
    """A distance that contributes neither value nor gradient (switches a term off)."""
    return 0.0 * l1(a, b)


def run_stage2(model, reference, batch, seed=21, ct_distance=l1, **weights):
    """Stage II's loss object (a conv-feature distance for LPIPS) on ``batch`` at step 0."""
    loss = Stage2Loss(
        ct_distance, ConvFeatureDistance(), reference, STAGE2_SCHEDULE, edge_map=sobel, **weights
    )
    return loss(model, batch, gen(seed), 0)


def test_stage2_parts_sum_to_total(make_backbone, batch) -> None:
    model, reference = stage2_setup(make_backbone)
    total, parts = run_stage2(model, reference, batch)
    assert set(parts) == {"ct", "dtm_stab", "rect"}
    assert all(v.item() > 0 and not v.requires_grad for v in parts.values())
    assert sum(parts.values()).item() == pytest.approx(total.item(), rel=1e-6)


def test_dtm_pseudo_target_and_weight(make_backbone, batch) -> None:
    model, reference = stage2_setup(make_backbone)
    x0, y, y0 = batch["x0"], batch["y"], batch["y0"]
    seen = []

    def recording(a: Tensor, b: Tensor) -> Tensor:
        seen.append((a, b))
        return l1(a, b)

    loss = Stage2Loss(l1, recording, reference, STAGE2_SCHEDULE, rect_weight=0.0, edge_map=sobel)
    _, parts = loss(model, batch, gen(3), 0)
    # independent recomputation: draws are n, eps, then eps' at eta_t = 1/3
    g = gen(3)
    n = draw_index(3, g)
    eps = draw_noise(x0, g)
    eps_t = draw_noise(x0, g)
    x_hat = model(
        (1 - STAGE2.shift[n + 1]) * x0 + STAGE2.shift[n + 1] * (y0 + eps), STAGE2.noise[n + 1], y
    ).detach()
    t = 1 / 3
    with torch.no_grad():
        real = reference((1 - t) * x0 + t * (y0 + eps_t), t, y)
        fake = reference((1 - t) * x_hat + t * (y0 + eps_t), t, y)
    target = x_hat - (fake - real) - 0.2 * (sobel(fake) - sobel(real))
    assert len(seen) == 1
    assert torch.allclose(seen[0][0], x_hat, atol=1e-6)
    assert torch.allclose(seen[0][1], target, atol=1e-5) and not seen[0][1].requires_grad
    w = 1 / (x_hat - x0).abs().mean(dim=(1, 2, 3))
    expected = 0.8 * (w * l1(x_hat, target)).mean().item()
    assert parts["dtm_stab"].item() == pytest.approx(expected, rel=1e-5)


def test_rect_gradient_reaches_online_net_not_psi(make_backbone, batch) -> None:
    model, reference = stage2_setup(make_backbone)
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    total, _ = run_stage2(model, reference, batch, ct_distance=no_distance, dtm_weight=0.0)
    total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0
    assert all(not p.requires_grad and p.grad is None for p in reference.parameters())
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    after = reference.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_release_switch_gives_rect_no_gradient(make_backbone, batch) -> None:
    model, reference = stage2_setup(make_backbone)
    total, parts = run_stage2(
        model, reference, batch, ct_distance=no_distance, dtm_weight=0.0, rect_gradient=False
    )
    assert parts["rect"].item() > 0
    total.backward()  # only the switched-off CT and DTM terms are differentiable here
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    # full release objective: same gradient as the objective without L_Rect at all
    grads = []
    for weights in ({"rect_gradient": False}, {"rect_weight": 0.0}):
        model.zero_grad()
        run_stage2(model, reference, batch, **weights)[0].backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(*grads, strict=True))
    assert any(g.abs().sum() > 0 for g in grads[0])


def test_unfrozen_reference_is_rejected(make_backbone, batch) -> None:
    model = ConsistencyModel(make_backbone(seed=11))
    with pytest.raises(ValueError, match="frozen"):
        run_stage2(model, ConsistencyModel(make_backbone(seed=12)), batch)


def test_default_edge_map_is_the_sobel_magnitude(make_backbone, batch) -> None:
    # The test's own Sobel (replicate padding, as METHOD §5 defines S) against the default.
    model, reference = stage2_setup(make_backbone)
    _, default = Stage2Loss(l1, l1, reference, STAGE2_SCHEDULE)(model, batch, gen(8), 0)
    explicit_loss = Stage2Loss(l1, l1, reference, STAGE2_SCHEDULE, edge_map=sobel)
    _, explicit = explicit_loss(model, batch, gen(8), 0)
    assert default["rect"].item() > 0
    for name in ("dtm_stab", "rect"):
        assert default[name].item() == pytest.approx(explicit[name].item(), rel=1e-5)


def test_dtm_only_stage2_skips_rect_and_keeps_the_rest(make_backbone, batch) -> None:
    # CTMSR's Stage II (rect_weight 0): L_Rect's LPIPS pass never runs (only DTM's) and the
    # other parts equal those of the full objective with the same draws.
    model, reference = stage2_setup(make_backbone)
    calls = []

    def lpips(a: Tensor, b: Tensor) -> Tensor:
        calls.append(a.shape)
        return l1(a, b)

    full_loss = Stage2Loss(l1, lpips, reference, STAGE2_SCHEDULE, edge_map=sobel)
    full_total, full = full_loss(model, batch, gen(5), 0)
    assert len(calls) == 2  # DTM, then Rect
    calls.clear()
    dtm_only = Stage2Loss(l1, lpips, reference, STAGE2_SCHEDULE, rect_weight=0.0, edge_map=sobel)
    total, parts = dtm_only(model, batch, gen(5), 0)
    assert len(calls) == 1
    assert parts["rect"].item() == 0.0
    assert torch.equal(parts["ct"], full["ct"]) and torch.equal(parts["dtm_stab"], full["dtm_stab"])
    assert total.item() == pytest.approx((full_total - full["rect"]).item(), rel=1e-6)
