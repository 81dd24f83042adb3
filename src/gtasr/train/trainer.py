"""The training loop of Stage I and Stage II: one readable class, no framework.

One iteration: draw the (micro-)batches, run the stage objective under
autocast, back-propagate (DDP averages the gradients), skip the update when
the loss or the gradient is not finite, clip, step AdamW and MultiStepLR,
update the EMA and (Stage II) re-sync the reference network psi every
``train.reference_sync_every`` iterations. Every random draw (data, noise,
dropout) is seeded by the run seed and the run-wide micro-batch number
(step, micro-batch, rank), so ``--resume`` continues bit for bit and K
processes reproduce one process that accumulates K micro-batches.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gtasr.data.datasets import HRCropDataset, worker_init_fn
from gtasr.errors import GtasrError, one_line
from gtasr.method.objectives import frozen_copy
from gtasr.method.precond import ConsistencyModel
from gtasr.modelfile import read_info, read_weights, refuse_nonfinite
from gtasr.train import builders
from gtasr.train.batches import StepBatches, global_micro_batch, make_degrader
from gtasr.train.checkpoints import (
    EMA_FILE,
    RAW_FILE,
    CheckpointStore,
    ModelMeta,
    check_same_model,
    checkpoint_name,
    init_model_file,
    read_checkpoint,
    resolve_checkpoint,
)
from gtasr.train.config import Config
from gtasr.train.distributed import DistEnv, all_reduce_max, all_reduce_mean, barrier
from gtasr.train.ema import EMA
from gtasr.train.seeding import derive_seed, generator
from gtasr.train.state import capture_rng_state, check_rng_state, restore_rng_state

log = logging.getLogger(__name__)


class TrainingDiverged(GtasrError):
    """The loss stayed NaN/Inf for ``train.max_nonfinite`` iterations in a row, or the
    weights themselves became NaN/Inf."""


class CheckpointDamaged(GtasrError):
    """A checkpoint's files cannot be read completely (resume takes an earlier one)."""


def _restore(path: Path, load: Callable[[dict[str, torch.Tensor]], object]) -> None:
    """Hand the backbone tensors of model file ``path`` to ``load`` (a load_state_dict).

    Another kind of file, or weights of another architecture, is a clear error.
    """
    _restore_weights(path, read_weights(path)[0], load)


def _restore_weights(
    path: Path, state: dict[str, torch.Tensor], load: Callable[[dict[str, torch.Tensor]], object]
) -> None:
    """``load(state)``, with weights of another architecture a one-line error naming ``path``."""
    try:
        load(state)
    except RuntimeError as error:
        raise GtasrError(f"{path}: weights do not fit the configured network") from error


STATE_KEYS = (
    "step",
    "optimizer",
    "scheduler",
    "ema_decay",
    "rng",
    "nonfinite_total",
    "nonfinite_run",
)
"""What :meth:`Trainer.state` always holds (``reference`` and ``scaler`` when in use)."""


