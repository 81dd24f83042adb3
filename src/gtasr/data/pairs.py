"""Images of two folders matched by file stem: GT/LR test pairs and SR/GT scoring pairs.

One rule wherever two folders are paired (validation, evaluation, the diagnostics, comparison
grids): images are matched by file stem whatever their extension (``gt/0001.png`` with
``lq/0001.jpg``); an image without a partner in the other folder is an error naming it, and so
are two files of one folder that share a stem. A pair whose sizes do not fit (an LR image must
be exactly ``scale`` times smaller than its GT, an SR image as large as its GT) is an
:class:`~gtasr.errors.InputError` naming both files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from gtasr.data.datasets import flatten_alpha
from gtasr.errors import GtasrError, InputError
from gtasr.imageio import Image, read_image, to_tensor
from gtasr.listing import list_images

SCALE = 4
"""The LR -> GT factor of gtasr's test sets (x4 super-resolution)."""
UNMATCHED_NAMED = 5
"""How many unmatched files an error names before it only counts the rest."""


@dataclass(frozen=True)
class ImagePair:
    """One test image: its stem, ground truth x0 (1x3xHxW) and LR y (1x3x(H/s)x(W/s)) in [-1, 1]."""

    stem: str
    x0: Tensor
    y: Tensor


def images_by_stem(folder: str | Path) -> dict[str, Path]:
    """Image files of ``folder`` keyed by stem; two files sharing a stem are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    files: dict[str, Path] = {}
    for path in list_images([folder]):
        if path.stem in files:
            raise InputError(path, f"same stem as {files[path.stem].name}; cannot match by stem")
        files[path.stem] = path
    if not files:
        raise InputError(folder, "no image files")
    return files


def match_stems(first: str | Path, second: str | Path) -> list[tuple[str, Path, Path]]:
    """``(stem, file in first, file in second)`` for every stem, sorted by stem.

    Images without a partner are an error that names them (the first few, and a count).
    """
    ones, twos = images_by_stem(first), images_by_stem(second)
    unmatched = [f"{ones[s]} (none in {second})" for s in sorted(ones.keys() - twos.keys())]
    unmatched += [f"{twos[s]} (none in {first})" for s in sorted(twos.keys() - ones.keys())]
    if unmatched:
        shown = "; ".join(unmatched[:UNMATCHED_NAMED])
        more = (
            f"; and {len(unmatched) - UNMATCHED_NAMED} more"
            if len(unmatched) > UNMATCHED_NAMED
            else ""
        )
        raise GtasrError(f"no image of the same stem for {len(unmatched)} file(s): {shown}{more}")
    return [(stem, ones[stem], twos[stem]) for stem in sorted(ones)]


def read_pair(path: Path, reference: Path, scale: int = 1) -> tuple[Image, Image]:
    """Read an image and its reference, which must be exactly ``scale`` times its size."""
    image, other = read_image(path), read_image(reference)
    if (other.height, other.width) != (scale * image.height, scale * image.width):
        scaled = f" (x{scale}: {scale * image.width}x{scale * image.height})" if scale != 1 else ""
        raise InputError(
            path,
            f"size {image.width}x{image.height}{scaled} does not match {reference} "
            f"({other.width}x{other.height})",
        )
    return image, other


def crop_to_stride(y: Tensor, x0: Tensor, stride: int, scale: int = SCALE) -> tuple[Tensor, Tensor]:
    """LR ``y`` cropped at the bottom and right to multiples of ``stride``, its GT ``x0`` alike.

    Networks with a down-sampling stride need such sizes; cropping (not padding) keeps the
    scores to pixels that exist in both images.
    """
    height = y.shape[-2] - y.shape[-2] % stride
    width = y.shape[-1] - y.shape[-1] % stride
    if height == 0 or width == 0:
        raise ValueError(f"LR {tuple(y.shape[-2:])} is smaller than the network stride {stride}")
    return y[..., :height, :width], x0[..., : height * scale, : width * scale]


def load_pairs(
    gt_dir: str | Path,
    lq_dir: str | Path,
    *,
    stride: int = 1,
    limit: int | None = None,
    scale: int = SCALE,
) -> list[ImagePair]:
    """GT/LR pairs matched by stem (the first ``limit``), LR cropped to a multiple of ``stride``.

    Transparency is composited onto white (as for training photos).
    """
    pairs = []
    for stem, lq_path, gt_path in match_stems(lq_dir, gt_dir)[:limit]:
        lq, gt = read_pair(lq_path, gt_path, scale)
        try:
            y, x0 = crop_to_stride(
                to_tensor(flatten_alpha(lq)), to_tensor(flatten_alpha(gt)), stride, scale
            )
        except ValueError as error:
            raise InputError(lq_path, str(error)) from error
        pairs.append(ImagePair(stem=stem, x0=x0, y=y))
    return pairs
