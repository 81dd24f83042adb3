"""Batches depend only on (seed, micro-batch): loader workers, device placement, ranks."""

from __future__ import annotations

from pathlib import Path

import torch

from gtasr.train.distributed import setup
from gtasr.train.trainer import Trainer


def _first_batches(config, run: Path, count: int) -> list[dict[str, torch.Tensor]]:
    trainer = Trainer(config, run, setup("cpu"))
    batches = trainer.batches()
    return [next(batches) for _ in range(count)]


def test_degradation_in_workers_or_on_the_device_gives_identical_batches(
    small_config, tmp_path: Path
) -> None:
    common = {"crop_size": 64, "degradation": "train"}
    in_worker = small_config(data={**common, "degrade_on": "loader", "workers": 1})
    on_device = small_config(data={**common, "degrade_on": "device", "workers": 0})
    a = _first_batches(in_worker, tmp_path / "a", 3)
    b = _first_batches(on_device, tmp_path / "b", 3)
    for first, second in zip(a, b, strict=True):
        assert first.keys() == second.keys() == {"x0", "y", "y0"}
        for key in first:
            assert torch.equal(first[key], second[key]), key
    assert a[0]["y"].shape == (2, 3, 16, 16) and a[0]["y0"].shape == (2, 3, 64, 64)
    assert not torch.equal(a[0]["x0"], a[1]["x0"])  # consecutive batches differ


def test_a_preset_degrader_is_the_preset_and_an_unknown_name_is_refused() -> None:
    import pytest

    from gtasr.degrade.pipeline import DegradationConfig, degrade_batch
    from gtasr.errors import GtasrError
    from gtasr.train.batches import make_degrader

    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for name in ("train", "test", "real"):
        y, y0 = make_degrader(name)(hr, torch.Generator().manual_seed(4))
        ref_y, ref_y0 = degrade_batch(
            hr, DegradationConfig.preset(name), torch.Generator().manual_seed(4)
        )
        assert torch.equal(y, ref_y) and torch.equal(y0, ref_y0)
    with pytest.raises(GtasrError, match="unknown degradation preset 'blurry'"):
        make_degrader("blurry")
