"""Does a longer finetuning change how the DP's networks rank against L1 pruning? (issue 18 item 4)

The bench's shrunk networks and its pruned baseline, finetuned with ``bench/pipeline.toml``'s schedule
but ``--epochs`` epochs, one seed each; test accuracy on all 10,000 test images is printed per
network. The DP networks take masks files (the bench's own, copied under ``bench/results/``); the
pruned baseline is pruned from the shipped base as the pipeline does. A scratch run folder holds the
checkpoints (re-running resumes). ``docs/results/2026-12-06-finetune-length.md`` has a run.

    python bench/finetune_length.py --out out/finetune_length --epochs 8 --seed 0 \\
        --masks bench/results/masks_2026-12-06_dp-1.8x.json --pruning-ratio 0.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))

from depthshrink.contracts.checkpoints import load_checkpoint  # noqa: E402
from depthshrink.models.build import build_space  # noqa: E402
from depthshrink.pipeline.config import PipelineConfig  # noqa: E402
from depthshrink.pipeline.networks import Network  # noqa: E402
from depthshrink.pipeline.pruning import load_pruned, train_pruned  # noqa: E402
from depthshrink.pipeline.stages import Pipeline  # noqa: E402
from depthshrink.shrink.rebuild import network_from_checkpoint  # noqa: E402
from depthshrink.training.data import DataSpec, load_split  # noqa: E402
from depthshrink.training.evaluate import accuracy  # noqa: E402
from depthshrink.training.runs import RunOptions, finetune_network  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="scratch run folder (checkpoints; a re-run resumes)")
    parser.add_argument("--config", default=str(ROOT / "bench" / "pipeline.toml"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--masks", nargs="*", default=[], help="masks files of shrunk networks to finetune")
    parser.add_argument("--pruning-ratio", type=float, nargs="*", default=[], help="L1-pruned baselines")
    args = parser.parse_args()

    config = PipelineConfig.read(args.config)
    config.finetune.epochs = args.epochs
    run = Path(args.out)
    run.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(config, run)
    if not (run / "space.json").exists():  # what the pruned baseline's data loading reads
        build_space(pipeline.model(weights=pipeline.weights))[1].to_json(run / "space.json")
    schedule = pipeline.finetune_config(args.seed)
    test = load_split(DataSpec(pipeline.data.source), "test", pipeline.model_info)
    print(f"base {pipeline.base}; finetuning: {schedule.epochs} epochs, lr {schedule.lr}, distill "
          f"{schedule.distill_weight}, seed {args.seed}; test images {len(test)}")
    for masks in args.masks:
        out = run / f"{Path(masks).stem}_seed{args.seed}"
        finetune_network(masks, pipeline.base, pipeline.data, schedule, RunOptions(out, resume=True, progress=False),
                         eval_images=1000)
        model = network_from_checkpoint(load_checkpoint(out / "last.pt"), str(out))
        print(f"{Path(masks).stem}: test accuracy {accuracy(model, test):.2%}", flush=True)
    for ratio in args.pruning_ratio:
        network = Network(f"pruned-{ratio:g}", "pruned", pruning_ratio=ratio)
        out = run / f"{network.name}_seed{args.seed}"
        train_pruned(pipeline, network, args.seed, out)
        print(f"{network.name}: test accuracy {accuracy(load_pruned(pipeline, network, out), test):.2%}", flush=True)


if __name__ == "__main__":
    main()
