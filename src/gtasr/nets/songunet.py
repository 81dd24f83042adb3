"""The backbone F of METHOD §3: a DDPM++-style U-Net at LR resolution with Swin attention.

Data flow for a noisy HR state ``x`` (B, 3, 4h, 4w), noise label ``c_noise``
(B,) and LR image ``y`` (B, 3, h, w):

1. PixelUnshuffle(4) of ``x`` concatenated with ``y`` (51 channels), 3x3 conv.
2. Encoder: per level ``blocks_per_level`` residual blocks (each followed by
   a Swin slot at the ``attention_levels``); a downsampling residual block
   between levels. Every block output is kept as a skip.
3. Decoder: the lowest level starts with two residual blocks (the first with
   attention); every other level starts with an upsampling residual block.
   Then ``blocks_per_level + 1`` residual blocks per level, each consuming one
   skip by concatenation; the last of them carries attention.
4. Head: GroupNorm, SiLU, 3x3 conv at LR resolution, then twice
   (x2 upsampling, 3x3 conv, LeakyReLU 0.2), then a 3x3 conv to 3 channels.
   The release upsamples by nearest neighbour; the ``pixelshuffle``
   upsampler (in some of the authors' checkpoints) instead rearranges the head conv's
   16 x 3 channels to x4 resolution (PixelShuffle) before the last conv.
5. With ``lr_skip`` (the release's ``res_con``, off in its published
   models), the bicubic x4 upsampling of ``y`` is added to that output.
   The head starts near zero, so an untrained network then predicts
   bicubic instead of grey, and it only has to learn what bicubic misses:
   small networks trained for a few thousand steps otherwise spend them
   learning to copy the LR image.

The noise label enters every residual block through a sinusoidal embedding
and a two-layer MLP. Attention slots are Swin blocks (:mod:`gtasr.nets.swin`).
"""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gtasr.nets.swin import SwinAttention, group_norm, tracing

SCALE = 4
SKIP_SCALE = math.sqrt(0.5)
NORM_EPS = 1e-6
UPSAMPLERS = ("nearest", "pixelshuffle")
MAX_SWIN_WINDOW = 32
"""Largest Swin window side: the attention of a window grows with its fourth power."""


@dataclass(frozen=True)
class SongUNetConfig:
    """Every number that shapes the backbone (defaults: the ``paper`` preset).

    ``to_dict`` gives the JSON form stored in model files; ``from_dict`` reads it back.
    """

    base_channels: int = 192  # width of level 0; level i has base * channel_mults[i]
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)  # one entry per resolution level
    blocks_per_level: int = 4  # residual blocks per encoder level (decoder: one more)
    attention_levels: tuple[int, ...] = (0, 1, 2, 3)  # levels whose blocks carry Swin
    dropout: float = 0.13  # inside every residual block, training only
    emb_channels: int = 768  # width of the noise-label MLP added into every block
    swin_dim: int = 192  # embedding width of every Swin block
    swin_heads: int = 6
    swin_window: int = 8  # square window side, in feature-map pixels
    swin_mlp_ratio: float = 4.0
    swin_qkv_bias: bool = True
    head_channels: int = 192  # width of the x4 upsampling head
    image_channels: int = 3
    lr_skip: bool = False  # add bicubic x4 of y to the output: the head learns only the detail
    # Options read from the authors' checkpoints
    swin_norm_groups: int = 0  # 0: group_norm's rule; N: exactly N groups in the Swin blocks
    upsampler: str = "nearest"  # head: x2 convs after "nearest", or "pixelshuffle"

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        object.__setattr__(self, "attention_levels", tuple(int(a) for a in self.attention_levels))
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be positive integers, got {self.channel_mults}")
        bad = [a for a in self.attention_levels if not 0 <= a < len(self.channel_mults)]
        if bad:
            raise ValueError(f"attention_levels {bad} outside 0..{len(self.channel_mults) - 1}")
        if self.blocks_per_level < 1 or self.base_channels < 4:
            raise ValueError("need blocks_per_level >= 1 and base_channels >= 4")
        if not 0.0 <= self.dropout < 1.0 or not 1 <= self.swin_window <= MAX_SWIN_WINDOW:
            raise ValueError(f"need 0 <= dropout < 1 and swin_window within 1..{MAX_SWIN_WINDOW}")
        if self.swin_dim % self.swin_heads:
            raise ValueError(f"swin_dim {self.swin_dim} not divisible by {self.swin_heads} heads")
        if self.swin_norm_groups < 0 or (
            self.swin_norm_groups and self.swin_dim % self.swin_norm_groups
        ):
            raise ValueError(
                f"swin_norm_groups {self.swin_norm_groups} does not divide swin_dim {self.swin_dim}"
            )
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(
                f"upsampler must be one of {', '.join(UPSAMPLERS)}, not {self.upsampler!r}"
            )
        shuffled = self.image_channels * SCALE * SCALE
        if self.upsampler == "pixelshuffle" and self.head_channels != shuffled:
            raise ValueError(f"the pixelshuffle head needs head_channels {shuffled}")

    @property
    def stride(self) -> int:
        """LR height and width must be multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.channel_mults) - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples as lists), every field."""
        out = asdict(self)
        out["channel_mults"] = list(self.channel_mults)
        out["attention_levels"] = list(self.attention_levels)
        return out

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> SongUNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (they would be ignored).

        So is a value of the wrong type or beyond :data:`SANITY_LIMIT`: the dict may come
        from a file's metadata, which must not make gtasr build a network it cannot afford.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"unknown network config keys: {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        for name, value in spec.items():
            if not _fits(value, hints[name]):
                raise ValueError(
                    f"network config key {name!r}: {value!r} is not {_describe(hints[name])}"
                )
        return cls(**spec)


