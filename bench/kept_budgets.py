"""Do the networks the search picks keep their latency budget when measured?

For MobileNetV2-1.0 @224 and the demo network (small-input MobileNetV2-0.5 @28, one channel), a
full table is measured on this CPU (ONNX Runtime, 1 thread, profile-device's defaults, with its
validation networks) unless given; then, at three budgets fixed here, three times each, the
search picks a network (the table corrected by its validation, :mod:`depthshrink.search.calibration`),
builds it and times it whole, tightening until it measures within the budget (``search --verify``).
Printed and written as CSV: every run's first prediction (raw and corrected) against what its
network measured, the rounds taken, and whether the final network is within its budget or over
it by less than its own spread (p10-p90).

    python bench/kept_budgets.py --out bench/results/kept_budgets_2026-12-06.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from depthshrink.contracts.space import ChainSpace
from depthshrink.errors import OutOfReach
from depthshrink.models.build import ModelSpec, build_space
from depthshrink.pipeline.profile import ProfileJob, describe, profile_device
from depthshrink.pipeline.verify import network_timer, search_verified
from depthshrink.profiler.factory import BackendOptions
from depthshrink.search.api import device_problem
from depthshrink.search.budget import parse_budget
from depthshrink.search.run import solve_dp

NETWORKS = {
    "mobilenet_v2_224": ModelSpec("mobilenet_v2", 224),
    "demo_28": ModelSpec("mobilenet_v2_small", 28, 0.5, 1, 10),
}
BUDGETS = ("1.2x", "1.4x", "1.6x")   # fixed before the runs
RUNS = 3


def table(name: str, spec: ModelSpec, folder: Path, given: str | None) -> Path:
    lut = Path(given) if given else folder / f"{name}.csv"
    if not lut.exists():
        began = time.perf_counter()
        print("\n".join(describe(profile_device(ProfileJob(lut, 1, spec, validate=True, progress=False),
                                                BackendOptions()))))
        print(f"{name}: full table in {time.perf_counter() - began:.0f} s -> {lut}", flush=True)
    return lut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="CSV of every run")
    parser.add_argument("--tables", default="out/kept_budgets", help="folder for the tables measured here")
    parser.add_argument("--lut-224", help="a full MobileNetV2-1.0 @224 table of this CPU (default: measure one)")
    parser.add_argument("--lut-28", help="a full demo-network table of this CPU (default: measure one)")
    args = parser.parse_args()
    folder = Path(args.tables)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, spec in NETWORKS.items():
        lut = table(name, spec, folder, args.lut_224 if name.endswith("224") else args.lut_28)
        _, space = build_space(spec)
        space = ChainSpace.from_dict(space.to_dict())
        cuts = [0, *(s.position for s in space.sites if s.activation), space.num_layers]
        importance = {(a, b): -float(sum(a < c < b for c in cuts)) for i, a in enumerate(cuts) for b in cuts[i + 1:]}
        for budget in BUDGETS:
            for run in range(1, RUNS + 1):
                device = device_problem(space, [lut], parse_budget(budget), importance, {"threads": 1})
                raw = device_problem(space, [lut], parse_budget(budget), importance, {"threads": 1}, calibrate=False)
                timer = network_timer(space, device.problem.setting)
                row = {"network": name, "budget": budget, "run": run, "budget_ms": device.budget_ms,
                       "scale": device.calibration.scale, "offset_ms": device.calibration.offset_ms}
                try:
                    verified = search_verified(device.problem, device.budget, solve_dp, timer,
                                               progress=lambda line: None)
                except OutOfReach as exc:
                    rows.append({**row, "note": str(exc)})
                    print(f"{name} {budget} run {run}: {exc}", flush=True)
                    continue
                first, t = verified.rounds[0], verified.timing
                raw_ms = raw.problem.fixed_ms + raw.problem.overhead_ms + sum(
                    raw.problem.span_ms[tuple(s)] for s in first["segments"])
                row.update(first_raw_predicted_ms=raw_ms, first_predicted_ms=first["predicted_latency_ms"],
                           first_measured_ms=first["measured_latency_ms"], rounds=len(verified.rounds),
                           measured_ms=t.latency_ms, p10_ms=t.latency_p10_ms, p90_ms=t.latency_p90_ms,
                           within=t.latency_ms <= verified.budget_ms,
                           over_by_less_than_spread=t.latency_ms - verified.budget_ms < t.latency_p90_ms - t.latency_p10_ms)
                rows.append(row)
                print(f"{name} {budget} run {run}: budget {verified.budget_ms:.3f} ms, measured {t.latency_ms:.3f} ms "
                      f"(p10-p90 {t.latency_p10_ms:.3f}-{t.latency_p90_ms:.3f}) after {len(verified.rounds)} round(s); "
                      f"first pick predicted {first['predicted_latency_ms']:.3f} ms corrected, measured "
                      f"{first['measured_latency_ms']:.3f} ms", flush=True)
    frame = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    done = frame.dropna(subset=["measured_ms"]) if "measured_ms" in frame else frame.iloc[0:0]
    if not done.empty:
        error = 100 * (done["first_predicted_ms"] - done["first_measured_ms"]) / done["first_measured_ms"]
        raw = 100 * (done["first_raw_predicted_ms"] - done["first_measured_ms"]) / done["first_measured_ms"]
        print(f"\nfirst picks (networks the correction was not fitted on): corrected prediction error "
              f"{error.min():+.1f}% to {error.max():+.1f}% (mean |error| {error.abs().mean():.1f}%), uncorrected "
              f"{raw.min():+.1f}% to {raw.max():+.1f}% (mean |error| {raw.abs().mean():.1f}%)")
        print(f"kept within the budget: {int(done['within'].sum())} of {len(done)}; over by less than the "
              f"measurement's spread: {int((~done['within'] & done['over_by_less_than_spread']).sum())}; "
              f"rounds {int(done['rounds'].min())}-{int(done['rounds'].max())}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
