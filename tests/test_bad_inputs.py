"""Bad input at the command line, one table: every case exits with its code and one line.

Each case runs ``gtasr`` in-process (``gtasr.cli.main``) on tiny files made once per module
and asserts: the exit code; a one-line message that names the file or flag and the problem
(or, for inputs that are unusual but fine, no error and the expected note); no traceback;
no file at a final name that does not decode; no temporary file left; no file written
outside the output folder.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import yaml
from safetensors import safe_open

from gtasr.cli import main
from gtasr.imageio import read_image
from gtasr.infer.upscaler import bundled_model_path
from gtasr.listing import IMAGE_SUFFIXES
from gtasr.modelfile import read_info, save_described

from .train.conftest import SMALL, merge, synthetic_photo


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path) -> None:
    """A 100 000 x 100 000 PNG header over one byte of pixels."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0"))
        + _png_chunk(b"IEND", b"")
    )


class _Payload:
    """Unpickling this would run a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _model_variant(path: Path, network=None, precond=None, tensors=None) -> None:
    """The bundled model with its metadata or tensors replaced."""
    from safetensors.torch import load_file

    info = read_info(bundled_model_path())
    state = load_file(str(bundled_model_path())) if tensors is None else tensors
    from dataclasses import replace

    changed = replace(
        info,
        network=info.network if network is None else network,
        precond=info.precond if precond is None else precond,
    )
    save_described(path, state, changed)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every input of the table, good and bad, made once."""
    root = tmp_path_factory.mktemp("zoo")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (8, 10, 3), np.uint8)
    PIL.Image.fromarray(pixels).save(root / "a.png")
    PIL.Image.fromarray(pixels).save(root / "a.jpg")
    (root / "empty.png").write_bytes(b"")
    full = (root / "a.png").read_bytes()
    (root / "truncated.png").write_bytes(full[: len(full) // 2])
    (root / "notes.png").write_text("shopping list: milk, eggs")
    _bomb_png(root / "bomb.png")
    PIL.Image.new("CMYK", (10, 8), (10, 200, 30, 0)).save(root / "cmyk.jpg")
    palette = PIL.Image.fromarray(pixels).convert("P")
    palette.save(root / "palette.png", transparency=0)
    PIL.Image.fromarray(rng.integers(0, 65536, (8, 10), np.uint16)).save(root / "deep.png")
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    PIL.Image.fromarray(pixels).save(root / "rotated.jpg", exif=exif)
    import tifffile

    tifffile.imwrite(
        root / "float.tif", rng.random((8, 10, 3), dtype=np.float32), photometric="rgb"
    )
    frames = [PIL.Image.fromarray(np.full((8, 10, 3), v, np.uint8)) for v in (0, 255)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:])
    (root / "nothing").mkdir()
    (root / "afile").write_text("a file, not a folder")
    PIL.Image.fromarray(pixels).save(root / f"{'long' * 62}.png")  # 252-character stem
    # models
    _model_variant(
        root / "huge.safetensors",
        network={**read_info(bundled_model_path()).network, "base_channels": 4096},
        tensors={"conv_in.weight": torch.zeros(2, 2)},
    )
    _model_variant(root / "evil-precond.safetensors", precond={"evil": 1})
    state = {k: v.clone() for k, v in safe_items(bundled_model_path())}
    first = next(iter(state))
    state[first][..., 0] = float("nan")
    _model_variant(root / "nan.safetensors", tensors=state)
    model = bundled_model_path().read_bytes()
    (root / "truncated.safetensors").write_bytes(model[: len(model) // 3])
    with open(root / "payload.pth", "wb") as handle:
        pickle.dump({"params_ema": _Payload(root / "payload-ran")}, handle, protocol=2)
    _round_three_files(root, rng)
    # training
    photos = root / "photos"
    photos.mkdir()
    for index in range(2):
        PIL.Image.fromarray(synthetic_photo(index)).save(photos / f"p{index}.png")
    config = merge(SMALL, {"data": {"hr_dirs": [str(photos)]}})
    (root / "train.yaml").write_text(yaml.safe_dump(config))
    (root / "broken.yaml").write_text("stage: [1\n")
    for folder, side in (("sr", 16), ("gt", 16), ("lq", 4)):
        (root / folder).mkdir()
        PIL.Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8)).save(
            root / folder / "x.png"
        )
    return root


def _written_as_is(
    path: Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor] | None = None
) -> None:
    """The bundled model file with metadata entries or tensors replaced, written directly
    (gtasr's writer would put its own consistent metadata and convention tensors back)."""
    from safetensors.torch import save_file

    with safe_open(str(bundled_model_path()), framework="pt") as handle:
        stored = handle.metadata()
    state = {**dict(safe_items(bundled_model_path())), **(tensors or {})}
    save_file(state, str(path), metadata={**stored, **metadata})


