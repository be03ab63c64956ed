"""MobileNetV3-Large/Small with torchvision's module names and ``state_dict`` keys.

Squeeze-excitation gates (``x * gate(x)``) and hardswish make parts of these networks merge
barriers: the tracer keeps them, and merges only around them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import ConvBNActivation
from .mobilenetv2 import init_weights, make_divisible


@dataclass(frozen=True)
class BlockSpec:
    in_channels: int
    kernel_size: int
    expanded: int
    out_channels: int
    squeeze_excite: bool
    hardswish: bool
    stride: int


LARGE = [BlockSpec(*spec) for spec in [
    (16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1)]]
SMALL = [BlockSpec(*spec) for spec in [
    (16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2), (24, 3, 88, 24, False, False, 1),
    (24, 5, 96, 40, True, True, 2), (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
    (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1), (48, 5, 288, 96, True, True, 2),
    (96, 5, 576, 96, True, True, 1), (96, 5, 576, 96, True, True, 1)]]


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
             activation: type[nn.Module] | None = nn.ReLU) -> ConvBNActivation:
    """conv → BN (torchvision MobileNetV3's eps and momentum) → activation (none for projections)."""
    return ConvBNActivation(in_channels, out_channels, kernel_size, stride, groups, activation, eps=0.001, momentum=0.01)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidual(nn.Module):
    def __init__(self, spec: BlockSpec, width_mult: float) -> None:
        super().__init__()
        in_channels, expanded = make_divisible(spec.in_channels * width_mult), make_divisible(spec.expanded * width_mult)
        out_channels = make_divisible(spec.out_channels * width_mult)
        activation = nn.Hardswish if spec.hardswish else nn.ReLU
        self.use_res_connect = spec.stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(_conv_bn(in_channels, expanded, 1, activation=activation))
        layers.append(_conv_bn(expanded, expanded, spec.kernel_size, spec.stride, expanded, activation))
        if spec.squeeze_excite:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(_conv_bn(expanded, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


class MobileNetV3(nn.Module):
    """MobileNetV3 (Howard et al. 2019), torchvision layout."""

    def __init__(self, specs: list[BlockSpec], last_channel: int, num_classes: int = 1000, width_mult: float = 1.0,
                 in_channels: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        first = make_divisible(16 * width_mult)
        layers: list[nn.Module] = [_conv_bn(in_channels, first, 3, 2, activation=nn.Hardswish)]
        layers += [InvertedResidual(spec, width_mult) for spec in specs]
        last_in = make_divisible(specs[-1].out_channels * width_mult)
        layers.append(_conv_bn(last_in, 6 * last_in, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last_channel = make_divisible(last_channel * width_mult)
        self.classifier = nn.Sequential(nn.Linear(6 * last_in, last_channel), nn.Hardswish(inplace=True),
                                        nn.Dropout(p=dropout, inplace=True), nn.Linear(last_channel, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


def mobilenet_v3_large(**kwargs) -> MobileNetV3:
    return MobileNetV3(LARGE, 1280, **kwargs)


def mobilenet_v3_small(**kwargs) -> MobileNetV3:
    return MobileNetV3(SMALL, 1024, **kwargs)
