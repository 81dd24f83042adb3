"""Score a folder of super-resolved images, against ground truth when there is one.

Images are matched by file stem (``sr/0001.png`` with ``gt/0001.jpg``) by the
rule of :mod:`gtasr.data.pairs`: an image without a partner, or two files with
the same stem in one folder, stop the run before any scoring. A pair whose
sizes differ, or a file that cannot be read, is reported by name and left out;
the other pairs are still scored.

Metrics (names as on the command line):

- ``psnr``, ``ssim``: on the BT.601 Y channel, BasicSR conventions
  (:mod:`gtasr.eval.metrics`), optionally ignoring ``crop_border`` pixels;
- ``lpips`` (AlexNet), ``lpips-vgg``, ``dists``: :mod:`gtasr.perceptual`, on the
  whole image in [-1, 1];
- ``niqe``: no-reference, on the SR image only (:mod:`gtasr.eval.niqe`).

Timing (``seconds_per_image``) is the wall time of computing each metric per
image, after the files are decoded and the networks loaded; ``read`` is the
decoding time of the pair. On CUDA the device is synchronised before the clock
stops.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gtasr.data.pairs import images_by_stem, match_stems, read_pair
from gtasr.errors import GtasrError, InputError
from gtasr.eval.metrics import psnr_y, ssim_y
from gtasr.eval.niqe import niqe
from gtasr.imageio import Image, read_image, to_tensor

log = logging.getLogger(__name__)

FULL_REFERENCE = ("psnr", "ssim", "lpips", "lpips-vgg", "dists")
NO_REFERENCE = ("niqe",)
METRICS = FULL_REFERENCE + NO_REFERENCE
DEFAULT_WITH_GT = ("psnr", "ssim", "lpips")
DEFAULT_WITHOUT_GT = ("niqe",)


@dataclass(frozen=True)
class Pair:
    """One SR image and its ground truth (None when evaluating without GT)."""

    stem: str
    sr: Path
    gt: Path | None


@dataclass
class EvaluationResult:
    """Per-image scores, their means, failures and (optionally) timings."""

    metrics: tuple[str, ...]
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        """Mean of each metric over the images where it was computed (NaN left out, +inf kept)."""
        out = {}
        for name in self.metrics:
            values = [s[name] for s in self.per_image.values() if not math.isnan(s[name])]
            out[name] = float(np.mean(values)) if values else math.nan
        return out

    def seconds_per_image(self) -> dict[str, float]:
        """Mean wall time per image of each metric (and of reading the files)."""
        return {name: float(np.mean(v)) for name, v in self.seconds.items() if v}


def parse_metrics(text: str | None, have_gt: bool) -> tuple[str, ...]:
    """Metric names from a comma-separated list; defaults depend on whether GT is given."""
    if not text:
        return DEFAULT_WITH_GT if have_gt else DEFAULT_WITHOUT_GT
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise GtasrError(
            f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}"
        )
    needs_gt = [n for n in names if n in FULL_REFERENCE]
    if needs_gt and not have_gt:
        raise GtasrError(
            f"{', '.join(needs_gt)} need ground truth (--gt); without it only "
            f"{', '.join(NO_REFERENCE)} can be computed"
        )
    if not names:
        raise GtasrError("--metrics names no metric")
    return names


def match_pairs(sr_dir: Path, gt_dir: Path | None) -> list[Pair]:
    """Pair SR and GT images by stem (every SR image alone without ``gt_dir``)."""
    if gt_dir is None:
        return [Pair(stem, path, None) for stem, path in sorted(images_by_stem(sr_dir).items())]
    return [Pair(stem, sr, gt) for stem, sr, gt in match_stems(sr_dir, gt_dir)]


def to_255(image: Image) -> np.ndarray:
    """The RGB samples on [0, 255]; 8-bit images get back their exact integer values."""
    scaled = image.rgb.astype(np.float64) * 255.0
    return np.round(scaled) if image.bit_depth == 8 else scaled


Scorer = Callable[[Image, Image | None], float]


MIN_SIDE = {"lpips": 31, "lpips-vgg": 16, "dists": 1}
"""Smallest height/width the trunks accept: AlexNet's stride-4 conv and two 3x3/2 max-pools
need 31 pixels; VGG16 reaches its last LPIPS layer after four 2x2 pools (16 pixels)."""


def _network_scorer(name: str, module: torch.nn.Module, device: torch.device) -> Scorer:
    """Wrap a perceptual distance network as an image-pair scorer."""
    module = module.to(device).eval()

    def score(sr: Image, gt: Image | None) -> float:
        if gt is None:
            raise ValueError(f"{name} needs a ground-truth image")
        if min(sr.height, sr.width) < MIN_SIDE[name]:
            raise ValueError(f"needs images of at least {MIN_SIDE[name]}x{MIN_SIDE[name]} pixels")
        with torch.no_grad():
            a = to_tensor(sr.rgb).to(device)
            b = to_tensor(gt.rgb).to(device)
            return float(module(a, b)[0])

    return score


def build_scorers(
    metrics: Sequence[str], crop_border: int, device: torch.device
) -> dict[str, Scorer]:
    """One scorer per metric; perceptual networks are loaded here (offline weights)."""
    from gtasr.perceptual import DISTS, LPIPS

    scorers: dict[str, Scorer] = {}
    for name in metrics:
        if name == "psnr":
            scorers[name] = lambda s, g: psnr_y(to_255(s), to_255(g), crop_border)
        elif name == "ssim":
            scorers[name] = lambda s, g: ssim_y(to_255(s), to_255(g), crop_border)
        elif name == "lpips":
            scorers[name] = _network_scorer(name, LPIPS(net="alex"), device)
        elif name == "lpips-vgg":
            scorers[name] = _network_scorer(name, LPIPS(net="vgg"), device)
        elif name == "dists":
            scorers[name] = _network_scorer(name, DISTS(), device)
        elif name == "niqe":
            scorers[name] = lambda s, g: niqe(to_255(s), crop_border)
        else:
            raise GtasrError(f"unknown metric {name!r}")
    return scorers


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _read_pair(pair: Pair) -> tuple[Image, Image | None]:
    if pair.gt is None:
        return read_image(pair.sr), None
    return read_pair(pair.sr, pair.gt)


def evaluate_pairs(
    pairs: Sequence[Pair],
    metrics: Sequence[str],
    *,
    crop_border: int = 0,
    device: torch.device | str = "cpu",
) -> EvaluationResult:
    """Score every pair; unreadable or mismatched pairs are recorded in ``errors`` and skipped."""
    device = torch.device(device)
    scorers = build_scorers(metrics, crop_border, device)
    result = EvaluationResult(metrics=tuple(metrics))
    result.seconds = {"read": [], **{name: [] for name in metrics}}
    for pair in tqdm(pairs, desc="evaluate", unit="image", disable=None):
        start = time.perf_counter()
        try:
            sr, gt = _read_pair(pair)
        except InputError as error:
            log.error("%s", error)
            result.errors.append(str(error))
            continue
        result.seconds["read"].append(time.perf_counter() - start)
        scores: dict[str, float] = {}
        for name, scorer in scorers.items():
            start = _clock(device)
            try:
                scores[name] = scorer(sr, gt)
            except ValueError as error:  # e.g. an image too small for NIQE or SSIM
                message = f"{pair.sr}: {name}: {error}"
                log.error("%s", message)
                result.errors.append(message)
                scores[name] = math.nan
            result.seconds[name].append(_clock(device) - start)
        result.per_image[pair.stem] = scores
    return result


def format_table(result: EvaluationResult, per_image: bool = False, timing: bool = False) -> str:
    """A plain-text table: one row per image (optional), then the mean (and seconds/image)."""
    names = list(result.metrics)
    header = ["image", *names]
    rows: list[list[str]] = []
    if per_image:
        rows += [[stem, *[_fmt(s[n]) for n in names]] for stem, s in result.per_image.items()]
    means = result.means()
    rows.append([f"mean ({len(result.per_image)})", *[_fmt(means[n]) for n in names]])
    if timing:
        seconds = result.seconds_per_image()
        rows.append(["seconds/image", *[f"{seconds.get(n, math.nan):.4f}" for n in names]])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(_align(row, widths) for row in [header, *rows])


def _align(row: list[str], widths: list[int]) -> str:
    """First column left-aligned, numbers right-aligned."""
    cells = [row[0].ljust(widths[0])] + [
        c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
    ]
    return "  ".join(cells)


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.4f}")


def result_to_json(
    result: EvaluationResult,
    *,
    sr_dir: Path,
    gt_dir: Path | None,
    crop_border: int,
    timing: bool,
) -> dict:
    """The document ``gtasr evaluate -o`` writes (with :func:`gtasr.fileio.write_json`)."""
    document = {
        "sr": str(sr_dir),
        "gt": None if gt_dir is None else str(gt_dir),
        "metrics": list(result.metrics),
        "crop_border": crop_border,
        "count": len(result.per_image),
        "mean": result.means(),
        "per_image": result.per_image,
        "errors": list(result.errors),
    }
    if timing:
        document["seconds_per_image"] = result.seconds_per_image()
        document["seconds_per_image_means"] = (
            "wall time per image of each metric after decoding and model loading; "
            "'read' is the decoding time of the pair"
        )
    return document
