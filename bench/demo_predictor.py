"""The demo's latency predictor end to end (issue 17, item 3): the demo network profiled as
`make demo` profiles it (the pipeline's ``[profile]`` defaults: a share of its configurations
picked adaptively, interleaved passes, the cache flush chosen on this machine), then every
configuration measured right after with the same settings (a full table, the flush the first run
chose), and the rows the adaptive table lacks predicted as the search predicts them
(``lut.lookup.predictor_for``: the table's own rows, the shipped tables as its prior) and compared
with their measurements, as measured and with the machine's drift between the two tables taken
out (the median ratio of the rows both measured).

    python bench/demo_predictor.py --out out/demo_predictor
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from depthshrink.lut.lookup import predictor_for
from depthshrink.lut.table import SHAPE_COLUMNS, LatencyTable
from depthshrink.models.build import ModelSpec
from depthshrink.pipeline.config import PipelineConfig
from depthshrink.pipeline.profile import ProfileJob, describe, profile_device
from depthshrink.profiler.base import CacheFlush
from depthshrink.profiler.factory import BackendOptions
from depthshrink.profiler.timing import TimingProtocol

TARGET = 0.85
KEYS = [*SHAPE_COLUMNS, "activation", "residual_add"]


def _profile(lut: Path, spec: ModelSpec, budget_fraction: float | None, flush: CacheFlush) -> None:
    p = PipelineConfig().profile
    job = ProfileJob(lut, 1, spec, validate=True, budget_fraction=budget_fraction, progress=False,
                     protocol=TimingProtocol(min_time_ms=p.min_time_ms, passes=p.passes))
    print("\n".join(describe(profile_device(job, BackendOptions(threads=p.threads, cache_flush=flush)))), flush=True)


def _conv(path: Path):
    frame = LatencyTable.read(path).select().frame
    return frame, frame[frame["op"] == "conv"].astype({c: float for c in KEYS if c != "activation"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the two tables")
    args = parser.parse_args()
    adaptive, full = args.out / "adaptive.csv", args.out / "full.csv"
    if adaptive.exists() or full.exists():
        sys.exit(f"{args.out} already holds tables: the bench measures both from scratch")
    args.out.mkdir(parents=True, exist_ok=True)
    config = PipelineConfig()
    m = config.model
    spec = ModelSpec(m.name, m.resolution, m.width_mult, m.in_channels, m.num_classes)
    print(f"1. the demo's profile: {spec.name} @{m.resolution} px, budget fraction {config.profile.budget_fraction}")
    _profile(adaptive, spec, config.profile.budget_fraction, CacheFlush(config.profile.cache_flush))
    frame, measured = _conv(adaptive)
    flush = CacheFlush.ON if bool(frame["cache_flush"].dropna().iloc[0]) else CacheFlush.OFF
    print(f"\n2. every configuration, right after (cache flush {flush.value}, as the first run chose)")
    _profile(full, spec, None, flush)
    _, every = _conv(full)
    rows = every.merge(measured[KEYS + ["latency_ms"]], on=KEYS, how="left", suffixes=("", "_adaptive"))
    rest = rows[rows["latency_ms_adaptive"].isna()]
    both = rows[rows["latency_ms_adaptive"].notna()]
    drift = float(np.median(both["latency_ms"] / both["latency_ms_adaptive"]))
    predictor = predictor_for(frame)
    predicted = predictor.predict(rest[[*KEYS, "batch_size"]])[0]
    used = getattr(predictor.estimator, "used", None)
    print(f"\n3. the {len(rest)} rows the adaptive table ({len(measured)} of {len(every)} rows) lacks, predicted by "
          f"{predictor.model}" + (f" ({' + '.join(used)})" if used else "") + f"; target ≥{TARGET:.0%} within ±10%")
    for label, factor in (("as measured", 1.0), (f"drift taken out (x{drift:.3f})", drift)):
        error = np.abs(factor * predicted / rest["latency_ms"].to_numpy() - 1)
        print(f"  {label:<32}" + "".join(f"  ±{t:.0%} {np.mean(error <= t):6.1%}" for t in (0.05, 0.10, 0.20)))


if __name__ == "__main__":
    main()
