"""Synthetic real-world degradation: blur kernels, noise, JPEG and the two-order pipeline."""

from gtasr.degrade.pipeline import DegradationConfig, degrade_batch

__all__ = ["DegradationConfig", "degrade_batch"]
