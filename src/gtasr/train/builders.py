"""Turn a Config into the objects of a run: model, loss, optimiser, precision."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from gtasr.method.distance import PerceptualDistance
from gtasr.method.loss import Stage1Loss, Stage2Loss
from gtasr.method.precond import ConsistencyModel
from gtasr.method.schedule import GridSchedule
from gtasr.nets.presets import ANCHORED_PRESETS
from gtasr.train.config import Config, ModelConfig, TrainConfig


def build_model(config: ModelConfig) -> ConsistencyModel:
    """The consistency model around the configured backbone (the explicit network dict, else
    the preset's), with ``lr_anchor`` as :func:`lr_anchor_of` resolves it."""
    from gtasr.nets import build_network, preset_config

    network = dict(config.network) if config.network is not None else preset_config(config.preset)
    backbone = build_network(network)
    return ConsistencyModel(
        backbone,
        sigma_data=config.sigma_data,
        sigma_scale=config.sigma_scale,
        noise_offset=config.noise_offset,
        lr_anchor=lr_anchor_of(config),
    )


def lr_anchor_of(config: ModelConfig) -> bool:
    """``model.lr_anchor``, or its default: on for the CPU presets (tiny, compact), off
    otherwise."""
    if config.lr_anchor is not None:
        return config.lr_anchor
    return config.network is None and config.preset in ANCHORED_PRESETS


def build_loss(
    config: Config,
    device: torch.device,
    dtype: torch.dtype | None = None,
    reference: nn.Module | None = None,
) -> Stage1Loss | Stage2Loss:
    """The loss object of ``config.stage``, with its distance and grid schedule.

    LPIPS-VGG is loaded once (and only when d weighs it or Stage II needs it); its trunk runs
    in ``dtype`` (the autocast dtype; None: float32) with its weights cast once, in
    channels_last on CPUs, where oneDNN's convolutions are faster in that layout. Stage II
    needs the frozen ``reference`` network psi.
    """
    loss = config.loss
    lpips = None
    if loss.lpips_weight or config.stage == 2:
        from gtasr.perceptual import LPIPS

        lpips = LPIPS(net="vgg").to(device).eval()
        lpips.set_compute(dtype or torch.float32, channels_last=device.type == "cpu")
    distance = PerceptualDistance(lpips, loss.lpips_weight, loss.charbonnier_weight)
    schedule = GridSchedule(
        num_intervals=tuple(config.schedule.num_intervals),
        iterations=config.train.iterations,
        power=config.schedule.power,
        sigma_max=config.schedule.sigma_max,
    )
    if config.stage == 1:
        return Stage1Loss(distance, schedule, ta_weight=loss.ta_weight, ta_points=loss.ta_points)
    if reference is None or lpips is None:
        raise ValueError("Stage II needs the reference network and LPIPS")
    return Stage2Loss(
        distance,
        lpips,
        reference,
        schedule,
        dtm_weight=loss.dtm_weight,
        stab_weight=loss.stab_weight,
        rect_weight=loss.rect_weight,
        dtm_index=loss.dtm_index,
        rect_gradient=loss.rect_gradient,
    )


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
    """The autocast dtype for ``train.precision`` on ``device`` (None: full precision).

    ``auto`` picks bf16 on CUDA (fp16 where bf16 is missing) and bf16 on CPUs with native
    bf16 kernels, where the LPIPS-VGG passes of a training step run faster in bf16
    (``bench/train_step.py --precision``); on other CPUs bf16 is emulated, so full fp32.
    """
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "bf16" if cpu_bf16_supported() else "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """An autocast region, or nothing in full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