def _round_three_files(root: Path, rng: np.random.Generator) -> None:
    """Images whose samples gtasr cannot represent, damaged model descriptions, authors'
    files with tensors that are not plain float weights, and hostile configs."""
    import tifffile

    tifffile.imwrite(
        root / "cmyk16.tif", np.full((8, 10, 4), 30000, np.uint16), photometric="separated"
    )
    tifffile.imwrite(root / "int32.tif", rng.integers(0, 2**31, (8, 10), dtype=np.int32))
    info = read_info(bundled_model_path())
    deep_network = '{"nested": ' + "[" * 5000 + "]" * 5000 + "}"
    _written_as_is(root / "deep-network.safetensors", {"network": deep_network})
    _model_variant(
        root / "huge-precond.safetensors", precond={**info.precond, "sigma_data": 10**400}
    )
    _model_variant(root / "sigma-1e308.safetensors", precond={**info.precond, "sigma_data": 1e308})
    _written_as_is(root / "anchor-says-off.safetensors", {}, {"gtasr.lr_anchor": torch.zeros(1)})
    from gtasr.nets import build_network
    from gtasr.nets.release_layout import release_state_dict

    release = release_state_dict(build_network("tiny"))
    first = next(name for name, value in release.items() if value.dim() == 4)
    for kind, tensor in (
        ("int64", release[first].to(torch.int64)),
        ("meta", torch.empty(release[first].shape, device="meta")),
        ("sparse", release[first].to_sparse()),
    ):
        torch.save({"params_ema": {**release, first: tensor}}, root / f"authors-{kind}.pth")
    (root / "latin1.yaml").write_bytes(b"stage: 1\nnote: caf\xe9\n")
    (root / "deep.yaml").write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    block = "".join(" " * depth + f"k{depth}:\n" for depth in range(1, 300))
    (root / "deep-block.yaml").write_text("a:\n" + block + " " * 300 + "1\n")
    os.mkfifo(root / "fifo.yaml")
    (root / "newline\nname.png").write_bytes(b"")


def safe_items(path: Path) -> list[tuple[str, torch.Tensor]]:
    with safe_open(str(path), framework="pt") as handle:
        return [(name, handle.get_tensor(name)) for name in handle.keys()]  # noqa: SIM118


@dataclass(frozen=True)
class Case:
    """One command line: ``{zoo}`` (the inputs), ``{rel}`` (the same, relative to the
    working directory), ``{out}`` and ``{model}`` (the bundled model) are filled in."""

    argv: str
    code: int
    says: tuple[str, ...]
    """Fragments of the one error line (exit 1 or 2), or of a log line (exit 0)."""
    runs: int = 1
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    check: Callable[[Path, Path], None] | None = None
    """``check(zoo, out)`` after the last run."""


def _disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("gtasr.imageio._write_pillow", full)


