"""Exponential moving average of the network weights (METHOD §4: decay 0.999).

The EMA is what inference uses. It is kept as a full copy of the module it averages
(``EMA.module``, eval mode, no gradients) so that it can be evaluated like any module; its
state (decay and weights) is saved and restored through :meth:`EMA.state_dict` and
:meth:`EMA.load_state_dict`. Each update blends every floating-point parameter,
``ema = decay * ema + (1 - decay) * theta``, and copies the buffers (and any non-floating
parameter) as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn


class EMA:
    """An exponential moving average of ``model``'s weights."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model)
        self.module.eval()
        self.module.requires_grad_(False)

    def _pairs(
        self, model: nn.Module
    ) -> tuple[list[Tensor], list[Tensor], list[tuple[Tensor, Tensor]]]:
        """(ema floats, model floats, other (ema, model) pairs), matched by name."""
        theirs = dict(model.named_parameters())
        mine = dict(self.module.named_parameters())
        if theirs.keys() != mine.keys():
            raise ValueError("EMA.update: the model's parameters differ from the EMA's")
        ema_f, model_f, copies = [], [], []
        for name, own in mine.items():
            other = theirs[name].detach()
            if own.is_floating_point():
                ema_f.append(own)
                model_f.append(other)
            else:
                copies.append((own, other))
        their_buffers = dict(model.named_buffers())
        for name, own in self.module.named_buffers():
            copies.append((own, their_buffers[name]))
        return ema_f, model_f, copies

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current parameters into the average; copy its buffers."""
        ema_f, model_f, copies = self._pairs(model)
        if ema_f:
            torch._foreach_mul_(ema_f, self.decay)
            torch._foreach_add_(ema_f, model_f, alpha=1.0 - self.decay)
        for own, other in copies:
            own.copy_(other)

    def state_dict(self) -> dict[str, Any]:
        """``{"decay": float, "weights": the averaged model's state dict}`` for resuming."""
        return {"decay": self.decay, "weights": self.module.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (strict: same architecture)."""
        self.decay = float(state["decay"])
        self.module.load_state_dict(state["weights"])