SANITY_LIMIT = 2**16
"""No width, count, window or ratio of a network gtasr can run comes near this."""


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON ``value`` is of the field type ``hint``, its numbers in 0..SANITY_LIMIT."""
    if hint is bool or hint is str:
        return isinstance(value, hint)
    if hint is int or hint is float:
        number = (int, float) if hint is float else int
        return (
            isinstance(value, number)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and 0 <= value <= SANITY_LIMIT
        )
    (item, _) = typing.get_args(hint)  # tuple[int, ...]
    return isinstance(value, list | tuple) and all(_fits(v, item) for v in value)


def _describe(hint: Any) -> str:
    if hint in (bool, str):
        return {bool: "true or false", str: "a string"}[hint]
    if hint in (int, float):
        return f"{'an integer' if hint is int else 'a number'} within 0..{SANITY_LIMIT}"
    return f"a list of integers within 0..{SANITY_LIMIT}"


def noise_embedding(c_noise: Tensor, channels: int, max_positions: float = 10000.0) -> Tensor:
    """DDPM++ sinusoidal embedding of the noise label: (B,) -> (B, channels), [sin, cos]."""
    half = channels // 2
    exponent = torch.arange(half, dtype=torch.float32, device=c_noise.device) / max(half - 1, 1)
    freqs = (1.0 / max_positions) ** exponent
    angles = c_noise.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def silu(x: Tensor) -> Tensor:
    """SiLU; in place when no gradient is recorded (inference), which saves a fresh tensor.

    Only ever applied to a normalisation's fresh output, which nothing else reads.
    """
    return F.silu(x, inplace=not torch.is_grad_enabled())


def xavier_(module: nn.Conv2d | nn.Linear, gain: float = 1.0) -> None:
    """Xavier-uniform weights scaled by ``gain``, zero bias (the DDPM++ initialisation)."""
    nn.init.xavier_uniform_(module.weight)
    with torch.no_grad():
        module.weight.mul_(gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class ResBlock(nn.Module):
    """DDPM++ residual block with the noise embedding added after the first conv.

    ``resample`` is None, "down" (2x2 average pooling) or "up" (nearest x2);
    it is applied before the first conv and on the skip path, whose 1x1
    projection exists when channels change or resampling happens.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        dropout: float,
        resample: str | None = None,
        attention: SwinAttention | None = None,
    ) -> None:
        super().__init__()
        self.resample = resample
        self.dropout = dropout
        self.norm0 = group_norm(in_channels, eps=NORM_EPS)
        self.conv0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.affine = nn.Linear(emb_channels, out_channels)
        self.norm1 = group_norm(out_channels, eps=NORM_EPS)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = None
        if in_channels != out_channels or resample is not None:
            self.skip = nn.Conv2d(in_channels, out_channels, 1)
        self.attention = attention
        for module in (self.conv0, self.affine, self.skip):
            if module is not None:
                xavier_(module)
        xavier_(self.conv1, gain=1e-5)

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        # In-place updates only touch fresh conv outputs, which no backward pass needs.
        h = self.conv0(self._resample(silu(self.norm0(x))))
        h = silu(self.norm1(h.add_(self.affine(emb)[:, :, None, None])))
        h = self.conv1(F.dropout(h, p=self.dropout, training=self.training))
        skip = self._resample(x)
        if self.skip is not None:
            skip = self.skip(skip)
        x = h.add_(skip).mul_(SKIP_SCALE)
        if self.attention is not None:
            x = self.attention(x).mul_(SKIP_SCALE)
        return x


