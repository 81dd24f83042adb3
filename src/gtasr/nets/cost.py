"""Multiply-accumulate count of a backbone, measured by running it once."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_attention_flops(
    query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *args, **kwargs
) -> int:
    """FLOPs of the fused CPU attention kernel, which the stock counter does not know."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def count_macs(net: nn.Module, lr_size: int | tuple[int, int]) -> int:
    """MACs (FLOPs / 2) of one forward pass for one LR image of ``lr_size`` (h or (h, w)).

    Counts convolutions, matrix products and attention. Runs on the device
    of ``net``'s parameters; build the net on the ``meta`` device to count
    without computing.
    """
    h, w = (lr_size, lr_size) if isinstance(lr_size, int) else lr_size
    param = next(net.parameters())
    kwargs = {"device": param.device, "dtype": param.dtype}
    scale = int(getattr(net, "scale", 4))
    channels = int(getattr(net, "config", {}).get("image_channels", 3))
    x = torch.zeros(1, channels, scale * h, scale * w, **kwargs)
    y = torch.zeros(1, channels, h, w, **kwargs)
    c_noise = torch.zeros(1, **kwargs)
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}
    was_training = net.training
    net.eval()
    try:
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter, torch.no_grad():
            net(x, c_noise, y)
    finally:
        net.train(was_training)
    return int(counter.get_total_flops()) // 2
