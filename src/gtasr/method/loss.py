"""One loss object per stage (METHOD §4, §5): ``loss(net, batch, generator, step)``.

Each object is built once from its weights, its distance and its grid schedule, and
called by the trainer on every micro-batch; it returns ``(total, parts)``, where ``parts``
are the detached weighted terms for the training log. ``batch`` holds ``x0`` (HR), ``y``
(LR) and ``y0`` (bicubic of y); every random draw comes from ``generator``.

Stage I:   L_I  = L_CT + ta_weight * L_TA
Stage II:  L_II = L_CT + dtm_weight * L_DTM+Stab + rect_weight * L_Rect
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gtasr.method.objectives import (
    Distance,
    EdgeMap,
    consistency_pair,
    draw_index,
    dtm_stab_loss,
    per_sample,
    per_sample_terms,
    rectification_loss,
    reference_endpoints,
    trajectory_alignment_loss,
)
from gtasr.method.schedule import GridSchedule, draw_noise

Batch = dict[str, Tensor]
Parts = dict[str, Tensor]


def _weighted_means(prefix: str, weight: float, parts: Parts) -> Parts:
    """``{prefix_name: weight * mean(part)}``, detached: the logged parts of one term."""
    return {f"{prefix}_{k}": (weight * v.mean()).detach() for k, v in parts.items()}


@dataclass
class Stage1Loss:
    """L_CT + ta_weight * L_TA.

    ``ta_weight = 0`` is the consistency-training baseline (CTMSR's Stage I); L_TA is then
    not computed at all (its distance passes dominate a step), and the draws before it are
    the same, so L_CT is that of the full objective. ``ta_points`` is how L_TA visits the
    interior grid points: ``"all"`` (the paper: every point for every sample) or ``"one"``
    (one point per sample, drawn uniformly, the mean scaled by N - 1: the same expected loss
    for a third of the distance evaluations at N = 4).
    """

    distance: Distance
    schedule: GridSchedule
    ta_weight: float = 0.5
    ta_points: str = "all"

    def __call__(
        self, net: nn.Module, batch: Batch, generator: torch.Generator, step: int
    ) -> tuple[Tensor, Parts]:
        """One index n ~ U{0..N-1} and one eps for the batch; returns the total and the
        detached parts ``ct``, ``ta``, their distances' parts (``ct_lpips``, ...) and ``n``."""
        x0, y, y0 = batch["x0"], batch["y"], batch["y0"]
        grid = self.schedule.grid(step)
        n = draw_index(grid.num_intervals, generator)
        eps = draw_noise(x0, generator)
        x_hat, target = consistency_pair(net, x0, y, y0, grid, n, eps)
        ct_values, ct_terms = per_sample_terms(self.distance, x_hat, target)
        ct = ct_values.mean()
        ta_terms: Parts = {}
        if self.ta_weight:
            ta = self.ta_weight * trajectory_alignment_loss(
                x0, x_hat, y0, grid, self.distance, generator, ta_terms, self.ta_points
            )
            total = ct + ta
        else:
            ta = torch.zeros_like(ct)
            total = ct
        parts = {"ct": ct.detach(), "ta": ta.detach(), "n": torch.tensor(float(n))}
        parts |= _weighted_means("ct", 1.0, ct_terms)
        parts |= _weighted_means("ta", self.ta_weight, ta_terms)
        return total, parts


def _sobel() -> EdgeMap:
    from gtasr.perceptual import sobel_magnitude

    return sobel_magnitude


@dataclass
class Stage2Loss:
    """L_CT + dtm_weight * L_DTM+Stab + rect_weight * L_Rect, against the frozen reference psi.

    ``distance`` is L_CT's d; ``lpips`` is the distance of L_DTM+Stab and L_Rect (LPIPS in
    the paper). ``stab_weight`` scales the Sobel difference inside the DTM pseudo-target,
    ``dtm_index`` is the grid point of eta_t (the release always uses 1).
    ``rect_gradient=False`` reproduces the release: the fake endpoint is computed without
    gradient from a detached x_hat, so L_Rect carries no gradient. ``rect_weight = 0`` with
    ``stab_weight = 0`` is CTMSR's DTM-only Stage II (no LPIPS pass for L_Rect).
    """

    distance: Distance
    lpips: Distance
    reference: nn.Module
    schedule: GridSchedule
    dtm_weight: float = 0.8
    stab_weight: float = 0.2
    rect_weight: float = 1.0
    dtm_index: int = 1
    rect_gradient: bool = True
    edge_map: EdgeMap = field(default_factory=_sobel)

    def __call__(
        self, net: nn.Module, batch: Batch, generator: torch.Generator, step: int
    ) -> tuple[Tensor, Parts]:
        """Returns the total and the detached parts ``ct``, ``dtm_stab``, ``rect`` (they sum
        to the total)."""
        x0, y, y0 = batch["x0"], batch["y"], batch["y0"]
        grid = self.schedule.grid(step)
        n = draw_index(grid.num_intervals, generator)
        eps = draw_noise(x0, generator)
        x_hat, target = consistency_pair(net, x0, y, y0, grid, n, eps)
        ct = per_sample(self.distance, x_hat, target).mean()
        eps_t = draw_noise(x0, generator)
        real, fake = reference_endpoints(
            self.reference, x0, x_hat, y, y0, grid, self.dtm_index, eps_t, self.rect_gradient
        )
        dtm = self.dtm_weight * dtm_stab_loss(
            x_hat, x0, real, fake.detach(), self.edge_map, self.lpips, self.stab_weight
        )
        if self.rect_weight:
            rect = self.rect_weight * rectification_loss(fake, x0, self.edge_map, self.lpips)
        else:
            rect = x_hat.new_zeros(())
        total = ct + dtm + rect
        return total, {"ct": ct.detach(), "dtm_stab": dtm.detach(), "rect": rect.detach()}
