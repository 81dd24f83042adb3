"""Typed training configuration: YAML fills in dataclasses, nothing else reads YAML.

A config file is a nested mapping whose sections mirror the dataclasses below.
``--set section.key=value`` overrides are parsed as YAML values, so
``--set data.hr_dirs=[a,b]`` yields a list and ``--set train.lr=1e-4`` a float.
An unknown key or a value of the wrong type raises :class:`GtasrError` naming
the dotted key. Keys that earlier versions wrote into run folders but that no
longer mean anything (:data:`RETIRED_KEYS`) are ignored with a warning, so an
old run's ``config.yaml`` still loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gtasr.errors import GtasrError

log = logging.getLogger(__name__)

RETIRED_KEYS = ("data.cache_images",)
"""Keys of earlier versions that had no effect; accepted and ignored until the next release."""


@dataclass
class ModelConfig:
    """Which backbone to train and the consistency-model constants (METHOD §2-3)."""

    preset: str = "tiny"
    network: dict[str, Any] | None = None  # an explicit architecture dict overrides the preset
    sigma_data: float = 0.5
    sigma_scale: float = 0.1
    noise_offset: float = 0.002


@dataclass
class DataConfig:
    """Training photos, crops, degradation placement and the validation folder."""

    hr_dirs: list[str] = field(default_factory=list)
    crop_size: int = 256
    hflip: bool = True
    val_dir: str | None = None
    degradation: str = "train"  # degradation preset of gtasr.degrade
    degrade_on: str = "loader"  # "loader" (per batch in workers) or "device" (batched)
    workers: int = 0


@dataclass
class ScheduleConfig:
    """The power-law grid (METHOD §1): Stage I uses N=4 then N=3 at half of training."""

    power: float = 2.5
    num_intervals: list[int] = field(default_factory=lambda: [4, 3])
    sigma_max: float = 1.0


@dataclass
class LossConfig:
    """Every loss weight of METHOD §4-5; d = lpips_weight*LPIPS_vgg + charbonnier_weight*Charb."""

    lpips_weight: float = 0.5
    charbonnier_weight: float = 0.5
    ta_weight: float = 0.5
    dtm_weight: float = 0.8
    stab_weight: float = 0.2
    rect_weight: float = 1.0
    rect_gradient: bool = True  # false reproduces the release (L_Rect carries no gradient)
    stage2_eta_index: int = 1


@dataclass
class TrainConfig:
    """Optimiser, schedule, precision, checkpoints and failure handling."""

    batch_size: int = 4
    iterations: int = 1000
    lr: float = 5e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.9])
    weight_decay: float = 0.0
    lr_milestones: list[int] = field(default_factory=lambda: [50000])
    lr_gamma: float = 0.5
    ema_decay: float = 0.999
    grad_clip: float | None = None
    grad_accumulation: int = 1
    autocast: str = "auto"  # auto | none | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # intra-op CPU threads; None keeps torch's default
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    reference_sync_every: int = 1000
    max_nonfinite: int = 20


@dataclass
class ValConfig:
    """Periodic validation on data.val_dir: PSNR-Y, LPIPS and a sample grid."""

    every: int = 1000
    max_images: int = 8
    lpips: bool = True
    seed: int = 1234
    grid_images: int = 4


@dataclass
class LogConfig:
    """Progress bar, log lines and metric sinks."""

    every: int = 50
    progress: bool = True
    tensorboard: bool = True


@dataclass
class Config:
    """A whole training run."""

    stage: int = 1
    init_from: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    val: ValConfig = field(default_factory=ValConfig)
    log: LogConfig = field(default_factory=LogConfig)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted as floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except GtasrError:
                continue
        raise GtasrError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise GtasrError(f"config key '{key}': expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise GtasrError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, str):  # PyYAML reads "1e-4" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GtasrError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise GtasrError(f"config key '{key}': expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise GtasrError(f"config key '{key}': expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise GtasrError(f"config key '{key}': expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for {key}")


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    """Fill the dataclass ``cls`` from ``raw``, recursing into nested sections."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if f"{prefix}{key}" in RETIRED_KEYS:
            log.warning("config key '%s%s' no longer has any meaning and is ignored", prefix, key)
        elif key not in names:
            raise GtasrError(f"unknown config key '{prefix}{key}'")
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in raw:
            continue
        value, tp = raw[name], hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise GtasrError(f"config key '{prefix}{name}': expected a mapping section")
            kwargs[name] = _build(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, f"{prefix}{name}")
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], YAML-parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise GtasrError(f"bad --set '{text}': expected KEY=VALUE, e.g. train.lr=1e-4")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as error:
        raise GtasrError(f"bad --set '{text}': value is not valid YAML ({error})") from error
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``KEY=VALUE`` override applied."""
    result = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise GtasrError(f"bad --set '{text}': '{'.'.join(parts[: depth + 1])}' is a value")
            node = child
        node[parts[-1]] = value
    return result


def _check(config: Config) -> None:
    """Cross-field checks that types alone cannot express."""
    if config.stage not in (1, 2):
        raise GtasrError(f"config key 'stage': must be 1 or 2, got {config.stage}")
    if config.stage == 2 and not config.init_from:
        raise GtasrError("config key 'init_from': Stage II needs a Stage I checkpoint")
    positive = {
        "train.batch_size": config.train.batch_size,
        "train.iterations": config.train.iterations,
        "train.checkpoint_every": config.train.checkpoint_every,
        "train.keep_checkpoints": config.train.keep_checkpoints,
        "train.grad_accumulation": config.train.grad_accumulation,
        "train.reference_sync_every": config.train.reference_sync_every,
        "train.max_nonfinite": config.train.max_nonfinite,
        "data.crop_size": config.data.crop_size,
        "val.every": config.val.every,
        "log.every": config.log.every,
    }
    for key, value in positive.items():
        if value < 1:
            raise GtasrError(f"config key '{key}': must be at least 1, got {value}")
    if config.train.threads is not None and config.train.threads < 1:
        raise GtasrError("config key 'train.threads': must be at least 1 (or null)")
    if config.train.lr <= 0:
        raise GtasrError(f"config key 'train.lr': must be positive, got {config.train.lr}")
    if len(config.train.betas) != 2:
        raise GtasrError("config key 'train.betas': expected two numbers")
    if not config.schedule.num_intervals or min(config.schedule.num_intervals) < 1:
        raise GtasrError("config key 'schedule.num_intervals': expected positive integers")
    choices = {
        "train.autocast": (config.train.autocast, ("auto", "none", "bf16", "fp16")),
        "data.degrade_on": (config.data.degrade_on, ("loader", "device")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise GtasrError(f"config key '{key}': must be one of {', '.join(allowed)}")
    if not config.data.hr_dirs:
        raise GtasrError("config key 'data.hr_dirs': at least one folder of training photos")


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Build and check a :class:`Config` from a plain mapping."""
    if not isinstance(raw, Mapping):
        raise GtasrError("config must be a mapping of sections")
    config = _build(Config, raw, "")
    _check(config)
    return config


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config file, apply ``--set`` overrides and validate the result."""
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise GtasrError(f"{file}: cannot read config ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise GtasrError(f"{file}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise GtasrError(f"{file}: a config must be a mapping of sections")
    try:
        return config_from_dict(apply_overrides(raw, overrides))
    except GtasrError as error:
        raise GtasrError(f"{file}: {error}") from error


def config_to_dict(config: Config) -> dict[str, Any]:
    """The plain-data form of a config (what the run directory stores)."""
    return dataclasses.asdict(config)


def dump_config(config: Config) -> str:
    """YAML text of a resolved config; ``load_config`` reads it back to an equal config."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
