"""A whole run: run directory, progress bar, logs, validation, checkpoints, signals.

Run directory::

    RUN/config.yaml        the resolved config (`gtasr train RUN/config.yaml` repeats the run)
    RUN/metrics.jsonl      one JSON line per log step, validation and the summary
    RUN/tensorboard/       the same scalars, when TensorBoard is installed
    RUN/samples/           validation grids (bicubic | SR | GT per row)
    RUN/checkpoints/       see gtasr.train.checkpoints
    RUN/model.safetensors  the final EMA weights (what `gtasr upscale --model` takes)
    RUN/best.safetensors   the EMA weights of the best validation so far (LPIPS, else L1;
                           with val.max_psnr_drop only among those close enough to bicubic),
    RUN/best.json          and its step, metric and value
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path, atomic_write_bytes, write_json
from gtasr.train.checkpoints import EMA_FILE, CheckpointStore
from gtasr.train.config import Config, dump_config
from gtasr.train.distributed import DistEnv, all_reduce_max, barrier
from gtasr.train.lock import run_lock
from gtasr.train.monitor import MetricsLog, StopRequest
from gtasr.train.trainer import Trainer
from gtasr.train.validation import Validator, load_val_pairs

log = logging.getLogger(__name__)

RUN_OUTPUTS = (
    "config.yaml",
    "metrics.jsonl",
    "tensorboard",
    "samples",
    "checkpoints",
    "model.safetensors",
    "best.safetensors",
    "best.json",
)
"""Everything a run writes into its directory (the layout in the module docstring)."""


@dataclass
class Summary:
    """How a run ended; ``threads`` is this invocation's intra-op thread count, so that
    a run resumed with another ``train.threads`` still adds up its CPU time, and
    ``started`` (UTC, ISO 8601) names the invocation its "train" records also carry; a
    string, so that TensorBoard does not plot it."""

    steps_done: int
    final_step: int
    wall_s: float
    threads: int
    started: str
    steps_per_s: float
    stopped_by: str | None
    validation: dict[str, float]
    nonfinite_total: int


def _clock(started: str, wall_s: float) -> dict[str, str | float | int]:
    """What a "train" record says of the invocation's cost so far, so that CPU-hours add
    up even when the process is killed before it writes its summary."""
    return {"started": started, "wall_s": wall_s, "threads": torch.get_num_threads()}


def _validator(trainer: Trainer) -> Validator | None:
    """Build the validator on rank 0 when data.val_dir is set."""
    config = trainer.config
    if not config.data.val_dir or not trainer.env.is_main:
        return None
    stride = trainer.model.backbone.stride
    pairs = load_val_pairs(config.data.val_dir, stride, config.val.max_images)
    lpips = None
    if config.val.lpips:
        from gtasr.perceptual import LPIPS

        lpips = LPIPS(net="alex").to(trainer.env.device).eval()
    return Validator(pairs, trainer.env.device, config.val.seed, lpips, config.val.grid_images)


def _validate(
    validator: Validator, trainer: Trainer, metrics: MetricsLog | None, run_dir: Path
) -> dict[str, float]:
    """Validate the EMA model, log the metrics and write the sample grid."""
    step = trainer.step
    values = validator.run(trainer.ema_model, run_dir / "samples" / f"val-{step:08d}.png")
    if metrics is not None:
        metrics.write(step, "val", values)
    log.info("validation at step %d: %s", step, _fmt(values))
    drop = trainer.config.val.max_psnr_drop
    _keep_best(trainer, values, run_dir, None if drop is None else validator.bicubic_psnr_y - drop)
    return values


def _keep_best(
    trainer: Trainer, values: dict[str, float], run_dir: Path, psnr_floor: float | None = None
) -> None:
    """Write the EMA model to RUN/best.safetensors when this validation is the best so far.

    Lower LPIPS is better (L1 when LPIPS is off). Short runs can peak before their last
    step, and the rotating checkpoints would lose that model. A validation with PSNR-Y
    under ``psnr_floor`` is never the best: past some point a perceptual loss keeps
    buying LPIPS with fidelity (docs/training-diagnosis.md).
    """
    metric = "lpips" if "lpips" in values else "l1"
    if not math.isfinite(values[metric]):
        return  # NaN weights are never the best; the next checkpoint stops the run
    if psnr_floor is not None and not values["psnr_y"] >= psnr_floor:
        log.info("not a best model: PSNR-Y %.2f is under %.2f", values["psnr_y"], psnr_floor)
        return
    record = run_dir / "best.json"
    if record.is_file():
        best = json.loads(record.read_text(encoding="utf-8"))
        if best["metric"] == metric and best["value"] <= values[metric]:
            return
    trainer.save_ema_model(run_dir / "best.safetensors")
    best = {"step": trainer.step, "metric": metric, "value": values[metric]}
    if psnr_floor is not None:
        best |= {"psnr_y": values["psnr_y"], "psnr_floor": psnr_floor}
    write_json(record, best)


def _fmt(values: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in values.items())


def clear_run(run_dir: Path) -> None:
    """Delete what a run wrote into ``run_dir`` (and nothing else that lives there)."""
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def train(
    config: Config,
    run_dir: Path,
    env: DistEnv,
    resume: bool = False,
    max_steps: int | None = None,
    overwrite: bool = False,
    until_step: int | None = None,
) -> Summary:
    """Train ``config`` into ``run_dir`` (rank 0 writes; every rank computes).

    ``max_steps`` ends this invocation after that many iterations with a
    checkpoint (``--resume`` continues), e.g. to train in time slices;
    ``until_step`` ends it at that iteration of the run, however often it was
    resumed (an invocation that starts there or later runs no step). A run
    directory that already holds checkpoints needs ``resume`` (continue) or
    ``overwrite`` (delete the old run's outputs and start again). Rank 0 holds the
    run folder's lock (:mod:`gtasr.train.lock`) throughout: a second trainer on the
    same folder stops before it touches anything.
    """
    with ExitStack() as lock:
        refused = None
        if env.is_main:
            try:
                lock.enter_context(run_lock(run_dir))
            except GtasrError as error:
                refused = error
        if all_reduce_max(float(refused is not None), env) > 0:
            raise refused or GtasrError(f"{run_dir}: the run folder is in use by another trainer")
        return _train(config, run_dir, env, resume, max_steps, overwrite, until_step)


def _train(
    config: Config,
    run_dir: Path,
    env: DistEnv,
    resume: bool,
    max_steps: int | None,
    overwrite: bool,
    until_step: int | None,
) -> Summary:
    """:func:`train` with the run folder's lock held."""
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    earlier_run = CheckpointStore(run_dir).holds_a_run()
    barrier(env)  # every rank has looked before rank 0 deletes anything
    if earlier_run and not resume:
        if not overwrite:
            raise GtasrError(
                f"{run_dir}: already holds a run; add --resume to continue it or --overwrite "
                "to start again"
            )
        if env.is_main:
            clear_run(run_dir)
    barrier(env)
    trainer = Trainer(config, run_dir, env, resume=resume)
    if env.is_main:  # after the trainer accepted the run folder: a refused --resume keeps it
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / "config.yaml", dump_config(config).encode("utf-8"))
    metrics = MetricsLog(run_dir, config.log.tensorboard) if env.is_main else None
    if metrics is not None:
        metrics.truncate_after(trainer.step)
    validator = _validator(trainer)
    total = config.train.iterations
    first_step, start = trainer.step, time.perf_counter()
    started = datetime.now(timezone.utc).isoformat()
    stop_at = total if max_steps is None else min(total, first_step + max_steps)
    if until_step is not None:
        stop_at = max(first_step, min(stop_at, until_step))
    stopped_by = None
    due = False
    val_values: dict[str, float] = {}
    bar = tqdm(
        total=total,
        initial=trainer.step,
        desc=f"stage {config.stage}",
        unit="it",
        disable=not (env.is_main and config.log.progress),
        dynamic_ncols=True,
    )
    if validator is not None and trainer.step == 0:
        val_values = _validate(validator, trainer, metrics, run_dir)
    try:
        with StopRequest() as stop, logging_redirect_tqdm(), closing(trainer.batches()) as batches:
            while trainer.step < stop_at:
                values = trainer.train_step(batches)
                step = trainer.step
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4f}")
                if metrics is not None and (step % config.log.every == 0 or step == total):
                    clock = _clock(started, time.perf_counter() - start)
                    metrics.write(step, "train", {**values, **clock})
                    log.info("step %d/%d %s", step, total, _fmt(values))
                if validator is not None and (step % config.val.every == 0 or step == total):
                    val_values = _validate(validator, trainer, metrics, run_dir)
                # A checkpoint due during a NaN/Inf streak waits for the next good step, so
                # `latest` always follows a finite update.
                due = due or step % config.train.checkpoint_every == 0
                if (due and trainer.nonfinite_run == 0) or step == stop_at:
                    trainer.save_checkpoint()
                    due = False
                if all_reduce_max(float(stop.requested is not None), env) > 0:
                    stopped_by = stop.requested or "a signal on another rank"
                    trainer.save_checkpoint()
                    break
    finally:
        bar.close()
    wall = time.perf_counter() - start
    done = trainer.step - first_step
    summary = Summary(
        steps_done=done,
        final_step=trainer.step,
        wall_s=wall,
        threads=torch.get_num_threads(),
        started=started,
        steps_per_s=done / wall if wall > 0 else 0.0,
        stopped_by=stopped_by,
        validation=val_values,
        nonfinite_total=trainer.nonfinite_total,
    )
    if env.is_main:
        if trainer.step == total and trainer.last_checkpoint is not None:
            with atomic_path(run_dir / "model.safetensors") as tmp:
                shutil.copyfile(trainer.last_checkpoint / EMA_FILE, tmp)
        assert metrics is not None
        metrics.write(trainer.step, "summary", summary.__dict__)
        metrics.close()
    return summary
