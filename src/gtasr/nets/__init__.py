"""Backbones F(x, c_noise, y) for x4 super-resolution; they know nothing about diffusion."""

from gtasr.nets.cost import count_macs
from gtasr.nets.presets import PRESETS, build_network, preset_config, state_shapes
from gtasr.nets.songunet import SongUNetConfig, SongUNetSR

__all__ = [
    "PRESETS",
    "SongUNetConfig",
    "SongUNetSR",
    "build_network",
    "count_macs",
    "preset_config",
    "state_shapes",
]
