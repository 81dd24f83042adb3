"""Backbone presets: sizes, cost, shapes, config round trip, conditioning, determinism."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gtasr.errors import GtasrError
from gtasr.nets import PRESETS, build_network, count_macs

PAPER_PARAMS = 171_518_529  # METHOD §3 (the release's count)
PAPER_GMAC_64 = 153.0  # METHOD §3, 64x64 LR input
PAPER_GMAC_128 = 613.0

# A four-level layout like ``paper`` (stride 8, Swin at every level) at a width
# that makes CPU forward passes cheap.
MICRO = {
    "base_channels": 8,
    "channel_mults": [1, 2, 2, 2],
    "blocks_per_level": 1,
    "attention_levels": [0, 1, 2, 3],
    "dropout": 0.1,
    "emb_channels": 32,
    "swin_dim": 8,
    "swin_heads": 2,
    "swin_window": 8,
    "swin_mlp_ratio": 2.0,
    "swin_qkv_bias": True,
    "head_channels": 8,
    "image_channels": 3,
}


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def meta_network(spec):
    with torch.device("meta"):
        return build_network(spec)


def randomize_(net: torch.nn.Module, seed: int = 0) -> None:
    """Replace the initial weights (their output barely depends on the input) with
    fan-in-scaled random ones, as a trained network might have."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.dim() > 1:
                p.copy_(noise / p[0].numel() ** 0.5)
            else:
                p.add_(0.1 * noise)


def inputs(lr_h: int, lr_w: int, batch: int = 2, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 4 * lr_h, 4 * lr_w, generator=gen)
    y = torch.rand(batch, 3, lr_h, lr_w, generator=gen) * 2 - 1
    c_noise = torch.full((batch,), math.log(1.0 + 0.002) / 4)
    return x, c_noise, y


def test_presets_are_named():
    assert set(PRESETS) == {"paper", "small", "tiny", "compact"}


def test_paper_parameter_count_matches_release():
    net = meta_network("paper")
    assert n_params(net) == PAPER_PARAMS
    swin = sum(n_params(m) for name, m in net.named_modules() if name.endswith(".attention"))
    assert sum(1 for name, _ in net.named_modules() if name.endswith(".attention")) == 21
    assert swin == pytest.approx(35.0e6, rel=0.01)


def test_small_and_tiny_sizes():
    assert 8.1e6 <= n_params(meta_network("compact")) <= 8.2e6
    assert 15e6 <= n_params(meta_network("small")) <= 25e6
    assert n_params(build_network("tiny")) <= 3e6


def test_paper_macs_match_release():
    net = meta_network("paper")
    assert count_macs(net, 64) / 1e9 == pytest.approx(PAPER_GMAC_64, rel=0.05)
    assert count_macs(net, 128) / 1e9 == pytest.approx(PAPER_GMAC_128, rel=0.05)


def test_macs_counted_on_cpu_equal_meta_count():
    # The CPU path uses a fused attention kernel that needs its own formula.
    cpu = build_network(MICRO)
    assert count_macs(cpu, (16, 24)) == count_macs(meta_network(MICRO), (16, 24)) > 0


def test_interface_contract():
    net = build_network("tiny")
    assert net.scale == 4
    assert net.stride == 4
    assert meta_network("paper").stride == 8
    json.dumps(net.config)


@pytest.mark.parametrize(("spec", "lr_size"), [(MICRO, (24, 40)), ("tiny", (36, 52))])
def test_output_shape_for_sizes_off_the_window_grid(spec, lr_size):
    net = build_network(spec).eval()
    h, w = lr_size
    assert h % net.stride == 0 and w % net.stride == 0
    assert h % 8 or w % 8 or (h // net.stride) % 8  # some level needs window padding
    x, c_noise, y = inputs(h, w)
    with torch.no_grad():
        out = net(x, c_noise, y)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_lr_size_off_the_stride_is_rejected():
    net = build_network(MICRO)
    x, c_noise, y = inputs(20, 24)
    with pytest.raises(ValueError, match="stride 8"):
        net(x, c_noise, y)


@pytest.mark.parametrize("name", PRESETS)
def test_config_round_trip(name):
    net = meta_network(name)
    config = json.loads(json.dumps(net.config))
    again = meta_network(config)
    assert again.config == net.config
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in again.state_dict().items()} == shapes


def test_bad_specs_raise_user_errors():
    with pytest.raises(GtasrError, match="unknown network preset"):
        build_network("huge")
    with pytest.raises(GtasrError, match="unknown network config keys: depth"):
        build_network({**MICRO, "depth": 2})
    with pytest.raises(GtasrError, match="attention_levels"):
        build_network({**MICRO, "attention_levels": [4]})


def test_noise_label_changes_output():
    net = build_network(MICRO).eval()
    randomize_(net)
    x, _, y = inputs(16, 16)
    with torch.no_grad():
        a = net(x, torch.full((2,), -1.5), y)
        b = net(x, torch.full((2,), 0.0), y)
    assert (a - b).abs().mean() > 1e-3 * a.abs().mean()