def _out_of_memory_on_a_small_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine of 4 KB: even the output canvas of a 10x8 image cannot fit."""

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr("gtasr.infer.batch.resize", no_memory)
    monkeypatch.setattr("gtasr.infer.batch.physical_memory", lambda: 4096)


def _ctrl_c_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("gtasr.cli.build_parser", interrupted)


def _size(name: str, width: int, height: int) -> Callable[[Path, Path], None]:
    def check(zoo: Path, out: Path) -> None:
        image = read_image(out / name)
        assert (image.width, image.height) == (width, height)

    return check


def _no_payload(zoo: Path, out: Path) -> None:
    assert not (zoo / "payload-ran").exists()


def _config_unchanged(zoo: Path, out: Path) -> None:
    assert not (out / "config.yaml").exists()


UP = "upscale --method bicubic -o {out}"
CASES = {
    # files that cannot be read: exit 1, named, the batch goes on
    "empty": Case(UP + " {zoo}/empty.png", 1, ("empty.png", "not a recognised image")),
    "truncated": Case(UP + " {zoo}/truncated.png", 1, ("truncated.png", "truncated")),
    "not-an-image": Case(UP + " {zoo}/notes.png", 1, ("notes.png", "not a recognised image")),
    "bomb-header": Case(UP + " {zoo}/bomb.png", 1, ("bomb.png", "too many pixels")),
    "float-tiff": Case(UP + " {zoo}/float.tif", 1, ("float.tif", "float32 samples")),
    "missing": Case(UP + " {zoo}/absent.png", 1, ("absent.png", "no such file")),
    "glob-matches-nothing": Case(UP + " '{zoo}/*.webp'", 1, ("*.webp", "no files match")),
    "folder-without-images": Case(UP + " {zoo}/nothing", 1, ("nothing", "no images found")),
    "bad-among-good": Case(
        UP + " {zoo}/notes.png {zoo}/a.png", 1, ("notes.png",), check=_size("a.png", 40, 32)
    ),
    # unusual but fine: exit 0
    "cmyk": Case(UP + " {zoo}/cmyk.jpg", 0, ("1 written",), check=_size("cmyk.png", 40, 32)),
    "palette": Case(UP + " {zoo}/palette.png", 0, ("1 written",)),
    "16-bit": Case(UP + " {zoo}/deep.png", 0, ("1 written",)),
    "exif-rotation": Case(
        UP + " {zoo}/rotated.jpg", 0, ("1 written",), check=_size("rotated.png", 32, 40)
    ),
    "animated-gif": Case(UP + " {zoo}/animated.gif", 0, ("animated.gif", "only the first")),
    "long-name": Case(UP + f" {{zoo}}/{'long' * 62}.png", 0, ("1 written",)),
    "same-file-twice": Case(UP + " {rel}/a.png {zoo}/a.png", 0, ("1 written",)),
    "tile-too-small": Case("upscale -o {out} {zoo}/a.png --tile 3", 0, ("tile 3", "using 192")),
    # outputs that cannot be written
    "collision-and-rerun": Case(
        UP + " {zoo}/a.png {zoo}/a.jpg", 1, ("a.jpg", "same output name"), runs=2
    ),
    "output-is-a-file": Case(UP + " {zoo}/a.png -o {zoo}/afile", 1, ("afile", "cannot write")),
    "disk-full": Case(
        UP + " {zoo}/a.png", 1, ("a.png", "No space left on device"), patch=_disk_full
    ),
    "name-too-long": Case(
        UP + f" {{zoo}}/{'long' * 62}.png --suffix _upscaled", 1, ("File name too long",)
    ),
    "suffix-escapes": Case(UP + " {zoo}/a.png --suffix /../../x", 2, ("--suffix", "separator")),
    # flags
    "outscale-inf": Case(UP + " {zoo}/a.png --outscale inf", 2, ("--outscale", "inf")),
    "outscale-huge": Case(UP + " {zoo}/a.png --outscale 1e12", 2, ("--outscale",)),
    "outscale-zero": Case(UP + " {zoo}/a.png --outscale 0", 2, ("--outscale",)),
    "steps-zero": Case("upscale -o {out} {zoo}/a.png --steps 0", 2, ("--steps",)),
    "steps-huge": Case("upscale -o {out} {zoo}/a.png --steps 1000000", 2, ("--steps", "1..64")),
    "quality": Case(UP + " {zoo}/a.png --quality 0", 2, ("--quality",)),
    "negative-tile": Case("upscale -o {out} {zoo}/a.png --tile -1", 2, ("--tile",)),
    "max-pixels": Case(UP + " {zoo}/a.png --max-pixels 0", 2, ("--max-pixels",)),
    "unknown-ext": Case(UP + " {zoo}/a.png --ext gif", 2, ("--ext", "invalid choice")),
    "tile-not-a-number": Case(UP + " {zoo}/a.png --tile abc", 2, ("--tile", "invalid int")),
    "unknown-flag": Case(UP + " {zoo}/a.png --bogus", 2, ("--bogus",)),
    "device-meta": Case("upscale -o {out} {zoo}/a.png --device meta", 2, ("'meta'",)),
    "device-mps": Case("upscale -o {out} {zoo}/a.png --device mps", 2, ("'mps'",)),
    "ctrl-c-at-start": Case(UP + " {zoo}/a.png", 130, ("interrupted",), patch=_ctrl_c_at_start),
    # model files
    "model-claims-huge-network": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/huge.safetensors", 2, ("huge.safetensors",)
    ),
    "info-on-huge-network": Case(
        "info --model {zoo}/huge.safetensors", 2, ("huge.safetensors", "missing")
    ),
    "model-precond-keys": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/evil-precond.safetensors",
        2,
        ("evil-precond.safetensors", "'precond'"),
    ),
    "info-on-precond-keys": Case(
        "info --model {zoo}/evil-precond.safetensors", 2, ("evil-precond", "'precond'")
    ),
    "model-nan-weights": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/nan.safetensors", 2, ("nan.safetensors", "NaN")
    ),
    "info-on-nan-weights": Case(
        "info --model {zoo}/nan.safetensors", 2, ("nan.safetensors", "NaN")
    ),
    "model-truncated": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/truncated.safetensors",
        2,
        ("truncated.safetensors",),
    ),
    "model-missing": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/absent.safetensors", 2, ("absent", "not found")
    ),
    "model-not-a-model": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/notes.png",
        2,
        ("notes.png", "not a safetensors"),
    ),
    "malicious-pickle": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/payload.pth",
        2,
        ("payload.pth", "refused"),
        check=_no_payload,
    ),
    # other commands that write
    "evaluate-unwritable": Case(
        "evaluate --sr {zoo}/sr --gt {zoo}/gt --metrics psnr -o {zoo}/afile/s.json",
        2,
        ("afile/s.json", "cannot write"),
    ),
    "export-onnx-unwritable": Case(
        "export-onnx --model {model} -o {zoo}/afile/m.onnx", 2, ("afile/m.onnx", "cannot write")
    ),
    "convert-unwritable": Case(
        "convert {model} -o {zoo}/afile/m.safetensors", 2, ("afile/m.safetensors", "cannot write")
    ),
    "compare-grid-unwritable": Case(
        "compare-grid --lq {zoo}/lq --gt {zoo}/gt --sr A={zoo}/sr --images x --box 0,0,8,8"
        " -o {zoo}/afile/g.png",
        2,
        ("afile/g.png", "cannot write"),
    ),
    # training configs
    "train-lr-inf": Case(
        "train {zoo}/train.yaml -o {out} --set train.lr=.inf", 2, ("'train.lr'", "inf")
    ),
    "train-lr-nan": Case(
        "train {zoo}/train.yaml -o {out} --set train.lr=.nan", 2, ("'train.lr'", "nan")
    ),
    "train-ema-decay": Case(
        "train {zoo}/train.yaml -o {out} --set train.ema_decay=2", 2, ("'train.ema_decay'",)
    ),
    "train-workers": Case(
        "train {zoo}/train.yaml -o {out} --set data.workers=-1", 2, ("'data.workers'",)
    ),
    "train-crop-stride": Case(
        "train {zoo}/train.yaml -o {out} --set data.crop_size=63",
        2,
        ("'data.crop_size'", "multiple of 16"),
    ),
    "train-network": Case(
        "train {zoo}/train.yaml -o {out} --set model.network={{base_channels:-4}}",
        2,
        ("'model.network'",),
    ),
    "train-unknown-key": Case(
        "train {zoo}/train.yaml -o {out} --set train.speed=9", 2, ("'train.speed'",)
    ),
    "train-missing-config": Case("train {zoo}/absent.yaml -o {out}", 2, ("absent.yaml",)),
    "train-broken-yaml": Case("train {zoo}/broken.yaml -o {out}", 2, ("broken.yaml", "YAML")),
    "train-resume-nothing": Case(
        "train {zoo}/train.yaml -o {out} --resume",
        2,
        ("--resume", "no checkpoint"),
        check=_config_unchanged,
    ),
    # round three of the reliability sweep
    "cmyk-16-bit-tiff": Case(UP + " {zoo}/cmyk16.tif", 1, ("cmyk16.tif", "16-bit CMYK")),
    "int32-tiff": Case(UP + " {zoo}/int32.tif", 1, ("int32.tif", "32-bit", "not supported")),
    "model-network-nested": Case(
        "info --model {zoo}/deep-network.safetensors", 2, ("deep-network", "nested too deeply")
    ),
    "model-precond-10e400": Case(
        "info --model {zoo}/huge-precond.safetensors", 2, ("huge-precond", "sigma_data", "within")
    ),
    "model-sigma-data-1e308-info": Case(
        "info --model {zoo}/sigma-1e308.safetensors", 2, ("sigma-1e308", "sigma_data", "within")
    ),
    "model-sigma-data-1e308-upscale": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/sigma-1e308.safetensors", 2, ("sigma_data",)
    ),
    "info-anchor-contradiction": Case(
        "info --model {zoo}/anchor-says-off.safetensors", 2, ("gtasr.lr_anchor", "opposite")
    ),
    "authors-int64-weight": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/authors-int64.pth", 2, ("torch.int64",)
    ),
    "authors-meta-tensor": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/authors-meta.pth", 2, ("meta tensor",)
    ),
    "authors-sparse-tensor": Case(
        "upscale -o {out} {zoo}/a.png --model {zoo}/authors-sparse.pth", 2, ("sparse",)
    ),
    "train-config-not-utf8": Case("train {zoo}/latin1.yaml -o {out}", 2, ("latin1", "UTF-8")),
    "train-config-nested": Case("train {zoo}/deep.yaml -o {out}", 2, ("deep.yaml", "nested")),
    "train-config-nested-block": Case(
        "train {zoo}/deep-block.yaml -o {out}", 2, ("deep-block.yaml", "nested")
    ),
    "train-set-nested": Case(
        "train {zoo}/train.yaml -o {out} --set train.lr=" + "[" * 20000 + "]" * 20000,
        2,
        ("--set", "nested"),
    ),
    "train-config-fifo": Case("train {zoo}/fifo.yaml -o {out}", 2, ("fifo", "not a regular")),
    "train-max-steps-negative": Case(
        "train {zoo}/train.yaml -o {out} --max-steps -3", 2, ("--max-steps", "at least 1")
    ),
    "train-until-step-negative": Case(
        "train {zoo}/train.yaml -o {out} --until-step -3", 2, ("--until-step", "at least 1")
    ),
    "make-testset-seed-negative": Case(
        "make-testset --hr {zoo}/photos -o {out} --seed -1", 2, ("--seed", "0..2**63-1")
    ),
    "upscale-seed-2-64": Case(
        UP + " {zoo}/a.png --seed 18446744073709551616", 2, ("--seed", "0..2**63-1")
    ),
    "ray-gpus-not-a-number": Case(
        UP + " {zoo}/a.png --ray --ray-gpus-per-worker nan", 2, ("--ray-gpus-per-worker", "finite")
    ),
    "ray-client-address": Case(
        UP + " {zoo}/a.png --ray ray://127.0.0.1:10001", 2, ("ray://127.0.0.1:10001", "Ray Client")
    ),
    "hf-spec-bad-repo-name": Case(
        "upscale -o {out} {zoo}/a.png --model 'hf://a b/c/x.pth'",
        2,
        ("hf://a b/c/x.pth", "not a hub repository name"),
    ),
    "hf-spec-dot-dot": Case(
        "upscale -o {out} {zoo}/a.png --model hf://owner/repo/../x.pth",
        2,
        ("hf://owner/repo/../x.pth", "expected hf://"),
    ),
    "max-pixels-above-pillow": Case(
        UP + " {zoo}/bomb.png --max-pixels 20000000000", 1, ("bomb.png", "truncated")
    ),
    "newline-in-a-missing-name": Case(
        UP + " '{zoo}/gone\nname.png'", 1, ("gone\\nname.png", "no such file")
    ),
    "canvas-larger-than-memory": Case(
        UP + " {zoo}/a.png",
        1,
        ("a.png", "out of memory", "output alone needs about", "smaller input"),
        patch=_out_of_memory_on_a_small_machine,
    ),
    "compare-grid-same-column-twice": Case(
        "compare-grid --lq {zoo}/lq --gt {zoo}/gt --sr A={zoo}/sr --sr A={zoo}/gt --images x"
        " --box 0,0,8,8 -o {out}/g.png",
        2,
        ("--sr", "'A' twice"),
    ),
    "train-output-is-a-file": Case(
        "train {zoo}/train.yaml -o {zoo}/afile/run", 2, ("afile/run", "Not a directory")
    ),
}


def _snapshot(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*") if p.is_file()}


def _check_file(path: Path) -> None:
    """A file at a final name must be complete: it decodes as what its name says."""
    assert not (path.name.startswith(".") and ".tmp" in path.name), f"temporary file {path}"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        read_image(path)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".safetensors":
        read_info(path)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input(
    case: Case,
    zoo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import shlex

    work, out = tmp_path / "work", tmp_path / "work" / "out"
    work.mkdir()
    monkeypatch.chdir(work)
    if case.patch is not None:
        case.patch(monkeypatch)
    caplog.set_level(logging.INFO)
    rel = os.path.relpath(zoo, work)
    argv = shlex.split(case.argv.format(zoo=zoo, out=out, rel=rel, model=bundled_model_path()))
    before = _snapshot(tmp_path, zoo)
    for _ in range(case.runs):
        caplog.clear()
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    stderr = capsys.readouterr().err
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    errors += [line for line in stderr.splitlines() if "error:" in line]
    assert code == case.code, (errors, stderr)
    assert "Traceback" not in stderr and not any(r.exc_info for r in caplog.records)
    if case.code == 0:
        assert not errors
        notes = [r.getMessage() for r in caplog.records]
        assert any(all(part in note for part in case.says) for note in notes), notes
    else:
        assert all("\n" not in error for error in errors)
        assert any(all(part in error for part in case.says) for error in errors), errors
    written = _snapshot(tmp_path, zoo) - before
    outside = [p for p in written if out not in p.parents]
    assert not outside, f"written outside the output folder: {outside}"
    for path in written:
        _check_file(path)
    if case.check is not None:
        case.check(zoo, out)
