"""gtasr: one-step real-world x4 image super-resolution (GTASR).

Importing the package is cheap: heavy modules load on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from gtasr.version import __version__

__all__ = ["Upscaler", "__version__", "load_model"]


def load_model(
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    *,
    weights: str | None = None,
    res_con: bool = False,
) -> torch.nn.Module:
    """The consistency model ``f(x, sigma, y)`` of a model, in eval mode on ``device``.

    ``path`` is a model spec (:func:`gtasr.hub.resolve_model`): a file, a name from
    ``gtasr models`` (``"gtasr-paper"``) or ``"hf://OWNER/REPO/FILE[@REVISION]"``;
    without it, the bundled model.

    Reads gtasr ``.safetensors`` files and the authors' GTASR/CTMSR checkpoints
    (``.pth``/``.ckpt``; ``weights`` "ema", the default, or "raw" picks
    ``params_ema`` or ``params``; ``res_con=True`` for a network trained with
    the release's ``res_con``, which its file cannot tell). ``x`` is the noisy
    HR state (B, 3, 4h, 4w) and ``y`` the LR image (B, 3, h, w), both in [-1, 1].
    """
    from gtasr.hub import resolve_model
    from gtasr.modelfile import load_model as load

    return load(resolve_model(path), device=device, weights=weights, res_con=res_con)[0]


def __getattr__(name: str) -> Any:
    if name == "Upscaler":
        from gtasr.infer.upscaler import Upscaler

        return Upscaler
    raise AttributeError(f"module 'gtasr' has no attribute {name!r}")
