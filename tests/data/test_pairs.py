"""Folders paired by stem: one rule for unmatched files, size checks, the stride crop."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from gtasr.data.pairs import crop_to_stride, images_by_stem, load_pairs, match_stems, read_pair
from gtasr.errors import GtasrError, InputError


@pytest.fixture
def folders(tmp_path, image_tools):
    """gt/ and lq/ with pairs a (40x36 GT) and b (32x32 GT), b's LR stored as JPEG."""
    gt, lq = tmp_path / "gt", tmp_path / "lq"
    gt.mkdir(), lq.mkdir()
    image_tools.write_png(gt / "a.png", image_tools.textured(36, 40, seed=1))
    image_tools.write_png(lq / "a.png", image_tools.textured(9, 10, seed=2))
    image_tools.write_png(gt / "b.png", image_tools.textured(32, 32, seed=3))
    PIL.Image.fromarray(image_tools.textured(8, 8, seed=4)).save(lq / "b.jpg")
    return gt, lq


def test_match_by_stem_whatever_the_extension(folders):
    gt, lq = folders
    assert [(stem, a.name, b.name) for stem, a, b in match_stems(gt, lq)] == [
        ("a", "a.png", "a.png"),
        ("b", "b.png", "b.jpg"),
    ]


def test_an_unmatched_file_on_either_side_is_an_error_naming_it(folders, image_tools):
    gt, lq = folders
    image_tools.write_png(gt / "only_gt.png", image_tools.textured(32, 32))
    image_tools.write_png(lq / "only_lq.png", image_tools.textured(8, 8))
    with pytest.raises(GtasrError) as error:
        match_stems(gt, lq)
    message = str(error.value)
    assert message.startswith("no image of the same stem for 2 file(s)")
    assert f"{gt / 'only_gt.png'} (none in {lq})" in message
    assert f"{lq / 'only_lq.png'} (none in {gt})" in message
    for index in range(6):
        image_tools.write_png(gt / f"extra{index}.png", image_tools.textured(32, 32))
    with pytest.raises(GtasrError, match=r"for 8 file\(s\).*; and 3 more$"):
        load_pairs(gt, lq)


def test_two_files_with_one_stem_and_empty_folders_are_errors(folders, tmp_path, image_tools):
    gt, _ = folders
    image_tools.write_png(gt / "a.bmp", image_tools.textured(36, 40))
    with pytest.raises(InputError, match="same stem as"):
        images_by_stem(gt)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        images_by_stem(tmp_path / "empty")
    with pytest.raises(InputError, match="not a folder"):
        images_by_stem(tmp_path / "absent")


def test_sizes_must_fit_and_the_error_names_both_files(folders, image_tools):
    gt, lq = folders
    image_tools.write_png(lq / "a.png", image_tools.textured(9, 11))
    with pytest.raises(InputError) as error:
        read_pair(lq / "a.png", gt / "a.png", scale=4)
    assert str(lq / "a.png") in str(error.value) and str(gt / "a.png") in str(error.value)
    assert "11x9 (x4: 44x36)" in str(error.value) and "(40x36)" in str(error.value)
    with pytest.raises(InputError, match="does not match"):
        read_pair(gt / "b.png", gt / "a.png")
    sr, reference = read_pair(gt / "a.png", gt / "a.png")
    np.testing.assert_array_equal(sr.rgb, reference.rgb)


def test_pairs_are_tensors_cropped_to_the_stride(folders):
    gt, lq = folders
    pairs = load_pairs(gt, lq, stride=4)
    assert [p.stem for p in pairs] == ["a", "b"]
    a = pairs[0]
    assert a.y.shape == (1, 3, 8, 8) and a.x0.shape == (1, 3, 32, 32)  # LR 9x10 -> 8x8
    rgb = np.asarray(PIL.Image.open(gt / "a.png"), dtype=np.float32) / 255
    expected = torch.from_numpy(rgb[:32, :32]).permute(2, 0, 1)[None] * 2 - 1
    torch.testing.assert_close(a.x0, expected)
    assert len(load_pairs(gt, lq, limit=1)) == 1
    with pytest.raises(InputError, match="smaller than the network stride 16"):
        load_pairs(gt, lq, stride=16)


def test_crop_to_stride_keeps_the_top_left_corner():
    y = torch.arange(5 * 6, dtype=torch.float32).reshape(1, 1, 5, 6)
    x0 = torch.arange(20 * 24, dtype=torch.float32).reshape(1, 1, 20, 24)
    small_y, small_x0 = crop_to_stride(y, x0, 4)
    assert torch.equal(small_y, y[..., :4, :4]) and torch.equal(small_x0, x0[..., :16, :16])
