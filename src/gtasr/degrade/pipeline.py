"""The two-order Real-ESRGAN degradation that turns HR crops into training pairs.

For a batch of HR images ``x0`` (METHOD §7):

1. first order: blur -> random resize -> Gaussian or Poisson noise -> JPEG;
2. with probability ``second_order_prob``: blur (``second.blur_prob``) ->
   random resize relative to the LR size -> noise;
3. in random order, {resize to H/4 x W/4 + final sinc filter} and {JPEG};
4. ``y`` = the result rounded to 8 bits; ``y0`` = bicubic x4 of ``y``, rounded
   to 8 bits.

As in the authors' release, the blur kernels, noise strengths, gray-noise
choices and JPEG qualities are drawn per image, while the resize factors and
modes, the noise type, the second-order coin and the final order are drawn
once per batch (a resize must give every image of the batch the same size).
The release does not sharpen the HR targets (``use_sharp: False``), and
neither does this pipeline: ``x0`` is the HR crop itself.

Every random draw comes from the ``torch.Generator`` given to
:func:`degrade_batch`, so a batch is reproduced exactly from its generator
state (on a given device: CPU and CUDA noise streams differ).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from gtasr.degrade.jpeg import jpeg_compress
from gtasr.degrade.kernels import BlurSettings, random_blur_kernel, random_final_sinc
from gtasr.degrade.noise import add_gaussian_noise, add_poisson_noise
from gtasr.method.schedule import upsample_lr

RESIZE_MODES = ("area", "bilinear", "bicubic")
RELEASE_KERNEL_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


def _odd_sizes(below: int) -> tuple[int, ...]:
    """The release's kernel sizes for a ``below`` px stage: 3, 5, ..., below - 2."""
    return tuple(range(3, below, 2))


@dataclass(frozen=True)
class ResizeSettings:
    """Random resize: up / down / keep with ``probs``, factor in ``scale_range``."""

    probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep [resize_prob]
    scale_range: tuple[float, float] = (0.15, 1.5)  # [resize_range]


@dataclass(frozen=True)
class NoiseSettings:
    """Gaussian noise with ``gaussian_prob``, Poisson otherwise; gray with ``gray_prob``."""

    gaussian_prob: float = 0.5  # [gaussian_noise_prob]
    sigma_range: tuple[float, float] = (1.0, 30.0)  # 8-bit units [noise_range]
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)  # [poisson_scale_range]
    gray_prob: float = 0.4  # [gray_noise_prob]


def _first_blur() -> BlurSettings:
    return BlurSettings(_odd_sizes(21), RELEASE_KERNEL_PROBS, (0.2, 3.0))


def _second_blur() -> BlurSettings:
    return BlurSettings(_odd_sizes(15), RELEASE_KERNEL_PROBS, (0.2, 1.5))


@dataclass(frozen=True)
class DegradationConfig:
    """All probabilities and ranges; the defaults are the release's training settings.

    ``second_resize`` factors are relative to the final LR size (H/scale). The
    final JPEG (``final_jpeg_range``) and the final resize + sinc happen whether
    or not the second order does. Kernel sizes follow the GTASR/CTMSR release
    (``range(3, 21, 2)``, then ``range(3, 15, 2)``), not Real-ESRGAN's 7..21.
    """

    scale: int = 4
    first_blur: BlurSettings = field(default_factory=_first_blur)
    first_resize: ResizeSettings = field(default_factory=ResizeSettings)
    first_noise: NoiseSettings = field(default_factory=NoiseSettings)
    first_jpeg_range: tuple[float, float] = (30.0, 95.0)  # [jpeg_range]
    second_order_prob: float = 0.5
    second_blur_prob: float = 0.8
    second_blur: BlurSettings = field(default_factory=_second_blur)
    second_resize: ResizeSettings = field(
        default_factory=lambda: ResizeSettings((0.3, 0.4, 0.3), (0.3, 1.2))
    )
    second_noise: NoiseSettings = field(
        default_factory=lambda: NoiseSettings(0.5, (1.0, 25.0), (0.05, 2.5), 0.4)
    )
    final_sinc_prob: float = 0.8
    final_sinc_sizes: tuple[int, ...] = _odd_sizes(15)
    final_jpeg_range: tuple[float, float] = (30.0, 95.0)  # [jpeg_range2]
    recompress_prob: float = 0.0
    """Chance that the finished LR image is JPEG-compressed once more, as photos are when a
    phone, a messenger or a web page re-saves them (not in the release: 0)."""
    recompress_range: tuple[float, float] = (20.0, 50.0)

    @classmethod
    def train(cls) -> DegradationConfig:
        """The release's training degradation (METHOD §7)."""
        return cls()

    @classmethod
    def test(cls) -> DegradationConfig:
        """ResShift's milder first-order ImageNet-Test degradation (METHOD §8)."""
        mild_probs = (0.6, 0.4, 0.0, 0.0, 0.0, 0.0)
        return cls(
            first_blur=BlurSettings(_odd_sizes(13), mild_probs, (0.2, 0.8), (1.0, 1.5), (1.0, 1.2)),
            first_resize=ResizeSettings((0.2, 0.7, 0.1), (0.5, 1.5)),
            first_noise=NoiseSettings(0.5, (1.0, 15.0), (0.05, 0.3), 0.4),
            first_jpeg_range=(70.0, 95.0),
            second_order_prob=0.0,
            second_blur_prob=0.2,
            second_blur=BlurSettings(_odd_sizes(7), mild_probs, (0.2, 0.5), (0.5, 0.8), (1.0, 1.2)),
            second_resize=ResizeSettings((0.3, 0.4, 0.3), (0.8, 1.2)),
            second_noise=NoiseSettings(0.5, (1.0, 10.0), (0.05, 0.2), 0.4),
            final_sinc_prob=0.2,
            final_sinc_sizes=_odd_sizes(7),
            final_jpeg_range=(80.0, 100.0),
        )

    @classmethod
    def jpeg(cls) -> DegradationConfig:
        """:meth:`test`, then JPEG at quality 20-50: real-world compressed photos, for
        evaluation (``gtasr make-testset --preset jpeg``)."""
        return replace(cls.test(), recompress_prob=1.0, recompress_range=(20.0, 50.0))

    @classmethod
    def real(cls) -> DegradationConfig:
        """Training for real photos: :meth:`test`, and for half of the images a second JPEG
        at quality 20-60, so that blocking is seen as damage to remove. The release's
        ``train`` recipe covers compression too, but its blur and noise pull PSNR down
        (docs/training-diagnosis.md, Finding 5)."""
        return replace(cls.test(), recompress_prob=0.5, recompress_range=(20.0, 60.0))

    @classmethod
    def preset(cls, name: str) -> DegradationConfig:
        """One of :data:`PRESETS`: ``"train"``, ``"test"``, ``"jpeg"`` or ``"real"``."""
        if name not in PRESETS:
            raise ValueError(f"unknown degradation preset {name!r} ({', '.join(PRESETS)})")
        return getattr(cls, name)()


