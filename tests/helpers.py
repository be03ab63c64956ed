"""Test helpers: random BN statistics, a hand-written network in another coding style, masks builders."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch import nn

from depthshrink.contracts.masks import Masks, per_block_masks
from depthshrink.contracts.space import ChainSpace
from depthshrink.models.trace import trace


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and random BN statistics/affine, eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / fan_in ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
            elif isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                if module.running_mean is not None:
                    module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                    module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(n, generator=generator) * 0.5)
    return model.eval()


class HandBlock(nn.Module):
    """Inverted residual written differently: nested Sequentials, functional activations."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, kernel_size: int, stride: int):
        super().__init__()
        self.residual = stride == 1 and in_channels == out_channels
        self.expand = nn.Sequential(nn.Conv2d(in_channels, hidden, 1, bias=True), nn.BatchNorm2d(hidden))
        self.body = nn.Sequential(nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden)))
        self.project = nn.Sequential(nn.Conv2d(hidden, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels))

    def forward(self, x):
        h = F.relu6(self.expand(x))
        h = torch.relu(self.body(h))
        if self.residual:
            return x + self.project(h)
        return self.project(h)


class HandNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 7, bn_running_stats: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8))
        specs = [(8, 8, 16, 3, 1), (8, 8, 24, 5, 1), (8, 12, 24, 3, 2), (12, 12, 36, 3, 1),
                 (12, 12, 36, 5, 1)]
        self.blocks = nn.ModuleList(HandBlock(*spec) for spec in specs)
        if not bn_running_stats:
            self.blocks[1].body[0][1] = nn.BatchNorm2d(24, track_running_stats=False)
        self.head = nn.Conv2d(12, 32, 1)
        self.act = nn.Hardswish()
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = F.relu6(self.stem(x))
        for block in self.blocks:
            x = block(x)
        x = self.act(self.head(x))
        return self.fc(x.mean((2, 3)))


def grey_hand_net() -> HandNet:
    """A factory that takes no options: one input channel, seven classes."""
    return HandNet(in_channels=1)


def unpadded_net() -> nn.Module:
    """A 5x5 stem without padding: no output below 5 pixels of input."""
    return nn.Sequential(nn.Conv2d(3, 8, 5), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def maximal_segments(space: ChainSpace) -> list[tuple[int, int]]:
    """Greedy longest legal spans from layer 0: the most that can collapse."""
    segments, start = [], 0
    while start < space.num_layers:
        end = max(e for (s, e) in space.spans if s == start)
        segments.append((start, end))
        start = end
    return segments


def masks_for(space: ChainSpace, merged: list[tuple[int, int]], remove_all: bool = False) -> Masks:
    """Merge the given segments (single layers elsewhere); keep every activation not inside one."""
    segments, position = [], 0
    for start, end in sorted(merged):
        segments += [(p, p + 1) for p in range(position, start)] + [(start, end)]
        position = end
    segments += [(p, p + 1) for p in range(position, space.num_layers)]
    inside = {p for s, e in merged for p in range(s + 1, e)}
    kept = [] if remove_all else [site.position for site in space.sites
                                  if site.activation and site.position not in inside]
    return Masks(kept, segments, model=dict(space.model))


def block_segments(space: ChainSpace) -> list[tuple[int, int]]:
    return per_block_masks(space).segments


class TinyNet(nn.Module):
    """No BatchNorm: data-parallel runs must match a single process exactly."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 8, 3, 2, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


# not time-outs: a hung collective must fail, not wait twice. The last: gloo's threads aborting a rank
# at exit after its work is done (seen once in a full run on a loaded machine, not reproduced alone)
_NETWORK_TROUBLE = re.compile(r"Address already in use|EADDRINUSE|Connection (reset|refused|closed)|"
                              r"DistNetworkError|terminate called without an active exception")


def torchrun(args: list[str], timeout_s: int = 300, processes: int = 2) -> subprocess.CompletedProcess:
    """``processes`` local processes (two by default) under torchrun over the loopback; the launch is retried once when it
    failed on a socket (a port taken between torchrun's pick and its use), never on other errors.
    A failure shows the workers' stderr."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "--local-addr", "127.0.0.1", *args]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}
    for _ in range(2):
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        if result.returncode == 0 or not _NETWORK_TROUBLE.search(result.stderr):
            break
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def tiny_space():
    """tiny_mobilenet at 16 px and its chain space (the profiler tests' network)."""
    from depthshrink.models import build_model

    model = build_model("tiny_mobilenet").eval()
    return model, trace(model, torch.zeros(1, 3, 16, 16), model_info={"name": "tiny_mobilenet"})


def write_idx(path, array, compress: bool = False) -> None:
    """An idx file (the format of MNIST and Fashion-MNIST) holding ``array`` as unsigned bytes."""
    import gzip
    import struct

    import numpy as np

    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with (gzip.open if compress else open)(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())
