"""AlexNet and VGG16 convolutional trunks that return intermediate activations.

The layers are numbered as in torchvision's ``features`` so that its state dicts
(and our converted ones) load by index. The convolution weights are buffers,
not parameters: a pretrained metric never trains, so no parent's
``requires_grad_`` or optimiser can reach them. ReLUs are not in-place, so
tapped activations stay valid for autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

VGG16_LAYOUT: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, "M"),
    *(512, 512, 512, "M"),
    *(512, 512, 512),
)


class FixedConv2d(nn.Module):
    """A 2-D convolution whose weight and bias are fixed buffers (loaded, never trained)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.register_buffer("weight", torch.zeros(out_channels, in_channels, kernel, kernel))
        self.register_buffer("bias", torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


class TappedTrunk(nn.Module):
    """A sequential trunk that returns the activations after the tapped layers."""

    def __init__(self, layers: Sequence[nn.Module], taps: Sequence[int]) -> None:
        super().__init__()
        self.features = nn.Sequential(*layers)
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        last = self.taps[-1]
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outputs.append(x)
            if index == last:
                break
        return outputs


def alexnet_trunk() -> TappedTrunk:
    """AlexNet (torchvision's one-weird-trick variant) up to relu5.

    Taps relu1..relu5 (feature indices 1, 4, 7, 9, 11), the LPIPS-alex layers.
    """
    layers: list[nn.Module] = [
        FixedConv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        FixedConv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        FixedConv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        FixedConv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        FixedConv2d(256, 256, 3, padding=1),
        nn.ReLU(),
    ]
    return TappedTrunk(layers, taps=(1, 4, 7, 9, 11))


def vgg16_trunk(pool: Callable[[int], nn.Module] | None = None) -> TappedTrunk:
    """VGG16 up to relu5_3, tapping relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.

    ``pool(channels)`` builds each downsampling layer (max pooling by default;
    DISTS uses L2 pooling).
    """
    layers: list[nn.Module] = []
    taps = []
    channels = 3
    for position, item in enumerate(VGG16_LAYOUT):
        if item == "M":
            taps.append(len(layers) - 1)
            layers.append(pool(channels) if pool else nn.MaxPool2d(2, stride=2))
            continue
        layers += [FixedConv2d(channels, int(item), 3, padding=1), nn.ReLU()]
        channels = int(item)
        if position == len(VGG16_LAYOUT) - 1:
            taps.append(len(layers) - 1)
    return TappedTrunk(layers, taps=taps)


class L2Pooling(nn.Module):
    """DISTS's anti-aliased L2 pooling: sqrt(blur(x^2)) with stride 2.

    The blur is the normalised outer product of the Hann window [0.5, 1, 0.5]
    (the interior of ``hanning(5)``), applied per channel with zero padding 1.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        window = torch.tensor([0.5, 1.0, 0.5])
        kernel = window[:, None] * window[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.kernel.to(x.dtype).expand(x.shape[1], 1, 3, 3)
        out = F.conv2d(x * x, weight, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()