def test_lr_image_changes_output():
    net = build_network(MICRO).eval()
    randomize_(net)
    x, c_noise, y = inputs(16, 16)
    with torch.no_grad():
        a = net(x, c_noise, y)
        b = net(x, c_noise, -y)
    assert (a - b).abs().mean() > 1e-3 * a.abs().mean()


def test_eval_is_deterministic_and_train_uses_dropout():
    net = build_network(MICRO)
    randomize_(net)
    x, c_noise, y = inputs(16, 16)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x, c_noise, y), net(x, c_noise, y))
    net.train()
    torch.manual_seed(0)
    with torch.no_grad():
        assert not torch.equal(net(x, c_noise, y), net(x, c_noise, y))


def test_batch_items_are_independent():
    net = build_network(MICRO).eval()
    randomize_(net)
    x, c_noise, y = inputs(16, 24, batch=3)
    c_noise = torch.tensor([-2.0, 0.0, 0.3])
    with torch.no_grad():
        full = net(x, c_noise, y)
        single = net(x[1:2], c_noise[1:2], y[1:2])
    torch.testing.assert_close(full[1:2], single, rtol=1e-4, atol=1e-5)


def test_gradients_reach_every_parameter():
    net = build_network(MICRO).train()
    randomize_(net)
    x, c_noise, y = inputs(16, 16)
    net(x, c_noise, y).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_bfloat16_autocast_close_to_float32():
    net = build_network(MICRO).eval()
    randomize_(net)
    x, c_noise, y = inputs(16, 16)
    with torch.no_grad():
        ref = net(x, c_noise, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, c_noise, y)
    rel = (low.float() - ref).norm() / ref.norm()
    assert rel < 0.05


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_onnx_export_has_dynamic_size_and_pads_windows(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = build_network(MICRO).eval()
    randomize_(net)
    path = tmp_path / "micro.onnx"
    # Traced at a size that needs no window padding, run at one that does.
    x, c_noise, y = inputs(64, 64, batch=1)
    dynamic = {"x": {0: "b", 2: "H", 3: "W"}, "y": {0: "b", 2: "h", 3: "w"}, "c_noise": {0: "b"}}
    torch.onnx.export(
        net,
        (x, c_noise, y),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["x", "c_noise", "y"],
        output_names=["out"],
        dynamic_axes={**dynamic, "out": {0: "b", 2: "H", 3: "W"}},
    )
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x, c_noise, y = inputs(24, 40)
    with torch.no_grad():
        expected = net(x, c_noise, y).numpy()
    feed = {"x": x.numpy(), "c_noise": c_noise.numpy(), "y": y.numpy()}
    (out,) = session.run(None, feed)
    assert out.shape == expected.shape
    assert abs(out - expected).max() < 1e-4


def test_lr_skip_adds_bicubic_of_the_lr_image():
    plain = build_network(MICRO).eval()
    randomize_(plain)
    skipped = build_network({**MICRO, "lr_skip": True}).eval()
    skipped.load_state_dict(plain.state_dict())
    x, c_noise, y = inputs(16, 16)
    with torch.no_grad():
        difference = skipped(x, c_noise, y) - plain(x, c_noise, y)
    bicubic = torch.nn.functional.interpolate(y, scale_factor=4, mode="bicubic")
    torch.testing.assert_close(difference, bicubic, atol=1e-5, rtol=0)


def test_untrained_tiny_starts_near_bicubic():
    """With lr_anchor (the tiny preset's default) the head starts near zero, so an untrained
    model's one-step output is about bicubic x4 of y: training only adds the detail."""
    from gtasr.method.precond import ConsistencyModel
    from gtasr.method.schedule import upsample_lr

    model = ConsistencyModel(build_network("tiny"), lr_anchor=True).eval()
    x, _, y = inputs(16, 16)
    with torch.no_grad():
        out = model(x, 1.0, y)
    # only the output conv's bias (times c_out, about 1 at sigma 1) separates the two
    offset = model.backbone.conv_out.bias.detach().reshape(1, 3, 1, 1)
    torch.testing.assert_close(out - offset, upsample_lr(y, clamp=False), atol=0.05, rtol=0)


def test_gtasr_presets_have_no_lr_skip():
    """lr_skip is the release's res_con, read from the authors' files; gtasr's own bicubic
    residual is lr_anchor (method.precond)."""
    from gtasr.nets import PRESETS, preset_config

    assert build_network(MICRO).config["lr_skip"] is False
    assert [preset_config(name)["lr_skip"] for name in PRESETS] == [False] * len(PRESETS)


def test_only_the_upsamplers_of_the_authors_files_exist():
    with pytest.raises(GtasrError, match="upsampler must be one of nearest, pixelshuffle"):
        build_network({**MICRO, "upsampler": "bilinear"})
