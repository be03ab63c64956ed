"""EfficientNet-Lite0 (no squeeze-excitation, ReLU6), with timm's ``efficientnet_lite0`` key names.

Module names follow timm (``conv_stem``, ``bn1``, ``blocks.S.B.conv_pw`` …) so a timm
checkpoint's ``state_dict`` loads: timm keeps the activation inside its ``BatchNormAct2d``,
which has no parameters of its own, so here it is a separate module without changing any key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .mobilenetv2 import init_weights, make_divisible


@dataclass(frozen=True)
class LiteStage:
    expand_ratio: int
    kernel_size: int
    channels: int
    repeats: int
    stride: int


LITE0_STAGES = (
    LiteStage(1, 3, 16, 1, 1),
    LiteStage(6, 3, 24, 2, 2),
    LiteStage(6, 5, 40, 2, 2),
    LiteStage(6, 3, 80, 3, 2),
    LiteStage(6, 5, 112, 3, 1),
    LiteStage(6, 5, 192, 4, 2),
    LiteStage(6, 3, 320, 1, 1),
)


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
          groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                     groups=groups, bias=False)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise → BN → ReLU6 → pointwise → BN (first stage, expansion 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = _conv(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_pw = _conv(in_channels, out_channels, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.act1(self.bn1(self.conv_dw(x)))))
        return x + out if self.has_skip else out


class InvertedResidual(nn.Module):
    """Pointwise expand → depthwise k×k → pointwise linear projection."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 expand_ratio: int) -> None:
        super().__init__()
        hidden = make_divisible(in_channels * expand_ratio)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_pw = _conv(in_channels, hidden, 1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_dw = _conv(hidden, hidden, kernel_size, stride, groups=hidden)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.act2 = nn.ReLU6(inplace=True)
        self.conv_pwl = _conv(hidden, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.act2(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return x + out if self.has_skip else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite (Tan & Le; TF-Lite variant): fixed stem/head, ReLU6, no SE."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                 small_input: bool = False, dropout: float = 0.2,
                 stages: tuple[LiteStage, ...] = LITE0_STAGES) -> None:
        super().__init__()
        self.conv_stem = _conv(in_channels, 32, 3, 1 if small_input else 2)
        self.bn1 = nn.BatchNorm2d(32)
        self.act1 = nn.ReLU6(inplace=True)
        channels = 32
        blocks: list[nn.Module] = []
        for index, stage in enumerate(stages):
            out_channels = make_divisible(stage.channels * width_mult)
            stage_stride = 1 if (small_input and index == 1) else stage.stride
            stage_blocks: list[nn.Module] = []
            for i in range(stage.repeats):
                stride = stage_stride if i == 0 else 1
                if stage.expand_ratio == 1:
                    block = DepthwiseSeparableConv(channels, out_channels, stage.kernel_size, stride)
                else:
                    block = InvertedResidual(channels, out_channels, stage.kernel_size, stride,
                                             stage.expand_ratio)
                stage_blocks.append(block)
                channels = out_channels
            blocks.append(nn.Sequential(*stage_blocks))
        self.blocks = nn.Sequential(*blocks)
        self.num_features = 1280
        self.conv_head = _conv(channels, self.num_features, 1)
        self.bn2 = nn.BatchNorm2d(self.num_features)
        self.act2 = nn.ReLU6(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.num_features, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = self.act2(self.bn2(self.conv_head(x)))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(self.dropout(x))
