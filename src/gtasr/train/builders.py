"""Turn a Config into the objects of a run: model, distances, optimiser, precision, grid."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from gtasr.method.precond import ConsistencyModel
from gtasr.method.schedule import BridgeGrid, stage1_num_intervals
from gtasr.train.config import Config, LossConfig, ModelConfig, TrainConfig


def build_model(config: ModelConfig) -> ConsistencyModel:
    """The consistency model around the configured backbone.

    The architecture is the explicit network dict, else the preset's, with
    ``lr_skip`` replaced when the config sets it (``lr_anchor`` runs want it off).
    """
    from gtasr.nets import build_network, preset_config

    network = dict(config.network) if config.network is not None else preset_config(config.preset)
    if config.lr_skip is not None:
        network["lr_skip"] = config.lr_skip
    backbone = build_network(network)
    return ConsistencyModel(
        backbone,
        sigma_data=config.sigma_data,
        sigma_scale=config.sigma_scale,
        noise_offset=config.noise_offset,
        lr_anchor=config.lr_anchor,
    )


@dataclass
class PerceptualDistance:
    """d(a, b) = lpips_weight * LPIPS(a, b) + charbonnier_weight * Charbonnier(a, b), per sample."""

    lpips: nn.Module | None
    lpips_weight: float
    charbonnier_weight: float

    def terms(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted parts ``{"charbonnier", "lpips"}`` of d, each Tensor[B]."""
        from gtasr.perceptual import charbonnier

        parts = {"charbonnier": self.charbonnier_weight * charbonnier(a, b)}
        if self.lpips is not None and self.lpips_weight:
            parts["lpips"] = self.lpips_weight * self.lpips(a, b).reshape(a.shape[0])
        return parts

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(self.terms(a, b).values())).sum(dim=0)


@dataclass
class Distances:
    """The distances an objective needs: d for L_CT/L_TA, LPIPS for Stage II's terms."""

    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    lpips: nn.Module | None


def build_distances(
    loss: LossConfig, stage: int, device: torch.device, dtype: torch.dtype | None = None
) -> Distances:
    """LPIPS-VGG is loaded once (and only when a weight or Stage II needs it).

    Its trunk runs in ``dtype`` (the autocast dtype; None: float32) with its weights cast once,
    in channels_last on CPUs, where oneDNN's convolutions are faster in that layout.
    """
    lpips = None
    if loss.lpips_weight or stage == 2:
        from gtasr.perceptual import LPIPS

        lpips = LPIPS(net="vgg").to(device).eval()
        lpips.set_compute(dtype or torch.float32, channels_last=device.type == "cpu")
    return Distances(PerceptualDistance(lpips, loss.lpips_weight, loss.charbonnier_weight), lpips)


def build_optimizer(
    model: nn.Module, train: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
    """AdamW + MultiStepLR as in the release (METHOD §4)."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=train.lr,
        betas=(train.betas[0], train.betas[1]),
        weight_decay=train.weight_decay,
        fused=True,  # one kernel for all tensors: the per-tensor loop dominates small nets
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(train.lr_milestones), gamma=train.lr_gamma
    )
    return optimizer, scheduler


def cpu_bf16_supported() -> bool:
    """Whether oneDNN has native bf16 kernels here (e.g. AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.autocast`` on ``device`` (None: full precision).

    ``auto`` picks bf16 on CUDA (fp16 where bf16 is missing) and bf16 on CPUs with native
    bf16 kernels, where the LPIPS-VGG passes of a training step run faster in bf16
    (``bench/train_step.py --autocast``); on other CPUs bf16 is emulated, so full fp32.
    """
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "bf16" if cpu_bf16_supported() else "none"
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """An autocast region, or nothing in full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def bridge_grid(config: Config, step: int) -> BridgeGrid:
    """The grid used at ``step``: Stage I's N schedule, or Stage II's fixed N."""
    intervals = config.schedule.num_intervals
    if config.stage == 1:
        n = stage1_num_intervals(
            step, config.train.iterations, initial=intervals[0], final=intervals[-1]
        )
    else:
        n = intervals[0]
    return BridgeGrid.power_law(n, power=config.schedule.power, sigma_max=config.schedule.sigma_max)
