"""Does an importance score predict the accuracy a segment keeps after the pipeline's finetuning?

For N segments of a base network (spread over how many activations they remove and where), each
segment's activations are removed and the network finetuned with the pipeline's schedule (the
[finetune] and [data] sections of a pipeline config: the demo's by default), then evaluated on
held-out images. Each importance method (zero-shot, probe, masks) scores the same segments; the
Spearman correlation of score against the accuracy kept, and each method's cost, are printed and
written as CSV.

    python bench/importance_vs_finetune.py --weights weights/mobilenet_v2_small_x0.5_fashion_mnist.pt \
        --segments 30 --out bench/results/importance_vs_finetune_2026-12-06.csv
    python bench/importance_vs_finetune.py --report bench/results/importance_vs_finetune_2026-12-06.csv

``--report`` prints, from a CSV written before, each method's correlation and a bootstrap of its
difference to zero-shot's (resampling the segments).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from depthshrink.cli.common import positive_int
from depthshrink.pipeline.config import PipelineConfig
from depthshrink.pipeline.stages import Pipeline
from depthshrink.search.segments import candidate_segments
from depthshrink.shrink.apply import apply_masks
from depthshrink.shrink.rebuild import load_base_network
from depthshrink.training.data import DataSpec, load_split, sample
from depthshrink.training.evaluate import accuracy
from depthshrink.training.importance import ImportanceConfig, Scorer, segment_masks
from depthshrink.training.mask_training import MaskConfig, train_masks
from depthshrink.training.train import train


def spread(segments: list[tuple[int, int]], count: int, space) -> list[tuple[int, int]]:
    """``count`` segments evenly spread over (activations removed, start)."""
    def removed(segment):
        return sum(segment[0] < s.position < segment[1] for s in space.sites if s.activation and s.removable)

    ordered = sorted(segments, key=lambda s: (removed(s), s[0]))
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(count, len(ordered))).round().astype(int))
    return [ordered[i] for i in picks]


def correlations(frame: pd.DataFrame, seconds: dict[str, float] | None = None) -> None:
    """Each method's Spearman correlation with the accuracy kept (and its cost, when timed here)."""
    from scipy.stats import spearmanr

    print(f"{'method':<12}{'Spearman rho':>14}{'p-value':>10}" + (f"{'seconds':>10}{'s/segment':>11}" if seconds else ""))
    for method in ("zero-shot", "probe", "masks"):
        valid = frame[[method, "finetuned"]].dropna()
        rho, p = spearmanr(valid[method], valid["finetuned"])
        cost = ""
        if seconds:
            per = seconds[method] / len(frame) if method != "masks" else float("nan")  # masks: one joint run
            cost = f"{seconds[method]:>10.1f}{per:>11.2f}"
        print(f"{method:<12}{rho:>14.3f}{p:>10.3g}{cost}")


def compare(frame: pd.DataFrame, draws: int = 5000) -> None:
    """Each method's Spearman correlation with the accuracy kept, and a bootstrap of its difference to zero-shot's."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    samples = [rng.integers(0, len(frame), len(frame)) for _ in range(draws)]
    for method in ("probe", "masks"):
        gaps = np.array([spearmanr(frame[method].iloc[i], frame["finetuned"].iloc[i])[0]
                         - spearmanr(frame["zero-shot"].iloc[i], frame["finetuned"].iloc[i])[0] for i in samples])
        low, mid, high = np.nanpercentile(gaps, [2.5, 50, 97.5])
        print(f"rho({method}) - rho(zero-shot): median {mid:+.3f}, 95% interval {low:+.3f} to {high:+.3f}, "
              f"{method} ahead in {np.mean(gaps > 0):.0%} of {draws} bootstrap draws of the segments")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", help="print the comparison of a CSV written before, and stop")
    parser.add_argument("--weights", help="the base network's checkpoint")
    parser.add_argument("--config", help="pipeline TOML whose [data], [finetune] and [importance] bn_images and "
                                         "probe_steps are used (default: the demo's)")
    parser.add_argument("--segments", type=positive_int, default=30)
    parser.add_argument("--max-removed", type=positive_int, default=3)
    parser.add_argument("--held-out-images", type=positive_int, default=2000)
    parser.add_argument("--out", help="CSV of every segment's scores and accuracy kept")
    args = parser.parse_args()
    if args.report:
        frame = pd.read_csv(args.report)
        print(f"{len(frame)} segments of {args.report}")
        correlations(frame)
        compare(frame)
        return
    if not args.weights or not args.out:
        parser.error("give --weights and --out (or --report CSV)")
    torch.set_num_threads(1)
    config = PipelineConfig.read(args.config) if args.config else PipelineConfig()
    base, space = load_base_network(args.weights)
    data = DataSpec(config.data.source, config.data.subset or None)
    train_data = load_split(data, "train", space.model)
    held_out = sample(load_split(data, "held-out", space.model), args.held_out_images)
    segments = spread(candidate_segments(space, args.max_removed), args.segments, space)
    base_accuracy = accuracy(base, held_out)
    print(f"{len(segments)} segments of {space.model['name']}; base held-out accuracy {base_accuracy:.2%} "
          f"on {len(held_out)} images")
    frame = pd.DataFrame({"start": [a for a, _ in segments], "end": [b for _, b in segments]})
    seconds = {}
    for method in ("zero-shot", "probe"):
        began = time.perf_counter()
        imp = config.importance
        scorer = Scorer(base, space, train_data, held_out,
                        ImportanceConfig(method, None, imp.bn_images, imp.probe_steps, seed=config.seed))
        reference = scorer.accuracy(0, 0)
        frame[method] = [scorer.accuracy(a, b) - reference for a, b in segments]
        seconds[method] = time.perf_counter() - began
    began = time.perf_counter()
    masks = train_masks(base, space, train_data, held_out, MaskConfig(bn_images=config.importance.bn_images,
                                                                       seed=config.seed), progress=False)
    scores = {(int(r.start), int(r.end)): float(r.importance) for r in masks.itertuples()}
    frame["masks"] = [scores.get(s, np.nan) for s in segments]
    seconds["masks"] = time.perf_counter() - began
    schedule = Pipeline(config, tempfile.gettempdir()).finetune_config(config.seed)  # the pipeline's own
    kept, began = [], time.perf_counter()
    for number, (a, b) in enumerate(segments, start=1):
        shrunk = apply_masks(base, space, segment_masks(space, a, b))
        with tempfile.TemporaryDirectory() as out:
            train(shrunk, train_data, schedule, out, teacher=base, progress=False, device="cpu")
        kept.append(accuracy(shrunk, held_out) - base_accuracy)
        print(f"  [{a:>2}, {b:>2}) finetuned: {kept[-1] * 100:+.2f} points ({number}/{len(segments)})", flush=True)
    frame["finetuned"] = kept
    seconds["finetuning"] = time.perf_counter() - began
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"\naccuracy kept after finetuning ({schedule.epochs} epoch(s), {len(train_data)} images): "
          f"{frame['finetuned'].min() * 100:+.2f} to {frame['finetuned'].max() * 100:+.2f} points")
    correlations(frame, seconds)
    print(f"{'finetuning':<12}{'':>24}{seconds['finetuning']:>10.1f}{seconds['finetuning'] / len(segments):>11.2f}")
    compare(frame)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
