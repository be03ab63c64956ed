"""torchvision-style networks for the tests (torchvision is not installed here): the structure and
module names of torchvision's EfficientNet-B0 (``features``, MBConv ``block``/``stochastic_depth``,
``Conv2dNormActivation``, ``SqueezeExcitation``), written from its documented architecture, plus
small variants in other coding styles (``x + self.block(x)``, inline stochastic depth, ``add_``)."""

from __future__ import annotations

from functools import partial

import torch
from torch import fx, nn


def stochastic_depth(input: torch.Tensor, p: float, mode: str, training: bool = True) -> torch.Tensor:
    """torchvision's semantics: identity unless training with ``p > 0``; else a Bernoulli mask per
    row (``'row'``) or for the whole batch (``'batch'``), scaled by ``1 / (1 - p)``."""
    if not training or p == 0.0:
        return input
    survival = 1.0 - p
    size = [input.shape[0]] + [1] * (input.ndim - 1) if mode == "row" else [1] * input.ndim
    noise = torch.empty(size, dtype=input.dtype, device=input.device).bernoulli_(survival)
    return input * noise.div_(survival) if survival > 0 else input * noise


fx.wrap("stochastic_depth")  # as torchvision does: a leaf function whose ``training`` is an argument


class StochasticDepth(nn.Module):
    """Stands in for ``torchvision.ops.StochasticDepth`` (its qualified type name below)."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return stochastic_depth(input, self.p, self.mode, self.training)


StochasticDepth.__module__ = "torchvision.ops.stochastic_depth"


class UnknownStochasticDepth(nn.Module):
    """The same module under a type the tracer does not know: its wrapped call is a barrier."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return stochastic_depth(input, self.p, self.mode, self.training)


class Conv2dNormActivation(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation_layer: type[nn.Module] | None = nn.ReLU) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    def __init__(self, input_channels: int, squeeze_channels: int, activation=nn.ReLU,
                 scale_activation=nn.Sigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input: torch.Tensor) -> torch.Tensor:
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(input)))))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        scale = self._scale(input)
        return scale * input


def make_divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class MBConv(nn.Module):
    def __init__(self, expand_ratio: int, kernel: int, stride: int, input_channels: int, out_channels: int,
                 sd_prob: float, stochastic_depth_layer: type[nn.Module] = StochasticDepth,
                 squeeze_excite: bool = True) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and input_channels == out_channels
        layers: list[nn.Module] = []
        expanded = make_divisible(input_channels * expand_ratio)
        if expanded != input_channels:
            layers.append(Conv2dNormActivation(input_channels, expanded, 1, activation_layer=nn.SiLU))
        layers.append(Conv2dNormActivation(expanded, expanded, kernel, stride, expanded, nn.SiLU))
        if squeeze_excite:
            squeeze = max(1, input_channels // 4)
            layers.append(SqueezeExcitation(expanded, squeeze, activation=partial(nn.SiLU, inplace=True)))
        layers.append(Conv2dNormActivation(expanded, out_channels, 1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = stochastic_depth_layer(sd_prob, "row")
        self.out_channels = out_channels

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        result = self.block(input)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += input
        return result


B0_STAGES = [  # expand ratio, kernel, stride, in, out, blocks
    (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


class EfficientNet(nn.Module):
    """torchvision's EfficientNet layout: ``features`` (stem, 7 stages, head), ``avgpool``, ``classifier``."""

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, stochastic_depth_prob: float = 0.2,
                 stochastic_depth_layer: type[nn.Module] = StochasticDepth, squeeze_excite: bool = True,
                 stages: list[tuple] = B0_STAGES) -> None:
        super().__init__()
        def width(channels: int) -> int:
            return make_divisible(channels * width_mult)

        first = width(stages[0][3])
        layers: list[nn.Module] = [Conv2dNormActivation(3, first, 3, 2, activation_layer=nn.SiLU)]
        total, block_id = sum(s[5] for s in stages), 0
        for expand, kernel, stride, in_c, out_c, count in stages:
            stage = []
            for i in range(count):
                sd_prob = stochastic_depth_prob * block_id / total
                stage.append(MBConv(expand, kernel, stride if i == 0 else 1, width(in_c) if i == 0 else width(out_c),
                                    width(out_c), sd_prob, stochastic_depth_layer, squeeze_excite))
                block_id += 1
            layers.append(nn.Sequential(*stage))
        last = width(stages[-1][4])
        layers.append(Conv2dNormActivation(last, 4 * last, 1, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(4 * last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


def efficientnet_b0(width_mult: float = 1.0, num_classes: int = 1000) -> EfficientNet:
    """A ``--model tv_models:efficientnet_b0`` factory."""
    return EfficientNet(width_mult, num_classes)


# -- small variants in other coding styles ------------------------------------------------------------
class SkipFirst(nn.Module):
    """``x + self.block(x)`` (skip as the first operand), stochastic depth written inline."""

    def __init__(self, channels: int, hidden: int, kernel: int, p: float = 0.1) -> None:
        super().__init__()
        self.p = p
        self.block = nn.Sequential(Conv2dNormActivation(channels, hidden, 1, activation_layer=nn.ReLU6),
                                   Conv2dNormActivation(hidden, hidden, kernel, 1, hidden, nn.ReLU6),
                                   Conv2dNormActivation(hidden, channels, 1, activation_layer=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.training and self.p > 0:  # a Python branch: the eval-mode graph has none of it
            keep = torch.rand(out.shape[0], 1, 1, 1, device=out.device) >= self.p
            out = out * keep / (1 - self.p)
        return x + out


class AddInPlace(nn.Module):
    """``out.add_(x)`` after a registered-style stochastic depth, SE with hardsigmoid, hardswish."""

    def __init__(self, channels: int, hidden: int, kernel: int, squeeze_excite: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv2dNormActivation(channels, hidden, 1, activation_layer=nn.Hardswish),
                                   Conv2dNormActivation(hidden, hidden, kernel, 1, hidden, nn.Hardswish)]
        if squeeze_excite:
            layers.append(SqueezeExcitation(hidden, make_divisible(hidden // 4), scale_activation=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(hidden, channels, 1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(0.1, "batch")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stochastic_depth(self.block(x)).add_(x)


class MixedNet(nn.Module):
    """Stem, then blocks of every style above (and two torchvision MBConvs), then a head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = Conv2dNormActivation(3, 16, 3, 1, activation_layer=nn.SiLU)
        self.blocks = nn.Sequential(
            SkipFirst(16, 32, 3), SkipFirst(16, 48, 5),
            MBConv(6, 3, 2, 16, 24, 0.05, squeeze_excite=False),
            MBConv(6, 3, 1, 24, 24, 0.1, squeeze_excite=False),
            AddInPlace(24, 72, 3, squeeze_excite=False), AddInPlace(24, 72, 5, squeeze_excite=True),
            MBConv(4, 3, 1, 24, 24, 0.1, UnknownStochasticDepth, squeeze_excite=False),
            SkipFirst(24, 48, 3))
        self.head = Conv2dNormActivation(24, 64, 1, activation_layer=nn.Hardswish)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(x.mean((2, 3)))
