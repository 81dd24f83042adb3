"""Training state as safetensors + JSON: no pickles, bit-exact round trips.

Optimiser and scheduler state dicts mix tensors with ints, floats, tuples,
int-keyed dicts and ``Counter``s. :func:`pack` splits such a structure into a
JSON-serialisable skeleton and a flat dict of tensors (stored with
safetensors); :func:`unpack` rebuilds the identical structure. Random number
generator states of torch (CPU and CUDA), numpy and Python are captured and
restored the same way.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import torch

_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"
_COUNTER, _FLOAT = "__counter__", "__float__"


def pack(
    obj: Any, tensors: dict[str, torch.Tensor] | None = None
) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split ``obj`` into (JSON skeleton, tensors) so that ``unpack`` restores it exactly."""
    store: dict[str, torch.Tensor] = {} if tensors is None else tensors
    return _pack(obj, store), store


def _pack(obj: Any, store: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(store)}"
        store[key] = obj.detach().to("cpu").contiguous().clone()
        return {_TENSOR: key}
    if isinstance(obj, Counter):
        return {_COUNTER: [[_pack(k, store), v] for k, v in obj.items()]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _pack(v, store) for k, v in obj.items()}
        return {_ITEMS: [[_pack(k, store), _pack(v, store)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TUPLE: [_pack(v, store) for v in obj]}
    if isinstance(obj, list):
        return [_pack(v, store) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return {_FLOAT: repr(obj)}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a training state")


def unpack(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`pack`."""
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            return tensors[skeleton[_TENSOR]]
        if _COUNTER in skeleton:
            return Counter({unpack(k, tensors): v for k, v in skeleton[_COUNTER]})
        if _ITEMS in skeleton:
            return {unpack(k, tensors): unpack(v, tensors) for k, v in skeleton[_ITEMS]}
        if _TUPLE in skeleton:
            return tuple(unpack(v, tensors) for v in skeleton[_TUPLE])
        if _FLOAT in skeleton:
            return float(skeleton[_FLOAT])
        return {k: unpack(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unpack(v, tensors) for v in skeleton]
    return skeleton


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU, CUDA), numpy and Python."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def check_rng_state(state: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless :func:`restore_rng_state` would accept ``state``.

    Each state is loaded into a fresh generator of its kind, so nothing global changes:
    a damaged ``state.json`` is found before any of the run is restored.
    """
    try:
        torch.Generator().set_state(state["torch"])
        name, keys, *rest = state["numpy"]
        np.random.RandomState().set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        version, internal, gauss = state["python"]
        random.Random().setstate((version, tuple(internal), gauss))
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise ValueError(f"random number generator state: {error}") from None
