"""Typed training configuration: YAML fills in dataclasses, nothing else reads YAML.

A config file is a nested mapping whose sections mirror the dataclasses below.
``--set section.key=value`` overrides are parsed as YAML values, so
``--set data.hr_dirs=[a,b]`` yields a list and ``--set train.lr=1e-4`` a float.
An unknown key, a value of the wrong type or out of its range raises
:class:`GtasrError` naming the dotted key. Every number has a range: the one
its field declares with :func:`within`, else :data:`DEFAULT_RANGE` (finite and
not negative); NaN and infinity are never accepted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gtasr.choices import PRECISION_NAMES
from gtasr.degrade.pipeline import PRESETS as DEGRADATION_PRESETS
from gtasr.errors import GtasrError
from gtasr.method.objectives import TA_POINTS

MAX_SEED = 2**32 - 1
"""Seeds are used modulo 2**32 (:func:`gtasr.train.seeding.derive_seed`): larger ones would
silently repeat smaller ones."""


@dataclass(frozen=True)
class Range:
    """The values a numeric config key accepts (every item, for a list of numbers)."""

    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        text = f"above {_number(self.low)}" if self.low_open else f"at least {_number(self.low)}"
        if math.isfinite(self.high):
            text += f" and {'below' if self.high_open else 'at most'} {_number(self.high)}"
        return text


def _number(value: float) -> str:
    """A bound as people write it: whole numbers in full, others in the shortest form."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


DEFAULT_RANGE = Range()
"""The range of a number whose field declares none: finite and not negative."""
_RANGE = "range"


def within(
    low: float = 0.0, high: float = math.inf, *, low_open: bool = False, high_open: bool = False
) -> dict[str, Range]:
    """Field metadata declaring the range of a numeric config key (checked at load)."""
    return {_RANGE: Range(low, high, low_open, high_open)}


@dataclass
class ModelConfig:
    """Which backbone to train and the consistency-model constants (METHOD §2-3)."""

    preset: str = "tiny"
    network: dict[str, Any] | None = None  # an explicit architecture dict overrides the preset
    sigma_data: float = field(default=0.5, metadata=within(low_open=True))
    sigma_scale: float = field(default=0.1, metadata=within(low_open=True))
    noise_offset: float = field(default=0.002, metadata=within(low_open=True))
    # f = c_skip x + (1 - c_skip) bicubic(y) + c_out F (see precond); None: on for the tiny
    # preset (gtasr's bicubic residual), off for the others (the release has none)
    lr_anchor: bool | None = None


@dataclass
class DataConfig:
    """Training photos, crops, degradation placement and the validation folder."""

    hr_dirs: list[str] = field(default_factory=list)
    # HR pixels, a multiple of 4 times the network's stride
    crop_size: int = field(default=256, metadata=within(low=1))
    hflip: bool = True
    # [low, high]: each crop comes from the photo resized so that its shorter side is drawn
    # log-uniformly in this range (never enlarged); null: crops at the photos' own scale
    short_side: list[int] | None = field(default=None, metadata=within(low=1))
    val_dir: str | None = None
    degradation: str = "train"  # a gtasr.degrade preset (train, test, jpeg, real) or "bicubic"
    degrade_on: str = "loader"  # "loader" (per batch in workers) or "device" (batched)
    workers: int = field(default=0, metadata=within(high=256))


@dataclass
class ScheduleConfig:
    """The power-law grid (METHOD §1): Stage I uses N=4 then N=3 at half of training."""

    power: float = field(default=2.5, metadata=within(low_open=True))
    num_intervals: list[int] = field(default_factory=lambda: [4, 3], metadata=within(low=1))
    sigma_max: float = field(default=1.0, metadata=within(low_open=True))


@dataclass
class LossConfig:
    """Every loss weight of METHOD §4-5; d = lpips_weight*LPIPS_vgg + charbonnier_weight*Charb."""

    lpips_weight: float = 0.5
    charbonnier_weight: float = 0.5
    ta_weight: float = 0.5
    ta_points: str = "all"  # "one": one trajectory point per sample (see Stage1Loss)
    dtm_weight: float = 0.8
    stab_weight: float = 0.2
    rect_weight: float = 1.0
    rect_gradient: bool = True  # false reproduces the release (L_Rect carries no gradient)
    dtm_index: int = 1  # the grid point of eta_t, at most Stage II's schedule.num_intervals


