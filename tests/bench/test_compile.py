"""bench/compile.py's payback arithmetic: when torch.compile pays for itself on a photo."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def compile_bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("compile")


def test_payback_counts_photos_until_the_compile_is_repaid(compile_bench: ModuleType) -> None:
    cost = compile_bench.photo_cost(tiles=25, eager=1.0, compiled=0.8, compile_seconds=20.0)
    assert cost == {
        "tiles": 25,
        "eager_seconds": 25.0,
        "compiled_seconds_with_compile": 40.0,
        "payback_photos": 4.0,
    }


def test_a_compiled_path_that_is_not_faster_never_pays_back(compile_bench: ModuleType) -> None:
    cost = compile_bench.photo_cost(tiles=4, eager=1.0, compiled=1.1, compile_seconds=50.0)
    assert cost["payback_photos"] is None
    assert cost["compiled_seconds_with_compile"] == pytest.approx(54.4)
