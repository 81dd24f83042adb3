"""Blur kernels: normalisation, size, symmetry, closed-form values, sinc frequency response."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gtasr.degrade.kernels import (
    BlurSettings,
    gaussian_kernel,
    generalized_gaussian_kernel,
    identity_kernel,
    pad_kernel,
    plateau_kernel,
    random_blur_kernel,
    random_final_sinc,
    sinc_cutoff_range,
    sinc_kernel,
)

ALL_TYPES = {
    "iso": lambda k: gaussian_kernel(k, 1.3),
    "aniso": lambda k: gaussian_kernel(k, 2.0, 0.7, 0.4),
    "generalized_iso": lambda k: generalized_gaussian_kernel(k, 1.5, 0.6),
    "generalized_aniso": lambda k: generalized_gaussian_kernel(k, 2.0, 3.0, 0.8, -1.0),
    "plateau_iso": lambda k: plateau_kernel(k, 1.2, 1.5),
    "plateau_aniso": lambda k: plateau_kernel(k, 2.5, 1.8, 0.6, 2.0),
    "sinc": lambda k: sinc_kernel(k, math.pi / 3),
}


@pytest.mark.parametrize("kind", sorted(ALL_TYPES))
@pytest.mark.parametrize("size", [7, 13, 21])
def test_every_kernel_sums_to_one_and_has_the_requested_size(kind, size):
    kernel = ALL_TYPES[kind](size)
    assert kernel.shape == (size, size)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    # Every kernel is point-symmetric about its centre (d(x) = d(-x)).
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-15)


@pytest.mark.parametrize("kind", ["iso", "generalized_iso", "plateau_iso", "sinc"])
def test_isotropic_kernels_are_symmetric_under_flips_and_transpose(kind):
    kernel = ALL_TYPES[kind](15)
    np.testing.assert_allclose(kernel, kernel[::-1, :], atol=1e-15)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)


def test_anisotropic_gaussian_orientation_follows_theta():
    wide = gaussian_kernel(21, 3.0, 1.0, 0.0)  # long axis along x (columns)
    assert wide[10, 15] > wide[15, 10]
    np.testing.assert_allclose(wide, wide[::-1, :], atol=1e-15)  # axis-aligned: mirror-symmetric
    rotated = gaussian_kernel(21, 3.0, 1.0, math.pi / 2)
    np.testing.assert_allclose(rotated, wide.T, atol=1e-12)
    diagonal = gaussian_kernel(21, 3.0, 1.0, math.pi / 4)
    assert not np.allclose(diagonal, diagonal[::-1, :])


def test_closed_form_values():
    sigma, beta = 1.7, 1.6
    g = gaussian_kernel(9, sigma)
    assert g[4, 5] / g[4, 4] == pytest.approx(math.exp(-1 / (2 * sigma**2)))
    assert g[5, 5] / g[4, 4] == pytest.approx(math.exp(-2 / (2 * sigma**2)))
    gg = generalized_gaussian_kernel(9, sigma, beta)
    assert gg[4, 6] / gg[4, 4] == pytest.approx(math.exp(-0.5 * (4 / sigma**2) ** beta))
    np.testing.assert_allclose(generalized_gaussian_kernel(9, sigma, 1.0), g, atol=1e-15)
    p = plateau_kernel(9, sigma, beta)
    assert p[4, 6] / p[4, 4] == pytest.approx(1 / (1 + (4 / sigma**2) ** beta))


def test_generalized_beta_controls_the_tail():
    peaky = generalized_gaussian_kernel(21, 2.0, 0.5)
    flat = generalized_gaussian_kernel(21, 2.0, 4.0)
    assert peaky[10, 20] > 100 * flat[10, 20]  # heavy tail for beta < 1
    assert flat[10, 11] / flat[10, 10] > 0.99  # flat top for beta > 1
    assert peaky[10, 11] / peaky[10, 10] == pytest.approx(math.exp(-0.25))


def _radial_response(kernel: np.ndarray, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """|DFT| of the kernel and the radial frequency (rad/pixel) of each bin."""
    padded = np.zeros((n, n))
    size = kernel.shape[0]
    padded[:size, :size] = kernel
    response = np.abs(np.fft.fft2(padded))
    freq = 2 * math.pi * np.fft.fftfreq(n)
    radius = np.hypot(*np.meshgrid(freq, freq))
    return response, radius


@pytest.mark.parametrize("cutoff", [math.pi / 4, math.pi / 2])
def test_sinc_passes_below_and_stops_above_its_cutoff(cutoff):
    response, radius = _radial_response(sinc_kernel(21, cutoff))
    passband = response[radius < 0.6 * cutoff]
    stopband = response[radius > 1.5 * cutoff]
    assert passband.min() > 0.85
    assert stopband.max() < 0.15
    assert passband.mean() == pytest.approx(1.0, abs=0.08)
    # The half-power point sits near the cutoff.
    ring = response[np.abs(radius - cutoff) < 0.05]
    assert 0.25 < ring.mean() < 0.75


def test_sinc_has_negative_lobes_and_centre_limit():
    kernel = sinc_kernel(21, math.pi / 3)
    assert kernel.min() < 0  # ringing lobes
    # Before normalisation the centre is omega^2 / (4 pi): check the ratio to a neighbour.
    omega = 1.0
    raw_centre = omega**2 / (4 * math.pi)
    neighbour = omega * np.float64(0.44005058574493355) / (2 * math.pi)  # J1(1) / (2 pi)
    k = sinc_kernel(21, omega)
    assert k[10, 10] / k[10, 11] == pytest.approx(raw_centre / neighbour, rel=1e-9)


def test_invalid_sizes_and_cutoffs_raise():
    with pytest.raises(ValueError):
        gaussian_kernel(8, 1.0)
    with pytest.raises(ValueError):
        sinc_kernel(7, 4.0)
    with pytest.raises(ValueError):
        gaussian_kernel(7, 0.0)


def test_padding_and_identity():
    kernel = gaussian_kernel(5, 1.0)
    padded = pad_kernel(kernel, 21)
    assert padded.shape == (21, 21)
    np.testing.assert_array_equal(padded[8:13, 8:13], kernel)
    assert padded.sum() == pytest.approx(1.0)
    identity = identity_kernel(7)
    assert identity[3, 3] == 1.0 and identity.sum() == 1.0


def test_release_sinc_cutoff_ranges():
    assert sinc_cutoff_range(11) == (math.pi / 3, math.pi)
    assert sinc_cutoff_range(13) == (math.pi / 5, math.pi)


SETTINGS = BlurSettings(tuple(range(3, 21, 2)), (0.45, 0.25, 0.12, 0.03, 0.12, 0.03), (0.2, 3.0))


def test_random_kernels_come_from_the_generator():
    first = [random_blur_kernel(np.random.default_rng(5), SETTINGS) for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    rng = np.random.default_rng(0)
    kernels = [random_blur_kernel(rng, SETTINGS) for _ in range(200)]
    sizes = {k.shape[0] for k in kernels}
    assert sizes == set(SETTINGS.kernel_sizes)
    assert all(k.sum() == pytest.approx(1.0) for k in kernels)
    # About 10 % are sinc kernels, the only ones with negative taps here.
    with_negative = sum(bool((k < -1e-12).any()) for k in kernels)
    assert 5 <= with_negative <= 40


def test_final_sinc_probability():
    rng = np.random.default_rng(1)
    drawn = [random_final_sinc(rng, (3, 5, 7), 0.8) for _ in range(300)]
    identities = sum(k.shape == (1, 1) for k in drawn)
    assert 30 <= identities <= 90  # expected 60
    assert all(random_final_sinc(rng, (7,), 0.0).shape == (1, 1) for _ in range(10))


def test_settings_are_validated():
    with pytest.raises(ValueError):
        BlurSettings((4,), (1, 0, 0, 0, 0, 0), (0.2, 1.0))
    with pytest.raises(ValueError):
        BlurSettings((5,), (0.5, 0, 0, 0, 0, 0), (0.2, 1.0))
