"""NIQE: MATLAB-style resizing, pristine model, and values of the reference code."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from gtasr.eval.niqe import matlab_imresize, niqe, pristine_model

# basicsr 1.4.2's niqe() and imresize run in float64 on these files (cv2 decoding; the
# shipped calculate_niqe works in float32 and differs by up to ~0.1 on flat images).
REFERENCE_NIQE = {
    "imagenet-test-sample/gt/ILSVRC2012_val_00000067.png": 11.743280138455447,
    "realset65/dog.png": 11.893285751639892,
}


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_pristine_model_shapes_and_symmetry():
    mu, cov = pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > -1e-9)


def test_matlab_imresize_half_matches_reference_output():
    # expected values: basicsr's MATLAB-compatible imresize (float64) on the same array
    array = (np.arange(30, dtype=np.float64).reshape(6, 5) ** 2) % 17
    expected = [
        [3.291046142578125, 9.849624633789062, 14.585845947265625],
        [6.4301300048828125, 6.31298828125, 8.173919677734375],
        [12.052261352539062, 7.1205902099609375, 8.126953125],
    ]
    np.testing.assert_allclose(matlab_imresize(array, 0.5), expected, atol=1e-12)
    np.testing.assert_allclose(matlab_imresize(np.full((7, 9), 42.0), 0.5), np.full((4, 5), 42.0))


@pytest.mark.parametrize("name", sorted(REFERENCE_NIQE))
def test_niqe_matches_reference_implementation(shared_data, name):
    assert niqe(_rgb(shared_data / name)) == pytest.approx(REFERENCE_NIQE[name], abs=1e-4)


def test_degraded_image_scores_worse(shared_data):
    clean = Image.open(shared_data / "imagenet-test-sample/gt/ILSVRC2012_val_00000084.png")
    clean = clean.convert("RGB")
    blurred = np.asarray(clean.filter(ImageFilter.GaussianBlur(3)))
    noise = np.random.default_rng(0).normal(0, 30, size=blurred.shape)
    noisy = np.clip(np.asarray(clean) + noise, 0, 255).round()
    score = niqe(np.asarray(clean))
    assert niqe(blurred) > score + 3
    assert niqe(noisy) > score + 3


def test_image_with_fewer_than_two_blocks_is_rejected():
    with pytest.raises(ValueError, match="at least two 96x96 blocks"):
        niqe(np.zeros((160, 160, 3)))


def test_flat_image_is_rejected_rather_than_scored():
    with pytest.raises(ValueError, match="undefined"):
        niqe(np.full((192, 192, 3), 128.0))
