"""The pure merge math against torch's own convolutions, on random tensors (float64)."""

import pytest
import torch
import torch.nn.functional as F

from depthshrink.shrink import kernels


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _apply(linear: kernels.LinearMap, x: torch.Tensor, padding: int) -> torch.Tensor:
    return F.conv2d(F.pad(x, (padding,) * 4), linear.weight, linear.bias, linear.stride)


def test_fold_batchnorm_matches_eval_bn():
    conv_w, conv_b = _rand(6, 4, 3, 3), _rand(6, seed=1)
    bn = torch.nn.BatchNorm2d(6).double().eval()
    bn.running_mean.copy_(_rand(6, seed=2))
    bn.running_var.copy_(_rand(6, seed=3).abs() + 0.1)
    bn.weight.data.copy_(_rand(6, seed=4))
    bn.bias.data.copy_(_rand(6, seed=5))
    x = _rand(2, 4, 9, 9, seed=6)
    w, b = kernels.fold_batchnorm(conv_w, conv_b, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    expected = bn(F.conv2d(x, conv_w, conv_b, padding=1))
    assert torch.allclose(F.conv2d(x, w, b, padding=1), expected, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_dense_weight_equals_grouped_conv(groups):
    w = _rand(6, 6 // groups, 3, 3)
    x = _rand(1, 6, 7, 7, seed=1)
    assert torch.allclose(F.conv2d(x, kernels.dense_weight(w, groups)), F.conv2d(x, w, groups=groups))


@pytest.mark.parametrize("k1,s1,k2,s2,groups2", [
    (1, 1, 3, 1, 1), (3, 1, 3, 1, 1), (3, 2, 1, 1, 1), (3, 2, 3, 1, 1), (5, 1, 3, 2, 1),
    (1, 1, 3, 1, 6), (3, 2, 5, 2, 6), (3, 1, 3, 1, 3),
])
def test_then_conv_equals_two_convs(k1, s1, k2, s2, groups2):
    w1, b1 = _rand(6, 4, k1, k1), _rand(6, seed=1)
    w2, b2 = _rand(6, 6 // groups2, k2, k2, seed=2), _rand(6, seed=3)
    x = _rand(2, 4, 23, 23, seed=4)
    merged = kernels.then_conv(kernels.conv_map(w1, b1, s1, 1), w2, b2, s2, groups2)
    assert merged.kernel_size == k1 + s1 * (k2 - 1) and merged.stride == s1 * s2
    expected = F.conv2d(F.conv2d(x, w1, b1, s1), w2, b2, s2, groups=groups2)
    got = _apply(merged, x, 0)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-10)


def test_identity_shift_and_add_make_a_residual():
    """x + conv(pad(x)) as one map: identity at the centre tap."""
    w, b = _rand(5, 5, 3, 3), _rand(5, seed=1)
    x = _rand(1, 5, 10, 10, seed=2)
    identity = kernels.identity_map(5, offset=1)
    body = kernels.then_conv(kernels.shifted(identity, -1), w, b, 1, 1)
    total = kernels.added(body, identity)
    assert total.kernel_size == 3
    assert torch.allclose(_apply(total, x, 1), x + F.conv2d(x, w, b, padding=1), atol=1e-12)


def test_shift_crops_and_refuses_impossible_padding():
    m = kernels.conv_map(_rand(3, 3, 3, 3), None, 1, 1)
    x = _rand(1, 3, 12, 12, seed=1)
    full, crop = F.conv2d(x, m.weight), _apply(kernels.shifted(m, 2), x, 0)
    assert crop.shape[-1] == full.shape[-1] - 2
    assert torch.allclose(crop, full[:, :, 2:2 + crop.shape[2], 2:2 + crop.shape[3]], atol=1e-12)
    with pytest.raises(ValueError):
        kernels.shifted(m, -1)


def test_then_affine_and_depthwise_maps_stay_compact():
    w = _rand(4, 1, 3, 3)
    scale, shift = _rand(4, seed=1), _rand(4, seed=2)
    identity = kernels.identity_map(4, offset=0)
    m = kernels.then_affine(kernels.then_conv(identity, w, None, 1, groups=4), scale, shift)
    assert m.diagonal and m.weight.shape == (4, 1, 3, 3)
    x = _rand(1, 4, 6, 6, seed=3)
    expected = F.conv2d(x, w, groups=4) * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
    assert torch.allclose(_apply(kernels.densified(m), x, 0), expected)
    dense = kernels.then_conv(m, _rand(5, 4, 1, 1, seed=4), None, 1, groups=1)
    assert not dense.diagonal and dense.weight.shape == (5, 4, 3, 3)


def test_a_shift_refuses_a_map_that_reads_its_first_column_though_not_its_first_row():
    """The check looked at the leading rows only: a kernel reading the padding column was shifted
    as if it read none (the merge's own check refused the network later, not here)."""
    w = torch.zeros(2, 2, 3, 3, dtype=torch.float64)
    w[:, :, 1:, 0] = 1.0
    with pytest.raises(ValueError):
        kernels.shifted(kernels.conv_map(w, None, 1, 1), -1)