class Trainer:
    """Owns the model, optimiser, EMA and data of one process of a run."""

    def __init__(self, config: Config, run_dir: Path, env: DistEnv, resume: bool = False) -> None:
        self.config, self.run_dir, self.env = config, run_dir, env
        train = config.train
        torch.manual_seed(derive_seed(train.seed, "init"))
        self.model = builders.build_model(config.model).to(env.device)
        self.model.train()
        self.meta = ModelMeta(
            network=self.model.backbone.config,
            precond=self.model.precond_config(),
            stage=config.stage,
        )
        self.ema = EMA(self.model.backbone, decay=train.ema_decay)
        # The consistency model of the averaged backbone: what validation and inference use.
        self.ema_model = ConsistencyModel(self.ema.module, **self.meta.precond).eval()
        self.reference = frozen_copy(self.model) if config.stage == 2 else None
        self.optimizer, self.scheduler = builders.build_optimizer(self.model, train)
        self.amp_dtype = builders.autocast_dtype(train.precision, env.device)
        self.scaler = (
            torch.amp.GradScaler(env.device.type) if self.amp_dtype == torch.float16 else None
        )
        self.loss = builders.build_loss(config, env.device, self.amp_dtype, self.reference)
        self.store = CheckpointStore(run_dir, keep=train.keep_checkpoints)
        self.step = 0
        self.nonfinite_total = 0
        self.nonfinite_run = 0
        self.last_checkpoint: Path | None = None
        if resume:
            self._resume()
        elif config.stage == 2:
            self._init_stage2(config.init_from or "")
        elif config.init_from:
            self._init_from_model(config.init_from)
        self.net: nn.Module = self.model
        if env.distributed:
            ids = [env.device.index] if env.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.degrader = make_degrader(config.data.degradation)

    # ------------------------------------------------------------------ state
    def _init_stage2(self, source: str) -> None:
        """Stage II starts theta from Stage I's raw weights, EMA and psi from its EMA.

        A model file or name (``bundled``, ``hf://...``) has one set of weights: theta,
        its EMA and psi all start from it, so that a trained model gets a further Stage II.
        """
        if Path(source).is_dir():
            self._init_from_stage1_run(source)
        else:
            self._init_from_model(source)
        assert self.reference is not None
        self.reference.load_state_dict(self.ema_model.state_dict())

    def _init_from_stage1_run(self, source: str) -> None:
        """Theta from a Stage I run's (or checkpoint's) raw weights, the EMA from its EMA.

        Its network and preconditioning must be the config's, as for a model file: a run
        trained for other conventions has tensors of the same shapes and would load.
        """
        folder = resolve_checkpoint(source)
        info = read_info(folder / RAW_FILE)
        if info.stage != 1:
            log.warning("%s: init_from is not a Stage I checkpoint", folder)
        check_same_model(info, self.meta, folder / RAW_FILE)
        _restore(folder / RAW_FILE, self.model.backbone.load_state_dict)
        decay = self.config.train.ema_decay
        _restore(
            folder / EMA_FILE, lambda w: self.ema.load_state_dict({"decay": decay, "weights": w})
        )
        log.info("Stage II initialised from %s", folder)

    def _init_from_model(self, source: str) -> None:
        """Start from trained weights (fine-tuning): theta and its EMA start from them.

        ``source`` is a run or checkpoint folder (its EMA weights) or a model spec (a model
        file, ``bundled``, ``hf://...``). Its network and preconditioning must be the
        config's: weights trained for other conventions would start from a wrong model.
        """
        path = init_model_file(source)
        state, info = read_weights(path)
        check_same_model(info, self.meta, path)
        _restore_weights(path, state, self.model.backbone.load_state_dict)
        self.ema.load_state_dict({"decay": self.config.train.ema_decay, "weights": state})
        log.info("initialised from %s (step %d of its run)", path, info.iteration)

    def state(self) -> dict[str, Any]:
        """Everything besides the model files that a bit-exact resume needs."""
        state: dict[str, Any] = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema_decay": self.ema.state_dict()["decay"],
            "rng": capture_rng_state(),
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_run": self.nonfinite_run,
        }
        if self.reference is not None:
            state["reference"] = self.reference.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def save_ema_model(self, path: Path) -> None:
        """Write the averaged weights of the current step as a model file (atomic)."""
        self.meta.write(path, self.ema.state_dict()["weights"], self.step, "ema")

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes the checkpoint of the current step; every rank waits for it.

        Weights that became NaN or infinite stop the run with :class:`TrainingDiverged`
        instead (every rank checks its own identical copy, so all stop together).
        """
        self._refuse_nonfinite_weights()
        path = None
        if self.env.is_main:
            path = self.store.save(
                self.step,
                self.meta,
                raw=self.model.backbone.state_dict(),
                ema=self.ema.state_dict()["weights"],
                state=self.state(),
            )
            self.last_checkpoint = path
        barrier(self.env)
        return path

    def _refuse_nonfinite_weights(self) -> None:
        weights = {
            "raw": self.model.backbone.state_dict(),
            "EMA": self.ema.state_dict()["weights"],
        }
        for kind, tensors in weights.items():
            try:
                refuse_nonfinite(tensors.items(), f"{kind} weights")
            except GtasrError as error:
                kept = self.last_checkpoint or "none written yet"
                raise TrainingDiverged(
                    f"{error} at step {self.step}; stopped without writing a checkpoint. "
                    f"Last good checkpoint: {kept}"
                ) from None

    def _resume(self) -> None:
        """Continue from the newest checkpoint of the run directory that reads completely.

        A damaged checkpoint (truncated or unreadable files) is set aside with a warning
        naming it, and the one before it is taken.
        """
        candidates = self.store.candidates()
        if not candidates:
            raise GtasrError(f"{self.run_dir}: --resume given but no checkpoint found")
        for folder in candidates:
            try:
                self._load_checkpoint(folder, *self._read_checkpoint(folder))
            except CheckpointDamaged as error:
                moved = self.store.set_aside(folder) if self.env.is_main else folder
                log.warning("%s; set aside as %s, trying the checkpoint before it", error, moved)
                continue
            return
        raise GtasrError(f"{self.run_dir}: --resume given but every checkpoint is damaged")

    def _read_checkpoint(
        self, folder: Path
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
        """Raw weights, EMA weights and state of a checkpoint, all read before any is used."""
        try:
            info = read_info(folder / RAW_FILE)
        except GtasrError as error:
            raise CheckpointDamaged(f"{folder} is damaged ({error})") from error
        if info.stage != self.config.stage:
            raise GtasrError(
                f"{folder}: checkpoint is of Stage {info.stage}, the config of Stage "
                f"{self.config.stage}"
            )
        check_same_model(info, self.meta, folder, what="the checkpoint")
        try:
            raw, ema, state = read_checkpoint(folder)
            missing = sorted(set(STATE_KEYS) - set(state))
            if missing:
                raise GtasrError(f"{folder}: training state has no '{missing[0]}'")
            _check_state_values(state, folder)
        except GtasrError as error:
            raise CheckpointDamaged(f"{folder} is damaged ({error})") from error
        return raw, ema, state

    def _load_checkpoint(
        self,
        folder: Path,
        raw: dict[str, torch.Tensor],
        ema: dict[str, torch.Tensor],
        state: dict[str, Any],
    ) -> None:
        """Restore every part; one that does not fit (an optimiser state of another shape)
        makes the checkpoint damaged. The one before it then restores every part again."""
        try:
            self._restore_parts(raw, ema, state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise CheckpointDamaged(f"{folder} is damaged ({one_line(str(error))})") from None
        self.last_checkpoint = folder
        log.info("resumed from %s (step %d)", folder, self.step)

    def _restore_parts(
        self, raw: dict[str, torch.Tensor], ema: dict[str, torch.Tensor], state: dict[str, Any]
    ) -> None:
        self.model.backbone.load_state_dict(raw)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.ema.load_state_dict({"decay": float(state["ema_decay"]), "weights": ema})
        if self.reference is not None:
            self.reference.load_state_dict(state["reference"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        self.nonfinite_total = int(state["nonfinite_total"])
        self.nonfinite_run = int(state["nonfinite_run"])

    # ------------------------------------------------------------------ data
    def batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Micro-batches from the current step on (loader workers or degraded on the device).

        Close the generator when done, also after an error (``contextlib.closing``): that
        stops the loader workers at once. They ignore SIGTERM (see ``worker_init_fn``), so
        left to the interpreter's exit they would keep it waiting for ever.
        """
        data, train = self.config.data, self.config.train
        on_device = data.degrade_on == "device"
        dataset = StepBatches(
            photos=HRCropDataset(
                data.hr_dirs, crop_size=data.crop_size, hflip=data.hflip, short_side=data.short_side
            ),
            batch_size=train.batch_size,
            seed=train.seed,
            rank=self.env.rank,
            world_size=self.env.world_size,
            degrader=None if on_device else self.degrader,
        )
        first = self.step * train.grad_accumulation
        last = train.iterations * train.grad_accumulation
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            sampler=range(first, last),
            num_workers=data.workers,
            worker_init_fn=worker_init_fn,
            prefetch_factor=2 if data.workers else None,
        )
        loading = iter(loader)
        try:
            for index, batch in zip(range(first, last), loading, strict=False):
                batch = {k: v.to(self.env.device, non_blocking=True) for k, v in batch.items()}
                if on_device:
                    micro_batch = global_micro_batch(index, self.env.rank, self.env.world_size)
                    seed = derive_seed(train.seed, "degrade", micro_batch)
                    batch["y"], batch["y0"] = self.degrader(
                        batch["x0"], generator(seed, self.env.device)
                    )
                yield batch
        finally:
            stop_workers = getattr(loading, "_shutdown_workers", None)  # absent without workers
            if stop_workers is not None:
                stop_workers()

    # ------------------------------------------------------------------ step
    def compute_loss(
        self, batch: dict[str, torch.Tensor], gen: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The stage's loss on one micro-batch at the current step."""
        return self.loss(self.net, batch, gen, self.step)

    def train_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One iteration (with gradient accumulation); returns the logged values."""
        train, env = self.config.train, self.env
        self.optimizer.zero_grad(set_to_none=True)
        parts_sum: dict[str, torch.Tensor] = {}
        total_sum = torch.zeros((), device=env.device)
        for micro in range(train.grad_accumulation):
            batch = next(batches)
            micro_batch = global_micro_batch(
                self.step * train.grad_accumulation + micro, env.rank, env.world_size
            )
            torch.manual_seed(derive_seed(train.seed, "dropout", micro_batch))
            gen = generator(derive_seed(train.seed, "objective", micro_batch), env.device)
            last = micro == train.grad_accumulation - 1
            sync = contextlib.nullcontext() if last or not env.distributed else self.net.no_sync()
            with sync:
                with builders.autocast(env.device, self.amp_dtype):
                    total, parts = self.compute_loss(batch, gen)
                scaled = total.float() / train.grad_accumulation
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total_sum += scaled.detach()
            for key, value in parts.items():
                parts_sum[key] = (
                    parts_sum.get(key, 0) + value.detach().float() / train.grad_accumulation
                )
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = train.grad_clip if train.grad_clip else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        bad = not (math.isfinite(float(total_sum)) and math.isfinite(grad_norm))
        values = {"loss": float(all_reduce_mean(total_sum, env))}
        values |= {k: float(all_reduce_mean(v, env)) for k, v in parts_sum.items()}
        values |= {"grad_norm": grad_norm, "lr": self.scheduler.get_last_lr()[0]}
        if all_reduce_max(float(bad), env) > 0:
            self._skip_update()
        else:
            self.nonfinite_run = 0
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.ema.update(self.model.backbone)
        self.scheduler.step()
        self.step += 1
        if self.reference is not None and self.step % train.reference_sync_every == 0:
            self.reference.load_state_dict(self.model.state_dict())
        return values

    def _skip_update(self) -> None:
        """Count a NaN/Inf iteration; abort after ``train.max_nonfinite`` in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.update()
        self.nonfinite_total += 1
        self.nonfinite_run += 1
        log.warning("step %d: loss or gradient is NaN/Inf, update skipped", self.step + 1)
        if self.nonfinite_run >= self.config.train.max_nonfinite:
            kept = self.last_checkpoint or "none written yet"
            raise TrainingDiverged(
                f"loss or gradient NaN/Inf for {self.nonfinite_run} iterations in a row "
                f"(up to step {self.step + 1}); stopped. Last good checkpoint: {kept}"
            )


def _check_state_values(state: dict[str, Any], folder: Path) -> None:
    """Raise :class:`GtasrError` naming the first value of a training state that cannot
    be right: its step must be the checkpoint's, the counters whole and not negative, the
    EMA decay within [0, 1), the random number generator states loadable."""
    step = state["step"]
    if type(step) is not int or folder.name != checkpoint_name(step):
        raise GtasrError(f"training state step {step!r} is not this checkpoint's")
    for key in ("nonfinite_total", "nonfinite_run"):
        if type(state[key]) is not int or state[key] < 0:
            raise GtasrError(f"training state {key} {state[key]!r} is not a count")
    decay = state["ema_decay"]
    if type(decay) not in (int, float) or not 0 <= decay < 1:
        raise GtasrError(f"training state ema_decay {decay!r} is not within [0, 1)")
    try:
        check_rng_state(state["rng"])
    except (ValueError, TypeError) as error:
        raise GtasrError(f"training state {error}") from None
