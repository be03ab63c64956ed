"""Pure tensor math of merging: BN folding and composition of convolutions.

No graph, no modules: every function maps tensors to tensors and is tested on random ones.
A :class:`LinearMap` is what a chain of linear layers computes from its (padded) input::

    out[o, u, v] = Σ_i Σ_{p,q} weight[o, i, p, q] · x_pad[i, stride·u + p, stride·v + q] + bias[o]

which is exactly a ``Conv2d(stride=stride, padding=0)`` on ``x_pad``. Compose in float64, cast
at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LinearMap:
    weight: torch.Tensor  # [out_channels, in_channels, K, K], or [C, 1, K, K] when diagonal
    bias: torch.Tensor    # [out_channels]
    stride: int
    diagonal: bool = False  # channel c reads only channel c (depthwise); stored compactly

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]


def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None, running_mean: torch.Tensor,
                   running_var: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None,
                   eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and bias that compute ``bn(conv(x))`` with BN in eval mode."""
    scale = torch.rsqrt(running_var + eps)
    if gamma is not None:
        scale = scale * gamma
    shift = -running_mean * scale + (beta if beta is not None else 0)
    bias = bias if bias is not None else torch.zeros_like(running_mean)
    return weight * scale.reshape(-1, 1, 1, 1), bias * scale + shift


def dense_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """A grouped conv weight ``[O, I/g, k, k]`` as the equivalent dense ``[O, I, k, k]`` one."""
    if groups == 1:
        return weight
    out_channels, per_group, k1, k2 = weight.shape
    dense = weight.new_zeros(out_channels, per_group * groups, k1, k2)
    out_per_group = out_channels // groups
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        dense[rows, g * per_group:(g + 1) * per_group] = weight[rows]
    return dense


def grouped_weight(dense: torch.Tensor, groups: int) -> torch.Tensor:
    """The inverse of :func:`dense_weight`: a block-diagonal dense ``[O, I, k, k]`` weight as the
    grouped ``[O, I/g, k, k]`` one (the blocks off the diagonal are dropped: zero for a map that a
    grouped conv computes)."""
    out_channels, in_channels = dense.shape[:2]
    out_per_group, in_per_group = out_channels // groups, in_channels // groups
    return torch.cat([dense[g * out_per_group:(g + 1) * out_per_group, g * in_per_group:(g + 1) * in_per_group]
                      for g in range(groups)])


def identity_map(channels: int, offset: int, dtype: torch.dtype = torch.float64) -> LinearMap:
    """The map ``x ↦ x`` when ``x`` has been padded by ``offset`` on each side."""
    weight = torch.zeros(channels, 1, offset + 1, offset + 1, dtype=dtype)
    weight[:, :, offset, offset] = 1
    return LinearMap(weight, torch.zeros(channels, dtype=dtype), 1, diagonal=True)


def densified(linear: LinearMap) -> LinearMap:
    """The same map with a full ``[O, I, K, K]`` weight."""
    if not linear.diagonal:
        return linear
    channels = linear.weight.shape[0]
    dense = linear.weight.new_zeros(channels, channels, *linear.weight.shape[2:])
    index = torch.arange(channels)
    dense[index, index] = linear.weight[:, 0]
    return LinearMap(dense, linear.bias, linear.stride)


def conv_map(weight: torch.Tensor, bias: torch.Tensor | None, stride: int, groups: int) -> LinearMap:
    """One conv (its padding already applied to the input) as a map."""
    weight = dense_weight(weight.double(), groups)
    bias = bias.double() if bias is not None else weight.new_zeros(weight.shape[0])
    return LinearMap(weight, bias, stride)


def then_conv(first: LinearMap, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
              groups: int) -> LinearMap:
    """``conv(first(x))`` for an unpadded conv: kernel ``K + s·(k-1)``, stride ``s·stride``."""
    weight = weight.to(first.weight.dtype)
    out_channels, mid = weight.shape[0], first.weight.shape[0]
    depthwise = groups == mid == out_channels and groups > 1
    if not depthwise:
        first = densified(first)
    k1, k2, s1 = first.kernel_size, weight.shape[-1], first.stride
    size = k1 + s1 * (k2 - 1)
    composed = first.weight.new_zeros(out_channels, first.weight.shape[1], size, size)
    dense = None if depthwise else dense_weight(weight, groups)
    for p in range(k2):
        for q in range(k2):
            window = (slice(None), slice(None), slice(s1 * p, s1 * p + k1), slice(s1 * q, s1 * q + k1))
            if depthwise:
                composed[window] += weight[:, 0, p, q].reshape(-1, 1, 1, 1) * first.weight
            else:
                composed[window] += torch.einsum("om,mipq->oipq", dense[:, :, p, q], first.weight)
    tap_sums = weight.sum(dim=(2, 3))
    pushed = tap_sums[:, 0] * first.bias if depthwise else dense.sum(dim=(2, 3)) @ first.bias
    new_bias = pushed + (bias.to(pushed.dtype) if bias is not None else 0)
    return LinearMap(composed, new_bias, s1 * stride, first.diagonal and depthwise)


def then_affine(first: LinearMap, scale: torch.Tensor, shift: torch.Tensor) -> LinearMap:
    """``scale[o] · first(x)[o] + shift[o]`` (a folded BN)."""
    scale, shift = scale.to(first.weight.dtype), shift.to(first.weight.dtype)
    return LinearMap(first.weight * scale.reshape(-1, 1, 1, 1), first.bias * scale + shift, first.stride,
                     first.diagonal)


def batchnorm_affine(running_mean: torch.Tensor, running_var: torch.Tensor, gamma: torch.Tensor | None,
                     beta: torch.Tensor | None, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """BN in eval mode as ``scale · x + shift``."""
    ones = torch.ones(1, 1, 1, 1, dtype=running_var.dtype)
    scale, shift = fold_batchnorm(ones.expand(len(running_var), 1, 1, 1), None, running_mean,
                                  running_var, gamma, beta, eps)
    return scale.reshape(-1), shift


def shifted(first: LinearMap, pixels: int) -> LinearMap:
    """``first(x)[u + pixels]``: a crop by ``pixels`` on each side (zero padding when negative)."""
    taps = pixels * first.stride
    if taps >= 0:
        return LinearMap(F.pad(first.weight, (taps, 0, taps, 0)), first.bias, first.stride, first.diagonal)
    lead = first.weight[:, :, :-taps].abs().sum() + first.weight[:, :, :, :-taps].abs().sum()
    if lead != 0:
        raise ValueError(f"cannot pad by {-pixels}: the map already reads those input pixels")
    return LinearMap(first.weight[:, :, -taps:, -taps:], first.bias, first.stride, first.diagonal)


def added(a: LinearMap, b: LinearMap) -> LinearMap:
    """``a(x) + b(x)``; kernels are aligned at their first tap."""
    if a.diagonal != b.diagonal:
        a, b = densified(a), densified(b)
    if a.stride != b.stride or a.weight.shape[:2] != b.weight.shape[:2]:
        raise ValueError("cannot add maps of different stride or channels")
    size = max(a.kernel_size, b.kernel_size)

    def grow(m: LinearMap) -> torch.Tensor:
        extra = size - m.kernel_size
        return F.pad(m.weight, (0, extra, 0, extra))

    return LinearMap(grow(a) + grow(b), a.bias + b.bias, a.stride, a.diagonal)
