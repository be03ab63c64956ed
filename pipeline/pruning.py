"""The channel-pruning baseline: torch-pruning's L1-magnitude pruning of the base network's
channels (the classifier kept whole, counts rounded to multiples of 8), finetuned with the shrunk networks' schedule.

No pruned module is ever pickled: L1 pruning of the same base weights at the same ratio is
deterministic, so the architecture is rebuilt by pruning again and the finetuned ``state_dict``
is loaded into it.
"""

from __future__ import annotations

import copy

from torch import nn

from .._imports import lazy_import

# channel counts stay multiples of 8: ONNX Runtime's blocked (NCHWc) CPU kernels run odd counts
# far slower (measured: MobileNetV2-0.5 @28 pruned 30% ran 0.73 ms unrounded vs 0.23 ms rounded,
# the unpruned network 0.32 ms), and a baseline should be deployed the way a practitioner would
ROUND_TO = 8


def pruned_copy(base: nn.Module, image_shape: tuple[int, int, int], ratio: float) -> nn.Module:
    """A copy of ``base`` with ``ratio`` of each prunable layer's channels removed (smallest L1 first)."""
    import torch

    tp = lazy_import("torch_pruning")
    model = copy.deepcopy(base).eval()
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)]
    pruner = tp.pruner.MagnitudePruner(model, torch.zeros(1, *image_shape),
                                       importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=ratio, ignored_layers=classifier, round_to=ROUND_TO)
    pruner.step()
    return model


def _image_shape(pipeline) -> tuple[int, int, int]:
    m = pipeline.config.model
    return (m.in_channels, m.resolution, m.resolution)


def _base(pipeline) -> nn.Module:
    from ..shrink.rebuild import load_base_network
    return load_base_network(pipeline.base)[0]


def train_pruned(pipeline, network, seed: int, out) -> None:
    """Prune the base and finetune it (distilling from the base) into ``out``, resumable like ``finetune``."""
    from ..training.data import data_identity, load_split
    from ..training.train import train

    base = _base(pipeline)
    model = pruned_copy(base, _image_shape(pipeline), network.pruning_ratio)
    config = pipeline.finetune_config(seed)  # the same schedule as the shrunk networks, weight decay included
    data = load_split(pipeline.data, "train", pipeline.model_info)
    spec = {"pruning": {"method": "torch-pruning L1 magnitude", "round_to": ROUND_TO, "ratio": network.pruning_ratio,
                        "base": str(pipeline.base)}, "data": data_identity(pipeline.data)}
    print(f"\n== {network.name}: L1 channel pruning at ratio {network.pruning_ratio:g}, "
          f"{sum(p.numel() for p in base.parameters()):,} -> {sum(p.numel() for p in model.parameters()):,} "
          "parameters, finetuned with the shrunk networks' schedule", flush=True)
    train(model, data, config, out, teacher=base, resume=True, spec=spec)


def load_pruned(pipeline, network, folder) -> nn.Module:
    from ..contracts.checkpoints import load_checkpoint
    from ..shrink.rebuild import load_into

    path = folder / "last.pt"
    model = pruned_copy(_base(pipeline), _image_shape(pipeline), network.pruning_ratio)
    load_into(model, load_checkpoint(path)["model"], str(path))
    return model.eval()
