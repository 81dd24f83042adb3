"""Shared behaviour of the perceptual metrics: frozen weights, eval mode, input checks."""

from __future__ import annotations

import torch
from torch import nn


class FrozenMetric(nn.Module):
    """A pretrained metric that never trains and always stays in eval mode.

    Subclasses keep their weights in buffers (no ``nn.Parameter``), so neither an
    optimiser built from a parent's ``parameters()`` nor a parent's
    ``requires_grad_()`` can reach them. Gradients still flow to the inputs, so
    the metric can be used as a loss.
    """

    def train(self, mode: bool = True) -> FrozenMetric:
        """Ignore requests for training mode (a parent's ``.train()`` must not change us)."""
        return super().train(False)


def check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    """Both inputs must be NCHW RGB batches of the same shape."""
    if a.dim() != 4 or a.shape[1] != 3:
        raise ValueError(f"expected an NCHW RGB batch, got shape {tuple(a.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"input shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
