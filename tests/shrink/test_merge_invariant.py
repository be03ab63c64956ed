"""The tracer and the merger agree (issue 20): on every zoo model and on hand-written variants,
every segmentation built from the spans a space lists merges to float tolerance, for random kept
activations, and together they cross every site some listed span crosses: a site the merger
cannot cross must be a barrier that says why."""

import random
import warnings

import pytest
import torch
from helpers import HandNet, randomize
from torch import nn
from tv_models import EfficientNet, MixedNet, UnknownStochasticDepth

import depthshrink
from depthshrink.contracts.masks import Masks
from depthshrink.models import build_model

LONG_SPAN = 6  # layers; longer spans compose wide kernels and get the looser tolerance
RANDOM_KEPT_SETS = 4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Merging composes many small kernels: on a shared 2-core machine a second intra-op thread
    makes it several times slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _zoo(name, width=0.35):
    return lambda: build_model(name, width_mult=width)


CASES = {  # label: (factory, input size[, strided_merge])
    "mobilenet_v2": (_zoo("mobilenet_v2"), 64),
    "mobilenet_v2_small": (_zoo("mobilenet_v2_small"), 32),
    "efficientnet_lite0": (_zoo("efficientnet_lite0"), 64),
    "efficientnet_lite0_small": (_zoo("efficientnet_lite0_small"), 32),
    "mobilenet_v3_large": (_zoo("mobilenet_v3_large"), 64),
    "mobilenet_v3_small": (_zoo("mobilenet_v3_small"), 32),  # 1x1 maps at the end: SE gates on them
    "tiny_mobilenet": (lambda: build_model("tiny_mobilenet"), 16),
    "hand": (HandNet, 19),
    "tv_efficientnet_b0": (lambda: EfficientNet(0.25), 64),
    "tv_efficientnet_b0_unknown_sd": (lambda: EfficientNet(0.25, stochastic_depth_layer=UnknownStochasticDepth), 64),
    "tv_mbconv_without_se": (lambda: EfficientNet(0.25, squeeze_excite=False), 32),
    "mixed_styles": (MixedNet, 20),
    "tiny_mobilenet_strided_any": (lambda: build_model("tiny_mobilenet"), 16, "any"),
    "mixed_styles_strided_any": (MixedNet, 20, "any"),
}


def _random_segments(space, kept, rng, greedy):
    """Cover the chain with listed spans that hold no kept activation; the longest with probability
    ``greedy``, else any."""
    segments, start = [], 0
    while start < space.num_layers:
        ends = [e for (s, e) in space.spans if s == start and not any(start < p < e for p in kept)]
        end = max(ends) if rng.random() < greedy else rng.choice(ends)
        segments.append((start, end))
        start = end
    return segments


def _covering(space):
    """Segmentations that together cross every site some listed span crosses."""
    todo = {p for (s, e) in space.spans for p in range(s + 1, e)}
    result = []
    while todo:
        segments, start = [], 0
        while start < space.num_layers:
            ends = [e for (s, e) in space.spans if s == start]
            end = max(ends, key=lambda e: (len(todo & set(range(start + 1, e))), -e))
            segments.append((start, end))
            start = end
        crossed = {p for s, e in segments for p in range(s + 1, e)}
        assert crossed & todo, "no progress covering the crossable sites"
        todo -= crossed
        result.append(segments)
    return result


def _merge_error(model, space, segments, kept):
    masks = Masks(sorted(kept), segments, model=dict(space.model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # inline training-only code is reported, and expected
        shrunk = depthshrink.apply_masks(model, space, masks).eval()
    merged = depthshrink.merge(shrunk, tolerance=float("inf"))  # judged below, per span length
    x = torch.randn(2, *[space.model[k] for k in ("in_channels", "height", "width")],
                    generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        expected, got = shrunk(x), merged(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in merged.modules())
    return float((got - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("label", CASES)
def test_every_listed_span_merges_and_every_uncrossable_site_says_why(label):
    factory, resolution, strided_merge = (*CASES[label], "pointwise")[:3]
    model = randomize(factory(), seed=sum(map(ord, label)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unknown ops (SE gates …) are reported as barriers
        space = depthshrink.trace(model, torch.zeros(1, 3, resolution, resolution), strided_merge=strided_merge)
    barriers = {s.position: s.barrier for s in space.sites if s.barrier is not None}
    assert all(isinstance(reason, str) and reason.strip() for reason in barriers.values())
    crossable = {p for (s, e) in space.spans for p in range(s + 1, e)}
    assert not crossable & set(barriers)
    rng = random.Random(label)
    removable = [s.position for s in space.sites if s.activation is not None]
    plans = [(segments, {p for p in removable if not any(s < p < e for s, e in segments)})
             for segments in _covering(space)]  # every activation kept that may be
    for draw in range(RANDOM_KEPT_SETS):
        kept = {p for p in removable if rng.random() < (draw + 1) / (RANDOM_KEPT_SETS + 2)}
        plans.append((_random_segments(space, kept, rng, greedy=0.5), kept))
    crossed, worst = set(), 0.0
    for segments, kept in plans:
        error = _merge_error(model, space, segments, kept)
        longest = max(e - s for s, e in segments)
        tolerance = 1e-4 if longest > LONG_SPAN else 1e-5
        assert error <= tolerance, f"{label}: {segments} (kept {sorted(kept)}) merges to {error:.2e}"
        crossed |= {p for s, e in segments for p in range(s + 1, e)}
        worst = max(worst, error)
    assert crossed == crossable
    print(f"{label}: {len(plans)} segmentations, worst relative error {worst:.1e}")
