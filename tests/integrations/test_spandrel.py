"""gtasr models through the real spandrel package (as ComfyUI and chaiNNer load them).

spandrel imports torchvision, which the CPU PyTorch of the main test environment
lacks; ``make test`` runs this file a second time in ``.venv-spandrel``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

spandrel = pytest.importorskip("spandrel")

from gtasr.cli import main  # noqa: E402
from gtasr.imageio import quantize  # noqa: E402
from gtasr.infer.noise import image_seed  # noqa: E402
from gtasr.infer.upscaler import bundled_model_path  # noqa: E402
from gtasr.integrations.spandrel import ARCH_ID, register  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    register()


@pytest.fixture(scope="module")
def release_small(shared_data: Path) -> Path:
    path = shared_data / "release-reference" / "release_small.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def lr_image(shared_data: Path) -> Path:
    return shared_data / "release-reference" / "pipeline_lr.png"


def test_register_is_idempotent() -> None:
    count = len(spandrel.MAIN_REGISTRY)
    register()
    register()
    assert len(spandrel.MAIN_REGISTRY) == count
    assert [a.architecture.id for a in spandrel.MAIN_REGISTRY].count(ARCH_ID) == 1


def test_other_architectures_are_not_claimed() -> None:
    support = spandrel.MAIN_REGISTRY[ARCH_ID]
    assert not support.detect({"conv_first.weight": torch.zeros(64, 3, 3, 3)})
    assert not support.detect({"model.map_layer0.weight": torch.zeros(1)})


def _cli_output(tmp_path: Path, image: Path, model: Path, seed: int) -> np.ndarray:
    out = tmp_path / "cli"
    args = ["upscale", str(image), "-o", str(out), "--model", str(model), "--seed", str(seed)]
    assert main([*args, "--device", "cpu"]) == 0
    return np.asarray(PIL.Image.open(out / image.name))


def _descriptor_output(descriptor: object, image: Path, seed: int) -> np.ndarray:
    rgb = np.asarray(PIL.Image.open(image).convert("RGB"), dtype=np.float32) / 255
    descriptor.model.seed = image_seed(seed, image.name)  # gtasr upscale's seed of the file
    out = descriptor(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    return quantize(out[0].permute(1, 2, 0).numpy(), 8)


def test_release_checkpoint_loads_as_an_sr_model_matching_gtasr_upscale(
    release_small: Path, lr_image: Path, tmp_path: Path
) -> None:
    descriptor = spandrel.ModelLoader().load_from_file(release_small)
    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    assert descriptor.architecture.id == ARCH_ID and descriptor.purpose == "SR"
    assert descriptor.scale == 4 and descriptor.tiling == spandrel.ModelTiling.SUPPORTED
    assert descriptor.size_requirements.multiple_of == 64
    assert descriptor.supports_bfloat16 and descriptor.supports_half
    assert "release" in descriptor.tags
    ours = _descriptor_output(descriptor, lr_image, seed=3)
    assert np.array_equal(ours, _cli_output(tmp_path, lr_image, release_small, seed=3))


def test_gtasr_model_file_loads_matching_gtasr_upscale(lr_image: Path, tmp_path: Path) -> None:
    model = bundled_model_path()
    descriptor = spandrel.ModelLoader().load_from_file(model)
    assert descriptor.size_requirements.multiple_of == 4 and "gtasr" in descriptor.tags
    assert descriptor.model.model.backbone.config["lr_skip"] is False
    assert descriptor.model.model.lr_anchor  # stated by the file's convention tensors
    ours = _descriptor_output(descriptor, lr_image, seed=7)
    assert np.array_equal(ours, _cli_output(tmp_path, lr_image, model, seed=7))


def test_switches_stated_by_convention_tensors_reach_spandrel(
    lr_image: Path, tmp_path: Path
) -> None:
    """The bundled weights relabelled lr_skip on, lr_anchor off: spandrel sees only tensors."""
    from gtasr.modelfile import read_weights, save_model

    state, info = read_weights(bundled_model_path())
    relabelled = tmp_path / "anchor.safetensors"
    save_model(
        relabelled,
        state,
        network={**info.network, "lr_skip": True},
        precond={**info.precond, "lr_anchor": False},
        stage=info.stage,
        iteration=info.iteration,
        weights=info.weights,
    )
    descriptor = spandrel.ModelLoader().load_from_file(relabelled)
    assert descriptor.model.model.backbone.config["lr_skip"] is True
    assert not descriptor.model.model.lr_anchor
    ours = _descriptor_output(descriptor, lr_image, seed=7)
    assert np.array_equal(ours, _cli_output(tmp_path, lr_image, relabelled, seed=7))
    bundled = spandrel.ModelLoader().load_from_file(bundled_model_path())
    assert not np.array_equal(ours, _descriptor_output(bundled, lr_image, seed=7))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_runs_close_to_fp32(dtype: torch.dtype) -> None:
    descriptor = spandrel.ModelLoader().load_from_file(bundled_model_path())
    image = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    full = descriptor(image)
    reduced = descriptor.to(dtype)(image.to(dtype))
    assert reduced.dtype == dtype and reduced.shape == full.shape == (1, 3, 96, 80)
    psnr = 10 * torch.log10(1 / ((reduced.float() - full) ** 2).mean())
    assert float(psnr) > 30