class SongUNetSR(nn.Module):
    """x4 super-resolution backbone F(x, c_noise, y) of METHOD §3."""

    scale = SCALE

    def __init__(self, cfg: SongUNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.base_channels
        self.map0 = nn.Linear(c, cfg.emb_channels)
        self.map1 = nn.Linear(cfg.emb_channels, cfg.emb_channels)
        in_ch = cfg.image_channels * (SCALE * SCALE + 1)
        self.conv_in = nn.Conv2d(in_ch, c, 3, padding=1)

        self.encoder = nn.ModuleList()
        skip_channels = [c]
        cout = c
        for level, mult in enumerate(cfg.channel_mults):
            if level > 0:
                self.encoder.append(self._block(cout, cout, resample="down"))
                skip_channels.append(cout)
            for _ in range(cfg.blocks_per_level):
                attn = self._attention(c * mult, level)
                self.encoder.append(self._block(cout, c * mult, attention=attn))
                cout = c * mult
                skip_channels.append(cout)

        self.decoder = nn.ModuleList()
        self.takes_skip: list[bool] = []
        top = len(cfg.channel_mults) - 1
        for level in reversed(range(len(cfg.channel_mults))):
            mult = cfg.channel_mults[level]
            if level == top:
                self._append_dec(self._block(cout, cout, attention=self._attention(cout, level)))
                self._append_dec(self._block(cout, cout))
            else:
                self._append_dec(self._block(cout, cout, resample="up"))
            for idx in range(cfg.blocks_per_level + 1):
                last = idx == cfg.blocks_per_level
                attn = self._attention(c * mult, level) if last else None
                cin = cout + skip_channels.pop()
                self._append_dec(self._block(cin, c * mult, attention=attn), takes_skip=True)
                cout = c * mult

        hc = cfg.head_channels
        self.head_norm = group_norm(cout, eps=NORM_EPS)
        self.head_conv = nn.Conv2d(cout, hc, 3, padding=1)
        xavier_(self.head_conv, gain=1e-5)
        if cfg.upsampler != "pixelshuffle":
            self.up1 = nn.Conv2d(hc, hc, 3, padding=1)
            self.up2 = nn.Conv2d(hc, hc, 3, padding=1)
            self.conv_out = nn.Conv2d(hc, cfg.image_channels, 3, padding=1)
        else:
            self.conv_out = nn.Conv2d(cfg.image_channels, cfg.image_channels, 3, padding=1)
        xavier_(self.map0)
        xavier_(self.map1)
        xavier_(self.conv_in)

    def _block(self, cin: int, cout: int, **kwargs: Any) -> ResBlock:
        return ResBlock(cin, cout, self.cfg.emb_channels, self.cfg.dropout, **kwargs)

    def _attention(self, channels: int, level: int) -> SwinAttention | None:
        cfg = self.cfg
        if level not in cfg.attention_levels:
            return None
        return SwinAttention(
            channels,
            cfg.swin_dim,
            heads=cfg.swin_heads,
            window=cfg.swin_window,
            mlp_ratio=cfg.swin_mlp_ratio,
            qkv_bias=cfg.swin_qkv_bias,
            norm_groups=cfg.swin_norm_groups,
        )

    def _append_dec(self, block: ResBlock, takes_skip: bool = False) -> None:
        self.decoder.append(block)
        self.takes_skip.append(takes_skip)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable config; ``build_network(net.config)`` rebuilds this architecture."""
        return self.cfg.to_dict()

    @property
    def stride(self) -> int:
        """LR height and width must be multiples of this."""
        return self.cfg.stride

    def embed_noise(self, c_noise: Tensor, batch: int) -> Tensor:
        """(B,) or scalar noise label -> (B, emb_channels) conditioning vector."""
        if c_noise.dim() == 0:
            c_noise = c_noise.expand(batch)
        emb = noise_embedding(c_noise.reshape(-1), self.cfg.base_channels)
        emb = emb.to(self.map0.weight.dtype)
        return F.silu(self.map1(F.silu(self.map0(emb))))

    def _check_shapes(self, x: Tensor, y: Tensor) -> None:
        h, w = y.shape[-2:]
        if x.shape[-2] != SCALE * h or x.shape[-1] != SCALE * w:
            raise ValueError(
                f"HR state {tuple(x.shape)} is not {SCALE}x the LR image {tuple(y.shape)}"
            )
        if h % self.stride or w % self.stride:
            raise ValueError(f"LR size {h}x{w} is not a multiple of the stride {self.stride}")

    def forward(self, x: Tensor, c_noise: Tensor, y: Tensor) -> Tensor:
        """Noisy HR state (B,3,4h,4w), noise label (B,), LR image (B,3,h,w) -> (B,3,4h,4w)."""
        if not tracing():
            self._check_shapes(x, y)
        emb = self.embed_noise(c_noise, x.shape[0]).to(x.dtype)
        h = self.conv_in(torch.cat([F.pixel_unshuffle(x, SCALE), y.to(x.dtype)], dim=1))
        skips = [h]
        for block in self.encoder:
            h = block(h, emb)
            skips.append(h)
        for block, takes_skip in zip(self.decoder, self.takes_skip, strict=True):
            if takes_skip:
                h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb)
        h = self.head_conv(silu(self.head_norm(h)))
        if self.cfg.upsampler == "pixelshuffle":
            h = F.pixel_shuffle(h, SCALE)
        else:
            # In place: LeakyReLU's gradient is recoverable from its output, and the
            # conv outputs it overwrites are not needed by the conv's backward pass.
            for conv in (self.up1, self.up2):
                h = F.interpolate(h, scale_factor=2.0, mode=self.cfg.upsampler)
                h = F.leaky_relu(conv(h), 0.2, inplace=True)
        out = self.conv_out(h)
        if self.cfg.lr_skip:
            # Bicubic reads planes: on a channels-last input it is several times slower.
            lr = y.to(out.dtype).contiguous()
            out = out + F.interpolate(lr, scale_factor=SCALE, mode="bicubic")
        return out
