"""MobileNetV2 whose module names and ``state_dict`` keys match torchvision's ``mobilenet_v2``.

A torchvision checkpoint therefore loads with ``load_state_dict(strict=True)``. Extra knobs:
``in_channels`` (1 for grey images), ``num_classes`` and ``small_input`` (stem stride 1 and the
second stage at stride 1: total stride 8 instead of 32, for 28-64 px images such as
Fashion-MNIST or CIFAR).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import ConvBNActivation


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never dropping below 90% (torchvision's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming (fan-out) convs, unit BN, small-normal classifiers."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


@dataclass(frozen=True)
class StageSpec:
    """One stage of inverted-residual blocks: expansion ``t``, channels ``c``, repeats ``n``, stride ``s``."""

    expand_ratio: int
    channels: int
    repeats: int
    stride: int


IMAGENET_STAGES = (
    StageSpec(1, 16, 1, 1),
    StageSpec(6, 24, 2, 2),
    StageSpec(6, 32, 3, 2),
    StageSpec(6, 64, 4, 2),
    StageSpec(6, 96, 3, 1),
    StageSpec(6, 160, 3, 2),
    StageSpec(6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """Pointwise expand → depthwise → pointwise project, with a skip when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNActivation(in_channels, hidden, kernel_size=1))
        layers += [
            ConvBNActivation(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018), torchvision layout."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                 small_input: bool = False, dropout: float = 0.2,
                 stages: tuple[StageSpec, ...] = IMAGENET_STAGES) -> None:
        super().__init__()
        if small_input:
            stages = tuple(StageSpec(s.expand_ratio, s.channels, s.repeats, 1 if i == 1 else s.stride)
                           for i, s in enumerate(stages))
        channels = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [
            ConvBNActivation(in_channels, channels, stride=1 if small_input else 2)]
        for stage in stages:
            out_channels = make_divisible(stage.channels * width_mult)
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                features.append(InvertedResidual(channels, out_channels, stride, stage.expand_ratio))
                channels = out_channels
        features.append(ConvBNActivation(channels, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)