@dataclass
class TrainConfig:
    """Optimiser, schedule, precision, checkpoints and failure handling."""

    batch_size: int = field(default=4, metadata=within(low=1))
    iterations: int = field(default=1000, metadata=within(low=1))
    lr: float = field(default=5e-5, metadata=within(low_open=True))
    betas: list[float] = field(
        default_factory=lambda: [0.9, 0.9], metadata=within(high=1.0, high_open=True)
    )
    weight_decay: float = 0.0
    lr_milestones: list[int] = field(default_factory=lambda: [50000])
    lr_gamma: float = field(default=0.5, metadata=within(low_open=True))
    ema_decay: float = field(default=0.999, metadata=within(high=1.0))
    grad_clip: float | None = field(default=None, metadata=within(low_open=True))
    grad_accumulation: int = field(default=1, metadata=within(low=1))
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: the number format of the forward passes
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # intra-op CPU threads; None keeps torch's default
    threads: int | None = field(default=None, metadata=within(low=1))
    seed: int = field(default=0, metadata=within(high=MAX_SEED))
    checkpoint_every: int = field(default=1000, metadata=within(low=1))
    keep_checkpoints: int = field(default=3, metadata=within(low=1))
    reference_sync_every: int = field(default=1000, metadata=within(low=1))
    max_nonfinite: int = field(default=20, metadata=within(low=1))


@dataclass
class ValConfig:
    """Periodic validation on data.val_dir: PSNR-Y, LPIPS and a sample grid."""

    every: int = field(default=1000, metadata=within(low=1))
    max_images: int = field(default=8, metadata=within(low=1))
    lpips: bool = True
    seed: int = field(default=1234, metadata=within(high=MAX_SEED))
    grid_images: int = 4
    # RUN/best.safetensors only from validations whose PSNR-Y is at most this many dB below
    # bicubic's on the same images (null: any); LPIPS alone rewards drifting away from the GT
    max_psnr_drop: float | None = field(default=None, metadata=within(low=0))


@dataclass
class LogConfig:
    """Progress bar, log lines and metric sinks."""

    every: int = field(default=50, metadata=within(low=1))
    progress: bool = True
    tensorboard: bool = True


@dataclass
class Config:
    """A whole training run."""

    stage: int = field(default=1, metadata=within(low=1, high=2))
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
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = set(fields)
    for key in raw:
        if key not in names:
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
            _check_range(kwargs[name], fields[name], f"{prefix}{name}")
    return cls(**kwargs)


def _check_range(value: Any, spec: dataclasses.Field, key: str) -> None:
    """Every number in ``value`` (a number or a list of numbers) must lie in the field's range."""
    numbers = value if isinstance(value, list) else [value]
    allowed = spec.metadata.get(_RANGE, DEFAULT_RANGE)
    for number in numbers:
        if (
            isinstance(number, int | float)
            and not isinstance(number, bool)
            and number not in allowed
        ):
            raise GtasrError(f"config key '{key}': must be {allowed}, got {number}")


def numeric_ranges(cls: type, prefix: str = "") -> dict[str, Range]:
    """Dotted key -> range of every numeric field of the config dataclass ``cls``."""
    ranges: dict[str, Range] = {}
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        tp = hints[spec.name]
        if dataclasses.is_dataclass(tp):
            ranges |= numeric_ranges(tp, f"{prefix}{spec.name}.")
        elif _is_numeric(tp):
            ranges[f"{prefix}{spec.name}"] = spec.metadata.get(_RANGE, DEFAULT_RANGE)
    return ranges


def _is_numeric(tp: Any) -> bool:
    """Whether the annotation ``tp`` holds numbers (int, float, optional or in a list)."""
    if tp in (int, float):
        return True
    return any(_is_numeric(arg) for arg in typing.get_args(tp) if arg is not type(None))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], YAML-parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise GtasrError(f"bad --set '{text}': expected KEY=VALUE, e.g. train.lr=1e-4")
    try:
        parsed = _parse_yaml(value) if value.strip() else None
    except (yaml.YAMLError, ValueError) as error:
        raise GtasrError(f"bad --set '{text[:80]}': value is not valid YAML ({error})") from None
    return key.strip().split("."), parsed


MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 16
"""A config is a few sections of values and short lists: deeper nesting is a mistake, and
Python's recursion limit would otherwise turn it into a crash."""


def _parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses nesting deeper than :data:`MAX_CONFIG_DEPTH`."""
    depth = 0
    for char in text:  # flow collections: a cheap bound before the recursive composer runs
        depth = depth + 1 if char in "[{" else depth - 1 if char in "]}" else depth
        if depth > MAX_CONFIG_DEPTH:
            raise ValueError(f"nested deeper than {MAX_CONFIG_DEPTH} levels")
    try:
        parsed = yaml.safe_load(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_CONFIG_DEPTH} levels") from None
    stack = [(parsed, 0)]
    while stack:
        node, level = stack.pop()
        if level > MAX_CONFIG_DEPTH:
            raise ValueError(f"nested deeper than {MAX_CONFIG_DEPTH} levels")
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        stack.extend((child, level + 1) for child in children)
    return parsed


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
    """Cross-field checks that types and ranges alone cannot express."""
    if config.stage == 2 and not config.init_from:
        raise GtasrError("config key 'init_from': Stage II needs a Stage I checkpoint")
    if len(config.train.betas) != 2:
        raise GtasrError("config key 'train.betas': expected two numbers")
    if not config.schedule.num_intervals:
        raise GtasrError("config key 'schedule.num_intervals': expected positive integers")
    if config.stage == 2 and config.loss.dtm_index > config.schedule.num_intervals[0]:
        raise GtasrError(
            "config key 'loss.dtm_index': must be at most schedule.num_intervals "
            f"({config.schedule.num_intervals[0]}), got {config.loss.dtm_index}"
        )
    choices = {
        "train.precision": (config.train.precision, ("auto", *PRECISION_NAMES)),
        "data.degrade_on": (config.data.degrade_on, ("loader", "device")),
        "loss.ta_points": (config.loss.ta_points, TA_POINTS),
        "data.degradation": (config.data.degradation, ("bicubic", *DEGRADATION_PRESETS)),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise GtasrError(f"config key '{key}': must be one of {', '.join(allowed)}")
    short_side = config.data.short_side
    if short_side is not None and (len(short_side) != 2 or short_side[0] > short_side[1]):
        raise GtasrError(f"config key 'data.short_side': expected [low, high], got {short_side}")
    if not config.data.hr_dirs:
        raise GtasrError("config key 'data.hr_dirs': at least one folder of training photos")
    multiple = 4 * network_stride(config.model)
    if config.data.crop_size % multiple:
        raise GtasrError(
            f"config key 'data.crop_size': must be a multiple of {multiple} (4 times the "
            f"network's stride), got {config.data.crop_size}"
        )


def network_stride(model: ModelConfig) -> int:
    """The LR stride of the configured backbone, checking the preset or network dict."""
    from gtasr.nets import SongUNetConfig, preset_config

    if model.network is None:
        try:
            return SongUNetConfig.from_dict(preset_config(model.preset)).stride
        except GtasrError as error:
            raise GtasrError(f"config key 'model.preset': {error}") from error
    try:
        return SongUNetConfig.from_dict(dict(model.network)).stride
    except (TypeError, ValueError) as error:
        raise GtasrError(f"config key 'model.network': {error}") from error


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
        if file.exists() and not file.is_file():
            raise GtasrError(f"{file}: not a regular file (a config is a YAML file)")
        data = file.read_bytes() if file.stat().st_size <= MAX_CONFIG_BYTES else None
        if data is None:
            raise GtasrError(f"{file}: over {MAX_CONFIG_BYTES >> 20} MB, not a config")
        raw = _parse_yaml(data.decode("utf-8")) or {}
    except OSError as error:
        raise GtasrError(f"{file}: cannot read config ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise GtasrError(f"{file}: not UTF-8 text (byte {error.start})") from None
    except (yaml.YAMLError, ValueError) as error:
        raise GtasrError(f"{file}: not valid YAML ({error})") from None
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
