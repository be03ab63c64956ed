"""Does a longer finetuning change how the DP's networks rank against L1 pruning? (issue 18 item 4)

The bench's shrunk networks and its pruned baseline, finetuned with ``bench/pipeline.toml``'s schedule
but ``--epochs`` epochs, each ``--seed``; test accuracy on all 10,000 test images is printed per
network, beside the accuracies the bench's run (``--compare``) measured for it, per seed, and with
several seeds each network's mean ± standard error (the bench's beside it). The DP
networks take masks files (named by network: the bench's own, or its copies under
``bench/results/masks_2026-12-06/``); the pruned baseline is pruned from the shipped base as the
pipeline does. A scratch run folder holds the checkpoints (re-running resumes).
``docs/results/2026-12-06-finetune-length.md`` has a run.

    python bench/finetune_length.py --out out/finetune_length --epochs 8 --seed 0 --compare out/bench \\
        --masks bench/results/masks_2026-12-06/dp-1.8x.json --pruning-ratio 0.5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))

from depthshrink.cli import common  # noqa: E402
from depthshrink.contracts.checkpoints import load_checkpoint  # noqa: E402
from depthshrink.pipeline.config import PipelineConfig  # noqa: E402
from depthshrink.pipeline.networks import Network  # noqa: E402
from depthshrink.pipeline.pruning import load_pruned, train_pruned  # noqa: E402
from depthshrink.pipeline.stages import Pipeline  # noqa: E402
from depthshrink.shrink.rebuild import network_from_checkpoint  # noqa: E402
from depthshrink.training.data import DataSpec, load_split  # noqa: E402
from depthshrink.training.evaluate import accuracy  # noqa: E402
from depthshrink.training.runs import RunOptions, finetune_network  # noqa: E402


def _bench_seeds(run: str | None, network: str) -> list[float]:
    """The test accuracy of each finetuning seed of ``network`` in the bench's run folder ``run``."""
    result = Path(run or "") / "networks" / network / "result.json"
    return json.loads(result.read_text()).get("accuracy_seeds", []) if run and result.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="scratch run folder (checkpoints; a re-run resumes)")
    parser.add_argument("--config", default=str(ROOT / "bench" / "pipeline.toml"))
    parser.add_argument("--epochs", type=common.positive_int, default=8)
    parser.add_argument("--seed", type=common.seed, nargs="+", default=[0], help="finetuning seeds (default 0)")
    parser.add_argument("--masks", nargs="*", default=[], help="masks files of shrunk networks to finetune")
    parser.add_argument("--pruning-ratio", type=common.positive_float, nargs="*", default=[], help="L1-pruned baselines")
    parser.add_argument("--compare", help="the bench's run folder: its accuracies of the same networks")
    args = parser.parse_args()

    config = PipelineConfig.read(args.config)
    bench_epochs, config.finetune.epochs = config.finetune.epochs, args.epochs
    run = Path(args.out)
    run.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(config, run)
    pipeline.space()  # what the pruned baseline's data loading reads
    test = load_split(DataSpec(pipeline.data.source), "test", pipeline.model_info)
    measured: dict[str, list[float]] = {}

    def report(name: str, model) -> None:
        earlier = _bench_seeds(args.compare, name)
        measured.setdefault(name, []).append(accuracy(model, test))
        print(f"{name}: test accuracy {measured[name][-1]:.2%}" + (
            f" ({args.compare}, {bench_epochs} epochs, by seed: {', '.join(f'{a:.2%}' for a in earlier)})"
            if earlier else ""), flush=True)

    for seed in args.seed:
        schedule = pipeline.finetune_config(seed)
        print(f"base {pipeline.base}; finetuning: {schedule.epochs} epochs, lr {schedule.lr}, distill "
              f"{schedule.distill_weight}, seed {seed}; test images {len(test)}")
        for masks in args.masks:
            out = run / f"{Path(masks).stem}_seed{seed}"
            finetune_network(masks, pipeline.base, pipeline.data, schedule, RunOptions(out, resume=True, progress=False),
                             eval_images=1000)
            report(Path(masks).stem, network_from_checkpoint(load_checkpoint(out / "last.pt"), str(out)))
        for ratio in args.pruning_ratio:
            network = Network(f"pruned-{ratio:g}", "pruned", pruning_ratio=ratio)
            out = run / f"{network.name}_seed{seed}"
            train_pruned(pipeline, network, seed, out)
            report(network.name, load_pruned(pipeline, network, out))
    if len(args.seed) > 1:
        print(f"\nmean ± standard error over seeds {', '.join(map(str, args.seed))}, {args.epochs} epochs"
              + (f" (beside: {args.compare}, {bench_epochs} epochs)" if args.compare else ""))
        for name, accuracies in measured.items():
            earlier = _bench_seeds(args.compare, name)
            print(f"  {name}: {_mean_se(accuracies)}" + (f"   ({_mean_se(earlier)})" if len(earlier) > 1 else ""))


def _mean_se(values: list[float]) -> str:
    """``88.74% ± 0.04 (3)``: the mean and its standard error in points, over the seeds."""
    return f"{100 * statistics.mean(values):.2f}% ± {100 * statistics.stdev(values) / len(values) ** 0.5:.2f} ({len(values)})"

if __name__ == "__main__":
    main()
