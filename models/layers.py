"""Building blocks shared by the zoo's networks."""

from __future__ import annotations

from torch import nn


class ConvBNActivation(nn.Sequential):
    """conv → BN → activation (none for a projection); indices 0/1/2 as torchvision's
    ``Conv2dNormActivation``, so its checkpoints load. BN ``eps``/``momentum``: torchvision's
    MobileNetV2 keeps PyTorch's defaults, its MobileNetV3 uses 0.001 and 0.01."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 activation: type[nn.Module] | None = nn.ReLU6, eps: float = 1e-5, momentum: float = 0.1) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum)]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels
