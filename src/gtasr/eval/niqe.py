"""NIQE: the "completely blind" Natural Image Quality Evaluator (Mittal et al., 2013).

The distance between a multivariate Gaussian fitted to natural-scene statistics of an
image's 96x96 blocks and that of a corpus of pristine photographs; lower is more natural.
It follows the authors' MATLAB release as BasicSR reproduces it (docs/diagnostics.md), so
the numbers are comparable with published tables; the pristine model is the release's,
stored in ``niqe_pris_params.npz``.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import numpy as np

from gtasr.eval.metrics import rgb_to_y

BLOCK_SIZE = 96
MSCN_WINDOW = 7
MSCN_SIGMA = 7.0 / 6.0
_SHAPE_GRID = np.arange(0.2, 10.001, 0.001)
_NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@functools.lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """Mean (36,) and covariance (36, 36) of the pristine-image feature MVG."""
    source = resources.files("gtasr.eval").joinpath("niqe_pris_params.npz")
    with source.open("rb") as handle, np.load(handle, allow_pickle=False) as params:
        return params["mu_pris_param"].astype(np.float64), params["cov_pris_param"].astype(
            np.float64
        )


def mscn_window() -> np.ndarray:
    """The 7x7 Gaussian window (sigma 7/6, sum 1) of the local mean and deviation."""
    offsets = np.arange(MSCN_WINDOW, dtype=np.float64) - (MSCN_WINDOW - 1) / 2.0
    taps = np.exp(-(offsets**2) / (2.0 * MSCN_SIGMA**2))
    window = np.outer(taps, taps)
    return window / window.sum()


def _filter_nearest(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Same-size 2-D filtering of ``image`` by a symmetric ``window``, edges replicated."""
    radius = window.shape[0] // 2
    padded = np.pad(image, radius, mode="edge")
    height, width = image.shape
    out = np.zeros_like(image)
    for dy in range(window.shape[0]):
        for dx in range(window.shape[1]):
            out += window[dy, dx] * padded[dy : dy + height, dx : dx + width]
    return out


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (Eq. 1 of the NIQE paper)."""
    window = mscn_window()
    mu = _filter_nearest(image, window)
    sigma = np.sqrt(np.abs(_filter_nearest(image * image, window) - mu * mu))
    return (image - mu) / (sigma + 1.0)


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (a = -0.5)."""
    ax = np.abs(x)
    near = (1.5 * ax**3 - 2.5 * ax**2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax**3 + 2.5 * ax**2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def matlab_resize_matrix(in_length: int, scale: float) -> np.ndarray:
    """(out, in) matrix of MATLAB ``imresize(..., 'bicubic')`` along one axis.

    Downscaling widens the kernel by ``1 / scale`` (antialiasing); samples
    beyond the edges are mirrored (symmetric padding), as MATLAB does.
    """
    out_length = math.ceil(in_length * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    centers = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(centers - width / 2.0)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = centers[:, None] - indices
    weights = scale * _cubic(distance * scale) if scale < 1 else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    zero_based = indices.astype(np.int64) - 1
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    source = mirror[np.mod(zero_based, 2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), source.ravel()), weights.ravel())
    return matrix


def matlab_imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize a 2-D float array like MATLAB's antialiased bicubic ``imresize``."""
    rows = matlab_resize_matrix(image.shape[0], scale)
    cols = matlab_resize_matrix(image.shape[1], scale)
    return rows @ image @ cols.T


@functools.lru_cache(maxsize=1)
def _shape_ratio_table() -> np.ndarray:
    """Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) on the moment-matching grid of shapes a."""
    gammas = np.array([[math.gamma(k / a) for k in (1, 2, 3)] for a in _SHAPE_GRID])
    return gammas[:, 1] ** 2 / (gammas[:, 0] * gammas[:, 2])


def _side_std(side: np.ndarray) -> float:
    """Root mean square of one side of the distribution; NaN when that side is empty."""
    return float(np.sqrt(np.mean(side**2))) if side.size else math.nan


def aggd_fit(values: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of an asymmetric generalised Gaussian: (shape, left scale, right scale).

    The shape is picked on the grid 0.2:0.001:10, as in the MATLAB release.
    """
    values = values.ravel()
    left_std, right_std = _side_std(values[values < 0]), _side_std(values[values > 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(values)) ** 2 / np.mean(values**2)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    shape = float(_SHAPE_GRID[np.argmin((_shape_ratio_table() - r_norm) ** 2)])
    spread = math.sqrt(math.gamma(1 / shape) / math.gamma(3 / shape))
    return shape, float(left_std * spread), float(right_std * spread)


def block_features(block: np.ndarray) -> list[float]:
    """The 18 NIQE features of one block of MSCN coefficients."""
    shape, left, right = aggd_fit(block)
    features = [shape, (left + right) / 2.0]
    for shift in _NEIGHBOUR_SHIFTS:
        product = block * np.roll(block, shift, axis=(0, 1))
        shape, left, right = aggd_fit(product)
        mean = (right - left) * math.gamma(2 / shape) / math.gamma(1 / shape)
        features.extend([shape, mean, left, right])
    return features


def niqe_features(luma: np.ndarray) -> np.ndarray:
    """(blocks, 36) feature matrix of a Y image on [0, 255] (already cropped to whole blocks)."""
    blocks_h, blocks_w = luma.shape[0] // BLOCK_SIZE, luma.shape[1] // BLOCK_SIZE
    image = luma
    per_scale = []
    for scale in (1, 2):
        coefficients = mscn(image)
        size = BLOCK_SIZE // scale
        blocks = [
            coefficients[i * size : (i + 1) * size, j * size : (j + 1) * size]
            for i in range(blocks_h)
            for j in range(blocks_w)
        ]
        per_scale.append(np.array([block_features(block) for block in blocks]))
        if scale == 1:
            image = matlab_imresize(image / 255.0, 0.5) * 255.0
    return np.concatenate(per_scale, axis=1)


def niqe_luma(luma: np.ndarray) -> float:
    """NIQE of a single-channel image on [0, 255] (rounded as the MATLAB code expects)."""
    height, width = luma.shape
    blocks_h, blocks_w = height // BLOCK_SIZE, width // BLOCK_SIZE
    if blocks_h * blocks_w < 2:
        raise ValueError(
            f"NIQE needs at least two {BLOCK_SIZE}x{BLOCK_SIZE} blocks; the image is "
            f"{width}x{height}"
        )
    cropped = np.round(luma[: blocks_h * BLOCK_SIZE, : blocks_w * BLOCK_SIZE].astype(np.float64))
    features = niqe_features(cropped)
    mu_pristine, cov_pristine = pristine_model()
    complete = features[~np.isnan(features).any(axis=1)]
    if complete.shape[0] < 2:
        raise ValueError("NIQE is undefined: fewer than two 96x96 blocks have texture to fit")
    mu_image = np.nanmean(features, axis=0)
    cov_image = np.cov(complete, rowvar=False)
    difference = mu_pristine - mu_image
    try:
        distance = difference @ np.linalg.pinv((cov_pristine + cov_image) / 2.0) @ difference
    except np.linalg.LinAlgError as error:
        raise ValueError(f"NIQE is undefined: {error}") from error
    return float(np.sqrt(distance))


def niqe(rgb: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of an HxWx3 RGB image on [0, 255] (lower is more natural)."""
    luma = rgb_to_y(rgb)
    if crop_border:
        luma = luma[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_luma(luma)
