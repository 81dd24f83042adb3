"""Stage I from trained weights: ``init_from`` a run, a model file or ``bundled``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gtasr.errors import GtasrError
from gtasr.hub import bundled_model_path
from gtasr.modelfile import read_weights
from gtasr.nets import preset_config
from gtasr.train.checkpoints import EMA_FILE, resolve_checkpoint
from gtasr.train.distributed import setup
from gtasr.train.run import train
from gtasr.train.trainer import Trainer


def _same(module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> bool:
    state = module.state_dict()
    return state.keys() == weights.keys() and all(torch.equal(state[k], weights[k]) for k in state)


def _bundled_network() -> dict:
    """The model section that builds the bundled model's network, as its file describes it."""
    from gtasr.modelfile import read_info

    info = read_info(bundled_model_path())
    return {"network": info.network, "lr_anchor": info.precond["lr_anchor"]}


def _bundled_weights() -> dict[str, torch.Tensor]:
    """The bundled model's tensors in float32, as a network loaded from it holds them."""
    return {name: tensor.float() for name, tensor in read_weights(bundled_model_path())[0].items()}


def _trainer(config, run: Path) -> Trainer:
    run.mkdir()
    return Trainer(config, run, setup("cpu"))


def test_a_run_folder_starts_theta_and_its_ema_from_the_runs_ema(small_config, tmp_path) -> None:
    train(
        small_config(train={"iterations": 2, "checkpoint_every": 2}), tmp_path / "one", setup("cpu")
    )
    ema, _ = read_weights(resolve_checkpoint(tmp_path / "one") / EMA_FILE)
    trainer = _trainer(small_config(init_from=str(tmp_path / "one")), tmp_path / "two")
    assert _same(trainer.model.backbone, ema)
    assert _same(trainer.ema.module, ema)
    assert trainer.step == 0
    fresh = _trainer(small_config(), tmp_path / "fresh")
    assert not _same(fresh.model.backbone, ema)


def test_the_bundled_model_is_fine_tuned_and_its_weights_move(small_config, tmp_path) -> None:
    bundled = _bundled_weights()
    model = _bundled_network()
    trainer = _trainer(small_config(init_from="bundled", model=model), tmp_path / "start")
    assert _same(trainer.model.backbone, bundled)
    config = small_config(init_from="bundled", model=model, train={"iterations": 2})
    summary = train(config, tmp_path / "run", setup("cpu"))
    assert summary.final_step == 2
    tuned, _ = read_weights(resolve_checkpoint(tmp_path / "run") / "model-raw.safetensors")
    changed = [k for k in tuned if not torch.equal(tuned[k], bundled[k])]
    assert changed and len(changed) > len(tuned) // 2


def test_weights_of_another_network_are_refused_naming_the_setting(small_config, tmp_path) -> None:
    narrower = {**preset_config("tiny"), "base_channels": 16}
    train(
        small_config(model={"network": narrower, "lr_anchor": True}, train={"iterations": 1}),
        tmp_path / "narrow",
        setup("cpu"),
    )
    with pytest.raises(GtasrError, match=r"init_from has base_channels 16, the config 32"):
        _trainer(small_config(init_from=str(tmp_path / "narrow")), tmp_path / "two")


def test_weights_of_other_preconditioning_are_refused(small_config, tmp_path) -> None:
    with pytest.raises(GtasrError, match=r"init_from has lr_anchor True, the config False"):
        _trainer(
            small_config(init_from="bundled", model={**_bundled_network(), "lr_anchor": False}),
            tmp_path / "run",
        )


def test_a_missing_source_is_one_line(small_config, tmp_path) -> None:
    with pytest.raises(GtasrError, match=r"missing\.safetensors"):
        _trainer(small_config(init_from=str(tmp_path / "missing.safetensors")), tmp_path / "run")


def test_stage2_from_a_model_file_starts_theta_ema_and_reference_from_it(
    small_config, tmp_path
) -> None:
    bundled = _bundled_weights()
    config = small_config(
        stage=2,
        init_from="bundled",
        model=_bundled_network(),
        schedule={"power": 1.0, "num_intervals": [3]},
        train={"iterations": 1},
    )
    trainer = _trainer(config, tmp_path / "start")
    assert _same(trainer.model.backbone, bundled)
    assert _same(trainer.ema.module, bundled)
    assert trainer.reference is not None
    assert _same(trainer.reference.backbone, bundled)
    summary = train(config, tmp_path / "run", setup("cpu"))
    assert summary.final_step == 1
    tuned, _ = read_weights(resolve_checkpoint(tmp_path / "run") / "model-raw.safetensors")
    assert any(not torch.equal(tuned[k], bundled[k]) for k in tuned)


def test_stage2_from_a_run_of_other_preconditioning_is_refused(small_config, tmp_path) -> None:
    """The tensors of a Stage I run with lr_anchor off have the shapes of one with it on."""
    train(
        small_config(model={"lr_anchor": False}, train={"iterations": 1}),
        tmp_path / "stage1",
        setup("cpu"),
    )
    config = small_config(
        stage=2,
        init_from=str(tmp_path / "stage1"),
        model={"lr_anchor": True},
        schedule={"power": 1.0, "num_intervals": [3]},
    )
    with pytest.raises(GtasrError, match=r"init_from has lr_anchor False, the config True"):
        _trainer(config, tmp_path / "stage2")
    config.model.lr_anchor = False
    trainer = _trainer(config, tmp_path / "stage2-same")
    ema, _ = read_weights(resolve_checkpoint(tmp_path / "stage1") / EMA_FILE)
    assert _same(trainer.ema.module, ema)
