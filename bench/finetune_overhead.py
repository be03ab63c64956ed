"""Training throughput of the finetuner against a bare PyTorch loop on the same work.

Both train the shrunk small-input MobileNetV2-0.5 (every block linearised, distilling from the
original) on the same Fashion-MNIST images with the same batch size, optimizer, schedule, loss
and convolution layout (channels-last); the finetuner adds its sampler, progress bar, metrics log and checkpoint. Within
each round the order alternates, so a machine that drifts slower hits both alike.

    python bench/finetune_overhead.py [--images 4096] [--rounds 4]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch

import depthshrink
from depthshrink.cli.common import positive_int
from depthshrink.contracts.masks import per_block_masks
from depthshrink.models import build_model
from depthshrink.training.data import DataSpec, load_split
from depthshrink.training.layout import channels_last
from depthshrink.training.train import TrainConfig, distillation_step, train


def bare_loop(model, teacher, data, config: TrainConfig) -> float:
    """Images per second of the plainest loop doing the same steps."""
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    steps = len(data) // config.batch_size
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    loader = torch.utils.data.DataLoader(data, batch_size=config.batch_size, shuffle=True, drop_last=True)
    model.train()
    began = time.perf_counter()
    with channels_last(model, teacher):  # as the finetuner trains
        for images, labels in loader:
            distillation_step(model, teacher, images, labels, optimizer, config)
            schedule.step()
    return steps * config.batch_size / (time.perf_counter() - began)


def finetuner(model, teacher, data, config: TrainConfig) -> float:
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        train(model, data, config, out, teacher=teacher, progress=True, spec={"bench": True}, device="cpu")
        return (len(data) // config.batch_size) * config.batch_size / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=positive_int, default=4096)
    parser.add_argument("--rounds", type=positive_int, default=4)
    parser.add_argument("--data", default="fashion-mnist")
    args = parser.parse_args()
    torch.manual_seed(0)
    teacher = build_model("mobilenet_v2_small", width_mult=0.5, in_channels=1, num_classes=10).eval()
    space = depthshrink.trace(teacher, torch.zeros(1, 1, 28, 28), model_info={"name": "mobilenet_v2_small"})
    data = load_split(DataSpec(args.data, args.images), "train")
    config = TrainConfig(epochs=1, batch_size=128, lr=0.02, distill_weight=0.7)
    results = {"bare": [], "finetuner": []}
    order = [("bare", bare_loop), ("finetuner", finetuner)]
    for round_ in range(args.rounds):  # the order alternates: a machine slowing down favours neither
        for name, run in order if round_ % 2 == 0 else order[::-1]:
            shrunk = depthshrink.apply_masks(teacher, space, per_block_masks(space))
            results[name].append(run(shrunk, teacher, data, config))
    overheads = sorted(100 * (b - f) / b for b, f in zip(results["bare"], results["finetuner"]))
    print(f"images/s per round: bare {[round(v) for v in results['bare']]}, "
          f"finetuner {[round(v) for v in results['finetuner']]}")
    bare_total, ours_total = sum(results["bare"]), sum(results["finetuner"])
    print(f"finetuner overhead per round {[f'{v:+.1f}%' for v in overheads]}; over all rounds "
          f"{100 * (bare_total - ours_total) / bare_total:+.1f}% (target <= 5%); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.images} images, batch {config.batch_size}")


if __name__ == "__main__":
    main()
