"""gtasr models for spandrel, the loader behind ComfyUI's "Load Upscale Model" and chaiNNer.

After :func:`register`, ``spandrel.ModelLoader().load_from_file(path)`` returns an
``ImageModelDescriptor`` for the authors' GTASR/CTMSR checkpoints and for gtasr
model files. Calling it on a Tensor[B, 3, H, W] in [0, 1] runs gtasr's one-step
upscaling (its noise field, y0, tiling and the model family's conventions),
so the result is what :meth:`gtasr.Upscaler.upscale` gives for the same image and seed
(:attr:`UpscalingModule.seed`, 0 unless changed; ``gtasr upscale`` seeds each file with
:func:`gtasr.infer.noise.image_seed`).

spandrel hands architectures only the tensors, never a file's metadata. The
authors' files need none (everything is read from tensor names and shapes,
see :mod:`gtasr.nets.release_layout`). For gtasr files the architecture is read from the
shapes the same way, and ``lr_anchor`` and ``lr_skip``, which leave no trace in the
weights, from the file's convention tensors (:data:`gtasr.modelfile.CONVENTION_TENSORS`).
The family is gtasr's, so a converted authors' file runs here with gtasr's conventions;
load the ``.pth`` itself for the release's exact pixels.

This module imports spandrel and is only importable where it is installed
(``pip install 'gtasr[spandrel]'``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from spandrel import (
    MAIN_REGISTRY,
    Architecture,
    ArchRegistry,
    ArchSupport,
    ImageModelDescriptor,
    ModelTiling,
    SizeRequirements,
    StateDict,
)
from torch import Tensor, nn

from gtasr import release
from gtasr.choices import DEFAULT_TILE, DEFAULT_TILE_OVERLAP
from gtasr.infer.backends import TorchDenoiser
from gtasr.infer.upscaler import Upscaler
from gtasr.method.precond import ConsistencyModel
from gtasr.modelfile import split_conventions
from gtasr.nets import PRESETS, build_network, preset_config
from gtasr.nets.release_layout import looks_like_release
from gtasr.release import FAMILY as RELEASE_FAMILY

ARCH_ID = "GTASR"
_GTASR_KEYS = ("map0.weight", "conv_in.weight", "encoder.0.conv0.weight", "head_conv.weight")


class UpscalingModule(nn.Module):
    """gtasr's one-step x4 upscaling as a module: Tensor[B, 3, H, W] in [0, 1] -> x4 in [0, 1].

    Each image is upscaled on its own with the noise of :attr:`seed`, in tiles
    of :attr:`tile` LR pixels as ``gtasr upscale`` does by default; the network
    runs in the dtype its parameters have (``descriptor.bfloat16()`` casts them).
    """

    def __init__(self, model: ConsistencyModel, family: str) -> None:
        super().__init__()
        self.model = model
        self.family = family
        self.seed = 0
        self.tile = DEFAULT_TILE
        self.tile_overlap = DEFAULT_TILE_OVERLAP

    @property
    def stride(self) -> int:
        """LR sizes are padded to multiples of this (the network's and the family's)."""
        return self._upscaler().stride

    def _upscaler(self) -> Upscaler:
        device = next(self.model.parameters()).device
        return Upscaler(TorchDenoiser(self.model, device), family=self.family)

    def forward(self, image: Tensor) -> Tensor:
        upscaler = self._upscaler()
        results = []
        for one in image.float():
            y = one[None].mul(2.0).sub(1.0).cpu()
            sr = upscaler.upscale_tensor(
                y, seed=self.seed, tile=self.tile, tile_overlap=self.tile_overlap
            )
            results.append(sr.add_(1.0).mul_(0.5).clamp_(0.0, 1.0))
        return torch.cat(results).to(device=image.device, dtype=image.dtype)


def _gtasr_network(state: StateDict) -> dict[str, Any]:
    """The backbone config of a gtasr-named state dict, from tensor shapes (no metadata)."""
    base, in_channels = state["conv_in.weight"].shape[:2]
    encoder = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("encoder."))
    decoder = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("decoder."))
    levels = decoder - encoder - 2  # encoder L*n + L-1 blocks, decoder L*(n+1) + L+1
    blocks = (encoder + 1 - levels) // levels
    firsts = [level * (blocks + 1) for level in range(levels)]
    swin = next(k[: -len("embed.weight")] for k in state if k.endswith("attention.embed.weight"))
    table, heads = state[f"{swin}block.attn.relative_position_bias"].shape
    swin_dim = state[f"{swin}embed.weight"].shape[0]
    network = {
        "base_channels": base,
        "channel_mults": [state[f"encoder.{i}.conv1.weight"].shape[0] // base for i in firsts],
        "blocks_per_level": blocks,
        "attention_levels": [
            level
            for level, i in enumerate(firsts)
            if f"encoder.{i}.attention.embed.weight" in state
        ],
        "emb_channels": state["map0.weight"].shape[0],
        "swin_dim": swin_dim,
        "swin_heads": heads,
        "swin_window": (math.isqrt(table) + 1) // 2,
        "swin_mlp_ratio": state[f"{swin}block.fc1.weight"].shape[0] / swin_dim,
        "swin_qkv_bias": f"{swin}block.attn.qkv.bias" in state,
        "head_channels": state["head_conv.weight"].shape[0],
        "image_channels": in_channels // 17,
        "upsampler": "nearest" if "up1.weight" in state else "pixelshuffle",
    }
    for name in PRESETS:
        preset = preset_config(name)
        if all(preset.get(key) == value for key, value in network.items() if key != "upsampler"):
            return {**preset, **network}
    return network


def _is_gtasr(state: StateDict) -> bool:
    return all(key in state for key in _GTASR_KEYS)


class GtasrArch(Architecture[UpscalingModule]):
    """spandrel architecture for the authors' GTASR/CTMSR checkpoints and gtasr model files."""

    def __init__(self) -> None:
        super().__init__(
            id=ARCH_ID,
            name="GTASR",
            detect=lambda state: looks_like_release(state) or _is_gtasr(state),
        )

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[UpscalingModule]:
        if _is_gtasr(state_dict):
            tensors, switches = split_conventions(state_dict)
            network, family = _gtasr_network(tensors), "gtasr"
            network["lr_skip"] = switches["lr_skip"]
            precond: dict[str, float | bool] = {}
            if switches["lr_anchor"]:
                precond["lr_anchor"] = True
        else:
            found = release.release_weights(state_dict)
            network, tensors, family = found.network, found.state_dict, RELEASE_FAMILY
            precond = dict(release.PRECOND)
        backbone = build_network(network)
        backbone.load_state_dict(tensors)
        module = UpscalingModule(ConsistencyModel(backbone, **precond).eval(), family)
        tags = [family, f"{network['base_channels']}nf", f"{network['blocks_per_level']}nb"]
        return ImageModelDescriptor(
            module,
            module.state_dict(),
            architecture=self,
            purpose="SR",
            tags=tags,
            supports_half=True,
            supports_bfloat16=True,
            scale=backbone.scale,
            input_channels=3,
            output_channels=3,
            size_requirements=SizeRequirements(multiple_of=module.stride),
            tiling=ModelTiling.SUPPORTED,
        )


def register(registry: ArchRegistry = MAIN_REGISTRY) -> None:
    """Add the GTASR architecture to ``registry`` (spandrel's main one); idempotent."""
    if ARCH_ID not in registry:
        registry.add(ArchSupport.from_architecture(GtasrArch()))
