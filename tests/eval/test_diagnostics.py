"""drift, decoupling and compare-grid on a tiny random model and synthetic pairs."""

from __future__ import annotations

import json
import logging
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from gtasr.cli import main
from gtasr.data.pairs import load_pairs
from gtasr.eval.diagnostics import draw_noises
from gtasr.method.precond import ConsistencyModel
from gtasr.method.sampling import fixed_noise, sample
from gtasr.method.schedule import bridge, upsample_lr
from gtasr.modelfile import load_model, save_model
from gtasr.nets import build_network, preset_config
from gtasr.perceptual import sobel_magnitude


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Two 64x64 GT / 16x16 LR pairs and two tiny random model files."""
    root = tmp_path_factory.mktemp("diagnostics")
    rng = np.random.default_rng(0)
    for folder in ("gt", "lq"):
        (root / folder).mkdir()
    for i in range(2):
        smooth = rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8)
        gt = Image.fromarray(smooth).resize((64, 64), Image.BICUBIC)
        gt.save(root / f"gt/im{i}.png")
        gt.resize((16, 16), Image.BOX).save(root / f"lq/im{i}.png")
    config = preset_config("tiny")
    config.update(base_channels=16, emb_channels=32, swin_dim=16, head_channels=8)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # faster for these small tensors on busy shared cores
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = build_network(config)
        precond = ConsistencyModel(net).precond_config()
        save_model(
            root / f"m{seed}.safetensors",
            net.state_dict(),
            network=net.config,
            precond=precond,
            stage=1,
            iteration=seed,
            weights="ema",
        )
    yield root
    torch.set_num_threads(previous)


def _data_args(root):
    return ["--gt", str(root / "gt"), "--lq", str(root / "lq"), "--device", "cpu"]


def _models(root):
    return ["--model", str(root / "m0.safetensors"), "--model", str(root / "m1.safetensors")]


def _is_png(path) -> bool:
    with Image.open(path) as image:
        return image.format == "PNG" and image.width > 100 and image.height > 100


@pytest.fixture(scope="module")
def drift_run(workspace):
    out = workspace / "drift"
    argv = ["drift", *_models(workspace), *_data_args(workspace), "-o", str(out)]
    assert main([*argv, "--grid-points", "3", "--seed", "7"]) == 0
    return out


@pytest.fixture(scope="module")
def decoupling_run(workspace):
    out = workspace / "decoupling"
    argv = ["decoupling", *_models(workspace), *_data_args(workspace), "-o", str(out)]
    assert main([*argv, "--draws", "2", "--seed", "3"]) == 0
    return out


def test_drift_writes_plot_and_curves(drift_run):
    document = json.loads((drift_run / "drift.json").read_text())
    assert _is_png(drift_run / "drift.png")
    assert document["etas"] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert document["x_T_index"] == 2 and document["images"] == ["im0", "im1"]
    assert [m["name"] for m in document["models"]] == ["m0", "m1"]
    for model in document["models"]:
        assert len(model["mean_abs_error"]) == 3
        assert np.array(model["per_image_mean_abs_error"]).shape == (2, 3)
        assert all(math.isfinite(v) and 0 < v <= 2 for v in model["mean_abs_error"])
    assert set(document["definitions"]) >= {"eta", "mean_abs_error"}


def test_drift_at_x_T_is_the_one_step_sampler_error(workspace, drift_run):
    """The last grid point predicts from y0 + eps: the one-step sampler with the same eps."""
    document = json.loads((drift_run / "drift.json").read_text())
    pairs = load_pairs(workspace / "gt", workspace / "lq", stride=4)
    noises = draw_noises(pairs, draws=1, seed=7)
    model, _ = load_model(workspace / "m1.safetensors")
    errors = [
        float(
            (sample(model, pair.y, upsample_lr(pair.y), fixed_noise(noise)) - pair.x0).abs().mean()
        )
        for pair, noise in zip(pairs, noises, strict=True)
    ]
    assert document["models"][1]["mean_abs_error"][-1] == pytest.approx(np.mean(errors), rel=1e-5)


def test_decoupling_axes_match_their_definition(workspace, decoupling_run):
    document = json.loads((decoupling_run / "decoupling.json").read_text())
    assert _is_png(decoupling_run / "decoupling.png")
    assert document["timesteps"] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert set(document["definitions"]) == {"positional_error", "structural_variance"}
    entry = document["models"][0]
    for key in ("positional_error", "structural_variance"):
        assert len(entry[key]) == 2 and all(math.isfinite(v) for v in entry[key])
    assert entry["mean_positional_error"] == pytest.approx(np.mean(entry["positional_error"]))

    # recompute image 0 of model m0 step by step
    pair = load_pairs(workspace / "gt", workspace / "lq", stride=4)[0]
    eps = draw_noises([pair], draws=2, seed=3)[0]
    model, _ = load_model(workspace / "m0.safetensors")
    x0, y = pair.x0.expand(2, -1, -1, -1), pair.y.expand(2, -1, -1, -1)
    y0 = upsample_lr(y)
    with torch.no_grad():
        outputs = {t: model(bridge(x0, y0, eps, t), t, y).clamp(-1, 1) for t in (1 / 3, 2 / 3, 1.0)}
    positional = np.abs((outputs[1.0] - x0).numpy()).mean()
    edges = np.stack([sobel_magnitude(o).numpy() for o in outputs.values()])  # (t, k, c, h, w)
    structural = edges.reshape(6, *edges.shape[2:]).var(axis=0).mean()
    assert entry["positional_error"][0] == pytest.approx(positional, rel=1e-5)
    assert entry["structural_variance"][0] == pytest.approx(structural, rel=1e-4)


def test_drift_keeps_earlier_results_unless_overwrite(workspace, drift_run, caplog):
    before = (drift_run / "drift.json").read_bytes()
    argv = ["drift", "--model", str(workspace / "m0.safetensors"), *_data_args(workspace)]
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "-o", str(drift_run), "--grid-points", "2"]) == 2
    assert "drift.json exists (and 1 more outputs); use --overwrite" in caplog.text
    assert (drift_run / "drift.json").read_bytes() == before


def test_drift_with_unmatched_lr_is_a_one_line_error(workspace, tmp_path, caplog):
    shutil.copytree(workspace / "lq", tmp_path / "lq")
    (tmp_path / "lq/im1.png").rename(tmp_path / "lq/other.png")
    argv = ["drift", "--model", str(workspace / "m0.safetensors"), "--gt", str(workspace / "gt")]
    with caplog.at_level(logging.ERROR):
        code = main([*argv, "--lq", str(tmp_path / "lq"), "-o", str(tmp_path / "out")])
    assert code == 2
    [message] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert (
        "im1.png" in message and "other.png" in message and "no image of the same stem" in message
    )
    assert not (tmp_path / "out").exists()


def test_compare_grid_crops_and_psnr(workspace, tmp_path):
    shutil.copytree(workspace / "gt", tmp_path / "perfect")
    out = tmp_path / "grid.png"
    argv = ["compare-grid", "--lq", str(workspace / "lq"), "--gt", str(workspace / "gt")]
    argv += ["--sr", f"copy={tmp_path / 'perfect'}", "--images", "im0,im1", "--box", "8,4,32,40"]
    assert main([*argv, "-o", str(out)]) == 0
    assert _is_png(out)
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["columns"] == ["LR (nearest x4)", "bicubic", "copy", "GT"]
    scores = document["images"]["im0"]["psnr_y"]
    assert scores["copy"] == "inf"
    assert math.isfinite(scores["bicubic"]) and math.isfinite(scores["LR (nearest x4)"])


def test_compare_grid_box_outside_the_image_names_the_file(workspace, tmp_path, caplog):
    argv = ["compare-grid", "--lq", str(workspace / "lq"), "--gt", str(workspace / "gt")]
    argv += ["--sr", f"a={workspace / 'gt'}", "--images", "im0", "--box", "40,40,32,32"]
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "-o", str(tmp_path / "g.png")]) == 2
    assert "im0.png" in caplog.records[-1].getMessage()
    assert "does not fit" in caplog.records[-1].getMessage()


def test_compare_grid_without_gt_shows_the_photos_and_no_psnr(workspace, tmp_path, caplog):
    """Real photos have no GT: the grid is LR | bicubic | models, the box in output pixels."""
    shutil.copytree(workspace / "gt", tmp_path / "sr")
    out = tmp_path / "grid.png"
    argv = ["compare-grid", "--lq", str(workspace / "lq"), "--sr", f"m={tmp_path / 'sr'}"]
    argv += ["--images", "im0", "--box", "8,4,32,40"]
    assert main([*argv, "-o", str(out)]) == 0
    assert _is_png(out)
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["columns"] == ["LR (nearest x4)", "bicubic", "m"]
    assert document["images"]["im0"] == {"box": [8, 4, 32, 40]}
    (tmp_path / "lq-as-sr").mkdir()
    shutil.copy(workspace / "lq" / "im0.png", tmp_path / "lq-as-sr" / "im0.png")
    argv[4] = f"m={tmp_path / 'lq-as-sr'}"
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "-o", str(tmp_path / "g2.png")]) == 2
    message = caplog.records[-1].getMessage()
    assert "lq-as-sr" in message and "is not x4 of" in message
