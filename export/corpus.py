"""A device corpus: conv configurations sampled independently of any one network.

nn-Meter trains its kernel predictors on thousands of sampled configurations, not only on the
layers of the model at hand. A corpus does the same here: it is profiled like any bundle, its
rows land in a LUT of their own, and the predictor fits on every row of the setting it is given
(the model's table plus the corpus). One corpus per device serves every network measured there.

The distribution follows compact CNNs after merging: pointwise, depthwise and dense k x k
convolutions (kernels up to ``max_kernel``, as merged spans grow), spatial sizes a power of two
below the input resolution, channel counts drawn log-uniformly and rounded to multiples of 8.
(A first corpus with any multiple of 4 and 4 px maps for 224 px networks made predictions for
MobileNetV2 worse, not better: the rows a corpus adds must look like the networks it serves.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..contracts.candidates import Candidate
from ..contracts.space import ConvShape
from ..errors import DepthshrinkError

KINDS = {"pointwise": 0.25, "depthwise": 0.15, "dense": 0.60}


@dataclass(frozen=True)
class CorpusSpec:
    configurations: int
    resolution: int              # network input size; spatial sizes are resolution / 2**j
    seed: int = 0
    min_channels: int = 8
    max_channels: int = 1024
    max_kernel: int = 15         # odd; merged spans of 3x3 convs grow by 2 per layer
    max_gflops: float = 12.0     # leave out configurations slower than the networks they model

    def __post_init__(self) -> None:
        if self.configurations < 1:
            raise DepthshrinkError("a corpus needs at least one configuration")
        if self.resolution < 4:
            raise DepthshrinkError(f"corpus resolution {self.resolution} is too small (at least 4)")
        if not 8 <= self.min_channels <= self.max_channels:
            raise DepthshrinkError("corpus channels: need 8 <= min_channels <= max_channels (multiples of 8)")
        if self.max_kernel < 3 or self.max_kernel % 2 == 0:
            raise DepthshrinkError(f"corpus max_kernel must be odd and at least 3, not {self.max_kernel}")

    def to_dict(self) -> dict:
        return asdict(self)


def _spatial_sizes(resolution: int) -> list[int]:
    """resolution/2 ... resolution/32: the feature maps of a five-stage network (2 px at least)."""
    return sorted({max(2, math.ceil(resolution / 2 ** j)) for j in range(1, 6)}, reverse=True)


def _channels(rng: np.random.Generator, spec: CorpusSpec) -> int:
    """Log-uniform, rounded to a multiple of 8 as width multipliers round them (make_divisible)."""
    value = math.exp(rng.uniform(math.log(spec.min_channels), math.log(spec.max_channels)))
    return int(min(spec.max_channels // 8, max(-(-spec.min_channels // 8), round(value / 8)))) * 8


def _draw(rng: np.random.Generator, spec: CorpusSpec, sizes: list[int]) -> Candidate:
    kind = rng.choice(list(KINDS), p=list(KINDS.values()))
    size = int(rng.choice(sizes))
    stride = 2 if rng.random() < 0.25 and size >= 4 else 1
    c_in = _channels(rng, spec)
    if kind == "pointwise":
        kernel, groups, c_out = 1, 1, _channels(rng, spec)
    elif kind == "depthwise":
        kernel, groups, c_out = int(rng.choice([3, 5, 7])), c_in, c_in
    else:
        kernel = int(rng.choice(np.arange(3, spec.max_kernel + 1, 2)))
        groups, c_out = 1, _channels(rng, spec)
    residual = stride == 1 and kind != "depthwise" and rng.random() < 0.15
    c_out = c_in if residual else c_out
    activation = None if residual or rng.random() < 0.4 else "relu6"
    shape = ConvShape(c_in, c_out, kernel, stride, groups, size, size, (kernel - 1) // 2)
    return Candidate(shape, activation, residual)


def _gflops(candidate: Candidate) -> float:
    s = candidate.shape
    h, w = candidate.output_size
    return 2 * h * w * s.out_channels * (s.in_channels // s.groups) * s.kernel_size ** 2 / 1e9


def sample_candidates(spec: CorpusSpec) -> list[Candidate]:
    """``spec.configurations`` distinct configurations, the same ones for the same spec."""
    rng = np.random.default_rng(spec.seed)
    sizes = _spatial_sizes(spec.resolution)
    chosen: dict[str, Candidate] = {}
    for _ in range(spec.configurations * 50):
        if len(chosen) == spec.configurations:
            break
        candidate = _draw(rng, spec, sizes)
        # a "same"-padded kernel wider than 2 * map + 1 only adds taps that see padding
        if candidate.shape.kernel_size <= 2 * candidate.shape.height + 1 and _gflops(candidate) <= spec.max_gflops:
            chosen.setdefault(candidate.key, candidate)
    if len(chosen) < spec.configurations:
        raise DepthshrinkError(f"only {len(chosen)} distinct configurations fit this corpus spec, "
                               f"not {spec.configurations}")
    return list(chosen.values())
