"""The consistency function f(x, sigma, y) = c_skip x + c_out F(x, c_noise, y) (METHOD §2).

EDM-style preconditioning with the release's constants: the noise level is rescaled by
``sigma_scale`` (s = sigma / 0.1), ``c_out`` has no ``sigma_data`` factor, and
``c_noise = log(sigma + 0.002) / 4``. At sigma = 0, ``c_skip = 1`` and ``c_out = 0``, so the
boundary condition f(x, 0, y) = x holds; it is enforced bit for bit.

``lr_anchor`` (not in the release) adds ``(1 - c_skip) * y0`` with ``y0`` the bicubic x4
upsampling of y: f = c_skip x + (1 - c_skip) y0 + c_out F. An untrained backbone (F = 0) then
predicts the bicubic image at sigma = 1 and the state itself at sigma = 0, and at every noise
level in between F only has to supply what y0 and x miss. Adding y0 inside the backbone (its
``lr_skip``) instead is right at sigma = 1 but makes F undo a scaled copy of the image at small
sigma, where c_skip x + c_out y0 overshoots x0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _scaled(sigma: Tensor, sigma_scale: float) -> Tensor:
    return sigma / sigma_scale


def c_skip(sigma: Tensor, sigma_data: float = 0.5, sigma_scale: float = 0.1) -> Tensor:
    """``sigma_data^2 / (s^2 + sigma_data^2)`` with ``s = sigma / sigma_scale``."""
    s = _scaled(sigma, sigma_scale)
    return sigma_data**2 / (s**2 + sigma_data**2)


def c_out(sigma: Tensor, sigma_data: float = 0.5, sigma_scale: float = 0.1) -> Tensor:
    """``s / sqrt(s^2 + sigma_data^2)`` with ``s = sigma / sigma_scale``."""
    s = _scaled(sigma, sigma_scale)
    return s / (s**2 + sigma_data**2).sqrt()


def c_noise(sigma: Tensor, noise_offset: float = 0.002) -> Tensor:
    """``log(sigma + noise_offset) / 4``: the noise label the backbone is conditioned on."""
    return (sigma + noise_offset).log() / 4


class ConsistencyModel(nn.Module):
    """Wraps a backbone ``F(x, c_noise, y)`` into the consistency function ``f(x, sigma, y)``.

    The backbone maps a noisy HR state (B, 3, 4h, 4w), a noise label Tensor[B] and the LR image
    (B, 3, h, w) to a (B, 3, 4h, 4w) tensor; it knows nothing about the noise schedule.
    """

    def __init__(
        self,
        backbone: nn.Module,
        sigma_data: float = 0.5,
        sigma_scale: float = 0.1,
        noise_offset: float = 0.002,
        lr_anchor: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.sigma_data = float(sigma_data)
        self.sigma_scale = float(sigma_scale)
        self.noise_offset = float(noise_offset)
        self.lr_anchor = bool(lr_anchor)

    def precond_config(self) -> dict[str, float | bool]:
        """The keyword arguments that rebuild this wrapper (stored in model files)."""
        config: dict[str, float | bool] = {
            "sigma_data": self.sigma_data,
            "sigma_scale": self.sigma_scale,
            "noise_offset": self.noise_offset,
        }
        if self.lr_anchor:
            config["lr_anchor"] = True
        return config

    def _sigma_vector(self, sigma: float | Tensor, x: Tensor) -> Tensor:
        """sigma as a float32 Tensor[B] on x's device (a scalar is repeated for every sample)."""
        batch = x.shape[0]
        sig = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        if sig.numel() == 1:
            return sig.expand(batch)
        if sig.numel() != batch:
            raise ValueError(f"sigma has {sig.numel()} values for a batch of {batch}")
        return sig

    def _backbone_dtype(self, x: Tensor) -> torch.dtype:
        """The dtype of the backbone's weights (x's when it has none)."""
        weight = next(self.backbone.parameters(), None)
        return x.dtype if weight is None else weight.dtype

    def forward(self, x: Tensor, sigma: float | Tensor, y: Tensor) -> Tensor:
        """Evaluate f(x, sigma, y); samples with sigma == 0 return x unchanged (bit for bit).

        The backbone runs in its weights' dtype (a model cast to bf16 once takes float32
        inputs); the preconditioning arithmetic stays in the dtype of ``x``.
        """
        if not isinstance(sigma, Tensor) and float(sigma) == 0.0:
            return x
        sig = self._sigma_vector(sigma, x)
        dtype = self._backbone_dtype(x)
        raw = self.backbone(x.to(dtype), c_noise(sig, self.noise_offset), y.to(dtype))
        sig4 = sig.reshape(-1, 1, 1, 1)
        skip = c_skip(sig4, self.sigma_data, self.sigma_scale).to(x.dtype)
        out = c_out(sig4, self.sigma_data, self.sigma_scale).to(x.dtype)
        denoised = skip * x + out * raw.to(x.dtype)
        if self.lr_anchor:
            # by output size, not by a scale factor computed from shapes: the same pixels for
            # whole multiples, and traceable (ONNX export sees shapes as tensors)
            y0 = F.interpolate(
                y.to(x.dtype), size=x.shape[-2:], mode="bicubic", align_corners=False
            )
            denoised = denoised + (1 - skip) * y0
        return torch.where(sig4 == 0, x, denoised)
