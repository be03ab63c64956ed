"""DepthShrinker's importance: learnable activation masks trained jointly with the weights.

Every removable activation site ``i`` gets a score ``theta_i``; the forward pass keeps the
activation at the ``keep`` highest-scoring sites and removes it elsewhere (``m * act(x) +
(1 - m) * x`` with ``m`` the hard top-k), and the gradient reaches the scores through a
straight-through estimator. One scalar per site (DepthShrinker used one per block: a block is
the segment holding its sites). A segment's importance is minus the sum of the normalised scores
of the sites it removes, so its unit is "mask score", not accuracy points.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch
from torch import fx, nn
from torch.utils.data import DataLoader, Dataset

from ..contracts.candidates import model_label
from ..contracts.space import ChainSpace
from ..errors import DepthshrinkError
from ..models.ops import activation_module
from .data import sample
from .evaluate import accuracy

BANK = "depthshrink_masks"


@dataclass(frozen=True)
class MaskConfig:
    epochs: int = 1
    keep: int | None = None        # sites kept by the hard top-k (default: half)
    batch_size: int = 128
    lr: float = 0.01               # weights
    score_lr: float = 0.05         # mask scores
    distill_weight: float = 0.7
    bn_images: int = 2048          # training images for BatchNorm re-estimation
    seed: int = 0


class MaskBank(nn.Module):
    """The scores of every site, each site's activation (a fresh, not in-place copy of its own), and the
    hard top-k gate with a straight-through gradient."""

    def __init__(self, activations: list[nn.Module], keep: int) -> None:
        super().__init__()
        self.keep = keep
        self.activations = nn.ModuleList(activations)
        self.scores = nn.Parameter(torch.ones(len(activations)) + 1e-3 * torch.randn(len(activations)))

    def gates(self) -> torch.Tensor:
        hard = torch.zeros_like(self.scores)
        hard[torch.topk(self.scores.detach(), self.keep).indices] = 1.0
        return hard + self.scores - self.scores.detach()

    def forward(self, x: torch.Tensor, index: int) -> torch.Tensor:
        gate = self.gates()[index]
        return gate * self.activations[index](x) + (1 - gate) * x


def masked_network(base: nn.Module, space: ChainSpace, keep: int) -> fx.GraphModule:
    """A trainable copy of ``base`` whose removable activations pass through a :class:`MaskBank`."""
    from ..shrink.apply import retrace

    sites = [s for s in space.sites if s.activation is not None and s.removable]
    if not sites:
        raise DepthshrinkError("this network has no removable activation to score")
    if not 0 <= keep <= len(sites):
        raise DepthshrinkError(f"--keep must be between 0 and {len(sites)} (the removable activations)")
    traced = retrace(copy.deepcopy(base), space)
    gm, graph = traced.graph_module, traced.graph_module.graph
    activations = [activation_module(traced.sites[s.position].activation, gm) for s in sites]
    gm.add_submodule(BANK, MaskBank(activations, keep))
    for index, site in enumerate(sites):
        node = traced.sites[site.position].activation
        with graph.inserting_after(node):
            gated = graph.call_module(BANK, (node.args[0], index))
        node.replace_all_uses_with(gated)
        graph.erase_node(node)
    graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def train_masks(base: nn.Module, space: ChainSpace, train_data: Dataset, held_out: Dataset,
                config: MaskConfig, progress: bool = True) -> pd.DataFrame:
    """Train scores and weights jointly (distilling from ``base``); the importance table (every
    candidate segment: the scores are additive by construction)."""
    from tqdm import tqdm

    from ..search.segments import candidate_segments
    from .importance import reestimate_batchnorm
    from .train import TrainConfig, distillation_step

    if len(train_data) < config.batch_size:  # no step would run: the scores would be their random start
        raise DepthshrinkError(f"the masks method trains on whole batches of {config.batch_size} images: "
                               f"{len(train_data)} training images make none")
    removable = [s.position for s in space.sites if s.activation is not None and s.removable]
    keep = len(removable) // 2 if config.keep is None else config.keep
    torch.manual_seed(config.seed)
    bn_images = sample(train_data, config.bn_images, config.seed)
    teacher = reestimate_batchnorm(copy.deepcopy(base), bn_images)
    model = masked_network(base, space, keep)
    bank = model.get_submodule(BANK)
    weights = [p for name, p in model.named_parameters() if not name.startswith(BANK)]
    optimizer = torch.optim.SGD([{"params": weights, "lr": config.lr, "weight_decay": 1e-5},
                                 {"params": [bank.scores], "lr": config.score_lr}], momentum=0.9, nesterov=True)
    loss_config = TrainConfig(distill_weight=config.distill_weight, label_smoothing=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(config.epochs):
        model.train()
        loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True, generator=generator,
                            drop_last=True)
        for images, labels in tqdm(loader, desc=f"masks epoch {epoch + 1}/{config.epochs}", disable=not progress):
            distillation_step(model, teacher, images, labels, optimizer, loss_config)
    scores = bank.scores.detach()
    low, high = float(scores.min()), float(scores.max())
    normalised = {p: (float(v) - low) / (high - low) if high > low else 1.0 for p, v in zip(removable, scores)}
    held_out_accuracy = accuracy(reestimate_batchnorm(model, bn_images), held_out)
    rows = [{"start": a, "end": b, "importance": round(-sum(v for p, v in normalised.items() if a < p < b), 6),
             "method": "masks", "unit": "mask score", "model": model_label(space.model),
             "masked_accuracy": held_out_accuracy, "kept_sites": keep}
            for a, b in candidate_segments(space)]
    return pd.DataFrame(rows)