PRESETS = ("train", "test", "jpeg", "real")
"""Named degradations: the release's training, ResShift's test, test + heavy JPEG (for
evaluation), test with a JPEG tail (for training on real photos)."""


def _fft_size(n: int) -> int:
    """The smallest 5-smooth length >= ``n`` (a fast FFT size).

    Zero-extension beyond the padded image never reaches the cropped output,
    so any length >= ``n`` gives the exact result.
    """
    size = n
    while True:
        m = size
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return size
        size += 1


def blur(images: torch.Tensor, kernels: list[np.ndarray]) -> torch.Tensor:
    """Convolve image ``i`` of the batch with ``kernels[i]``, reflect-padding the borders.

    Computed as one batched FFT product: on CPU a 21x21 depthwise convolution
    costs far more than the transforms. The result equals a direct
    convolution with each kernel at its own size (the padding only has to be
    as wide as the largest kernel's half-size, and wider reflect padding holds
    the same pixels where a kernel reaches).
    """
    if len(kernels) != images.shape[0]:
        raise ValueError("one kernel per image is needed")
    b, _, h, w = images.shape
    pad = max(k.shape[0] for k in kernels) // 2
    if pad == 0:
        scale = torch.tensor([float(k[0, 0]) for k in kernels], dtype=images.dtype)
        return images * scale.to(images.device).view(b, 1, 1, 1)
    mode = "reflect" if pad < min(h, w) else "replicate"
    padded = F.pad(images, (pad, pad, pad, pad), mode=mode)
    fh, fw = _fft_size(h + 2 * pad), _fft_size(w + 2 * pad)
    stack = np.zeros((b, fh, fw))
    for i, kernel in enumerate(kernels):
        half = kernel.shape[0] // 2
        # Flip (convolution) and centre the kernel on pixel (0, 0) of the FFT grid.
        stack[i, : kernel.shape[0], : kernel.shape[0]] = kernel[::-1, ::-1]
        stack[i] = np.roll(stack[i], (-half, -half), axis=(0, 1))
    spectrum = torch.fft.rfft2(torch.from_numpy(stack).to(images.device, torch.float32))
    product = torch.fft.rfft2(padded.float(), s=(fh, fw)) * spectrum.unsqueeze(1)
    out = torch.fft.irfft2(product, s=(fh, fw))[..., pad : pad + h, pad : pad + w]
    return out.to(images.dtype)


def _random_factor(rng: np.random.Generator, settings: ResizeSettings) -> float:
    kind = int(rng.choice(3, p=np.asarray(settings.probs) / sum(settings.probs)))
    low, high = settings.scale_range
    if kind == 0:
        return float(rng.uniform(1.0, high))
    if kind == 1:
        return float(rng.uniform(low, 1.0))
    return 1.0


