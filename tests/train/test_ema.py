"""EMA of the weights, checked against a hand computation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gtasr.train.ema import EMA


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.norm = nn.BatchNorm1d(2)  # has running-stat buffers and an int counter


def set_weights(model: Small, scale: float) -> None:
    with torch.no_grad():
        model.lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]) * scale)
        model.lin.bias.copy_(torch.tensor([0.5, -0.5]) * scale)


def test_update_matches_hand_computation() -> None:
    model = Small()
    set_weights(model, 1.0)
    ema = EMA(model, decay=0.9)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    set_weights(model, 2.0)
    with torch.no_grad():
        model.norm.running_mean.copy_(torch.tensor([7.0, 8.0]))
        model.norm.num_batches_tracked.fill_(5)
    ema.update(model)
    # 0.9 * w + 0.1 * 2w = 1.1 w
    assert torch.allclose(ema.module.lin.weight, torch.tensor([[1.1, 2.2], [3.3, 4.4]]))
    set_weights(model, 0.0)
    ema.update(model)
    # 0.9 * 1.1 w + 0.1 * 0 = 0.99 w
    assert torch.allclose(ema.module.lin.bias, torch.tensor([0.495, -0.495]))
    assert torch.equal(ema.module.norm.running_mean, torch.tensor([7.0, 8.0]))
    assert ema.module.norm.num_batches_tracked.item() == 5
    assert model.lin.weight.abs().sum() == 0  # the model itself is untouched


def test_default_decay_is_the_release_value() -> None:
    model = Small()
    set_weights(model, 1.0)
    ema = EMA(model)
    set_weights(model, 3.0)
    ema.update(model)  # 0.999 * w + 0.001 * 3w = 1.002 w
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]]) * 1.002
    assert torch.allclose(ema.module.lin.weight, expected, rtol=0, atol=1e-6)


def test_state_dict_round_trip_resumes_identically() -> None:
    model = Small()
    set_weights(model, 1.0)
    ema = EMA(model, decay=0.5)
    set_weights(model, 3.0)
    ema.update(model)
    other = EMA(Small(), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.5
    ema.update(model)
    other.update(model)
    for a, b in zip(
        ema.module.state_dict().values(), other.module.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_mismatched_model_is_rejected() -> None:
    ema = EMA(Small())
    with pytest.raises(ValueError):
        ema.update(nn.Linear(2, 2))
    with pytest.raises(ValueError):
        EMA(Small(), decay=1.5)


@pytest.mark.parametrize("ct_target", ["online", "ema"])
def test_the_trainer_takes_the_ct_target_from_the_chosen_network(
    small_config, tmp_path, monkeypatch, ct_target: str
) -> None:
    from gtasr.train import trainer as trainer_module
    from gtasr.train.distributed import setup

    seen = []
    original = trainer_module.stage1_objective

    def recording(*args, **kwargs):
        seen.append(kwargs["target_model"])
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "stage1_objective", recording)
    trainer = trainer_module.Trainer(
        small_config(loss={"ct_target": ct_target}), tmp_path, setup("cpu")
    )
    loss, _ = trainer.compute_loss(next(trainer.batches()), torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    assert seen == [trainer.ema_model if ct_target == "ema" else None]


def test_the_trainer_adds_the_low_band_term_when_weighted(small_config, tmp_path) -> None:
    from gtasr.train import trainer as trainer_module
    from gtasr.train.distributed import setup

    def loss_parts(weight: float) -> dict[str, torch.Tensor]:
        config = small_config(loss={"low_band_weight": weight})
        trainer = trainer_module.Trainer(config, tmp_path / str(weight), setup("cpu"))
        total, parts = trainer.compute_loss(
            next(trainer.batches()), torch.Generator().manual_seed(0)
        )
        assert total.item() == pytest.approx(
            sum(parts[k].item() for k in ("ct", "ta", "low_band") if k in parts), rel=1e-5
        )
        return parts

    assert "low_band" not in loss_parts(0.0)
    assert loss_parts(3.0)["low_band"].item() > 0
