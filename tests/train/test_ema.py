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


def test_the_trainer_calls_its_stage_loss_at_the_current_step(small_config, tmp_path) -> None:
    """The trainer builds the loss object once and calls it; its grid follows the step (N = 4
    for the first half of Stage I, then 3)."""
    from gtasr.method.loss import Stage1Loss
    from gtasr.train import trainer as trainer_module
    from gtasr.train.distributed import setup

    trainer = trainer_module.Trainer(small_config(train={"iterations": 10}), tmp_path, setup("cpu"))
    assert isinstance(trainer.loss, Stage1Loss)
    assert [trainer.loss.schedule.grid(step).num_intervals for step in (0, 4, 5, 9)] == [4, 4, 3, 3]
    batch = next(trainer.batches())
    total, parts = trainer.compute_loss(batch, torch.Generator().manual_seed(0))
    again, _ = trainer.loss(trainer.net, batch, torch.Generator().manual_seed(0), trainer.step)
    assert torch.isfinite(total) and total.item() == pytest.approx(again.item(), rel=1e-6)
    assert total.item() == pytest.approx((parts["ct"] + parts["ta"]).item(), rel=1e-5)