def resize_batch(images: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize to ``size`` (h, w) with ``mode`` as ``F.interpolate`` does (no antialias)."""
    size = (max(1, size[0]), max(1, size[1]))
    if mode == "area":
        return F.interpolate(images, size=size, mode="area")
    return F.interpolate(images, size=size, mode=mode, align_corners=False)


def _noise(
    images: torch.Tensor,
    settings: NoiseSettings,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> torch.Tensor:
    if rng.uniform() < settings.gaussian_prob:
        return add_gaussian_noise(images, settings.sigma_range, settings.gray_prob, generator)
    return add_poisson_noise(images, settings.poisson_scale_range, settings.gray_prob, generator)


def _jpeg(images: torch.Tensor, quality_range: tuple[float, float], rng: np.random.Generator):
    quality = torch.from_numpy(rng.uniform(*quality_range, size=images.shape[0]))
    return jpeg_compress(torch.clamp(images, 0, 1), quality)


def _recompress(images: torch.Tensor, config: DegradationConfig, rng: np.random.Generator):
    """The once-more JPEG of each image drawn with ``config.recompress_prob`` (no draws at
    probability 0, so the release's and the test recipe's draws are unchanged)."""
    if config.recompress_prob <= 0:
        return images
    chosen = rng.uniform(size=images.shape[0]) < config.recompress_prob
    quality = rng.uniform(*config.recompress_range, size=images.shape[0])
    if not chosen.any():
        return images
    compressed = jpeg_compress(torch.clamp(images, 0, 1), torch.from_numpy(quality))
    keep = torch.from_numpy(~chosen).to(images.device).view(-1, 1, 1, 1)
    return torch.where(keep, images, compressed)


def _round8_unit(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images rounded to the nearest multiple of 1/255."""
    return torch.clamp(torch.round(images * 255.0), 0, 255) / 255.0


def round8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images rounded to the nearest 8-bit level (what an 8-bit file would keep)."""
    return _round8_unit((images + 1.0) / 2.0) * 2.0 - 1.0


def _generators(generator: torch.Generator, device: torch.device):
    """A numpy Generator for scalar draws and a torch one on ``device`` for noise fields."""
    seeds = torch.randint(0, 2**62, (2,), generator=generator, device=generator.device).tolist()
    noise = torch.Generator(device=device)
    noise.manual_seed(int(seeds[1]))
    return np.random.default_rng(int(seeds[0])), noise


def degrade_batch(
    hr: torch.Tensor, config: DegradationConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Degrade HR images ``[B, 3, H, W]`` in [-1, 1] into ``(y, y0)``, both in [-1, 1].

    ``y`` is ``[B, 3, H/scale, W/scale]`` and ``y0`` ``[B, 3, H, W]``, both
    multiples of 2/255 (8-bit images). H and W must be multiples of ``scale``.
    ``generator`` (any device) decides every random choice; the computation
    runs on ``hr``'s device.
    """
    b, _, h, w = hr.shape
    s = config.scale
    if h % s or w % s:
        raise ValueError(f"HR size {h}x{w} is not a multiple of the scale {s}")
    rng, noise_gen = _generators(generator, hr.device)
    with torch.no_grad():
        x = (hr.float() + 1.0) / 2.0
        # First order.
        x = blur(x, [random_blur_kernel(rng, config.first_blur) for _ in range(b)])
        factor = _random_factor(rng, config.first_resize)
        mode = RESIZE_MODES[int(rng.integers(3))]
        x = resize_batch(x, (int(h * factor), int(w * factor)), mode)
        x = _noise(x, config.first_noise, rng, noise_gen)
        x = _jpeg(x, config.first_jpeg_range, rng)
        # Second order.
        if rng.uniform() < config.second_order_prob:
            if rng.uniform() < config.second_blur_prob:
                x = blur(x, [random_blur_kernel(rng, config.second_blur) for _ in range(b)])
            factor = _random_factor(rng, config.second_resize)
            mode = RESIZE_MODES[int(rng.integers(3))]
            x = resize_batch(x, (int(h / s * factor), int(w / s * factor)), mode)
            x = _noise(x, config.second_noise, rng, noise_gen)
        # Final: {resize to the LR size + sinc} and {JPEG} in random order.
        sincs = [
            random_final_sinc(rng, config.final_sinc_sizes, config.final_sinc_prob)
            for _ in range(b)
        ]
        mode = RESIZE_MODES[int(rng.integers(3))]
        if rng.uniform() < 0.5:
            x = blur(resize_batch(x, (h // s, w // s), mode), sincs)
            x = _jpeg(x, config.final_jpeg_range, rng)
        else:
            x = _jpeg(x, config.final_jpeg_range, rng)
            x = blur(resize_batch(x, (h // s, w // s), mode), sincs)
        x = _recompress(x, config, rng)
        y = _round8_unit(x) * 2.0 - 1.0
        y0 = round8(upsample_lr(y, s))
    return y.to(hr.dtype), y0.to(hr.dtype)
