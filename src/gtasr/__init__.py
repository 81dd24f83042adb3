"""gtasr: one-step real-world x4 image super-resolution (GTASR).

Importing the package is cheap: heavy modules load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Upscaler", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Upscaler":
        from gtasr.infer.upscaler import Upscaler

        return Upscaler
    raise AttributeError(f"module 'gtasr' has no attribute {name!r}")
