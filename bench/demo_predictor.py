"""The demo's latency predictor end to end (issue 17, item 3): the demo network profiled as the
pipeline's profile stage profiles it (its ``[profile]`` defaults: a share of the configurations
picked adaptively, ``min_time_ms`` over interleaved passes, the cache flush chosen on this
machine), then every configuration right after with the same settings (a full table, the flush
the first run chose), and the rows the adaptive table lacks predicted as the search predicts them
(``lut.lookup.predictor_for``: the table's own rows, the shipped tables as its prior) and compared
with their measurements: as measured, and with the machine's drift between the two tables taken
out. The rows both tables measured say how well this timing repeats itself.

    python bench/demo_predictor.py --out out/demo_predictor
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from depthshrink.lut.compare import agreement, lacking
from depthshrink.lut.features import score
from depthshrink.lut.lookup import predictor_for
from depthshrink.lut.table import LatencyTable, own_conv
from depthshrink.models.build import ModelSpec
from depthshrink.pipeline.config import PipelineConfig
from depthshrink.pipeline.profile import describe, pipeline_job, profile_device
from depthshrink.profiler.base import CacheFlush

TARGET = 0.85


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the two tables")
    args = parser.parse_args()
    adaptive_path, full_path = args.out / "adaptive.csv", args.out / "full.csv"
    if adaptive_path.exists() or full_path.exists():
        sys.exit(f"{args.out} already holds tables: the bench measures both from scratch")
    args.out.mkdir(parents=True, exist_ok=True)
    config = PipelineConfig()
    m, section = config.model, config.profile
    model = ModelSpec(m.name, m.resolution, m.width_mult, m.in_channels, m.num_classes)
    job, options = pipeline_job(adaptive_path, model, section)
    print(f"1. the demo's profile: {m.name} @{m.resolution} px, budget fraction {section.budget_fraction}, "
          f"{section.min_time_ms:g} ms per row over {section.passes} passes", flush=True)
    print("\n".join(describe(profile_device(dataclasses.replace(job, progress=False), options))), flush=True)
    adaptive = LatencyTable.read(adaptive_path).select().frame
    chosen = adaptive["cache_flush"].dropna() if "cache_flush" in adaptive.columns else []
    if len(chosen) == 0:
        sys.exit(f"{adaptive_path} records no cache-flush setting: the full table could not match it")
    flush = CacheFlush.ON if bool(chosen.iloc[0]) else CacheFlush.OFF
    print(f"\n2. every configuration, right after (cache flush {flush.value}, as the first run chose)", flush=True)
    job = dataclasses.replace(job, lut=full_path, budget_fraction=None, progress=False)
    print("\n".join(describe(profile_device(job, dataclasses.replace(options, cache_flush=flush)))), flush=True)
    full = LatencyTable.read(full_path).select().frame
    rest, repeat = lacking(full, adaptive), agreement(adaptive, full)
    if repeat.rows + len(rest) != len(own_conv(full)) or repeat.rows != len(own_conv(adaptive)):
        sys.exit(f"rows did not match: {repeat.rows} in both, {len(rest)} only in the full table, "
                 f"{len(own_conv(full))} in all: the two tables are not of one network")
    predictor = predictor_for(adaptive)
    predicted_ms = predictor.predict(rest)[0]
    used = getattr(predictor.estimator, "used", None)
    print(f"\n3. the {repeat.rows} rows both tables measured: {repeat.within_10pct:.1%} within ±10% of each other, "
          f"{repeat.within_5pct:.1%} within ±5% (drift {repeat.drift:.3f}x taken out)")
    print(f"   the {len(rest)} rows the adaptive table lacks, predicted by {predictor.model}"
          + (f" ({' + '.join(used)})" if used else "") + f"; target ≥{TARGET:.0%} within ±10%")
    for label, factor in (("as measured", 1.0), (f"drift taken out ({repeat.drift:.3f}x)", repeat.drift)):
        s = score(label, factor * predicted_ms, rest["latency_ms"].to_numpy())
        print(f"  {label:<32}" + "".join(f"  ±{t:.0%} {share:6.1%}" for t, share in
                                         ((0.05, s.within_5pct), (0.10, s.within_10pct), (0.20, s.within_20pct))))


if __name__ == "__main__":
    main()
