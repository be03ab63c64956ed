"""The latency predictor on the shipped MobileNetV2-1.0 @224 CPU table, alone and with a device
corpus (configurations sampled for 224 px networks, not taken from MobileNetV2): held-out
accuracy by grouped cross-validation, the time to choose, fit and predict every span, and the
accuracy on the rest of the table when only 40% of it is measured (what adaptive profiling leaves).

    python bench/predictor_accuracy.py [--corpus lut/corpus_224_b1_onnxruntime_cpu.csv] [--configurations 400]

A corpus file that does not exist is measured first (about 1.5 s per configuration).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import depthshrink
from depthshrink.cli.main import main as cli
from depthshrink.lut.predictor import LatencyPredictor
from depthshrink.lut.table import LatencyTable, is_corpus
from depthshrink.models import build_model
from depthshrink.contracts.candidates import span_candidates

SHIPPED = Path(depthshrink.__file__).parent / "lut"
TABLE = SHIPPED / "mobilenet_v2_224_b1_onnxruntime_cpu.csv"


def _report(title: str, frame: pd.DataFrame, spans: pd.DataFrame) -> str:
    """Prints the models' scores and the time to choose and to fit; returns the model chosen."""
    began = time.perf_counter()  # first: the worker processes start here, as in a user's first call
    predictor = LatencyPredictor(frame)  # cross-validates every model, fits the best
    predicted, _ = predictor.predict(spans)
    chosen = time.perf_counter() - began
    began = time.perf_counter()
    LatencyPredictor(frame, model=predictor.model).predict(spans)
    given = time.perf_counter() - began
    results = predictor.evaluations
    print(f"{title}: grouped 5-fold cross-validation on {results[0].rows} table rows")
    print(f"  {'model':<22}{'RMSPE':>8}{'±5%':>8}{'±10%':>8}{'±20%':>8}")
    for r in results:
        print(f"  {r.model:<22}{r.rmspe:>8.3f}{r.within_5pct:>8.1%}{r.within_10pct:>8.1%}{r.within_20pct:>8.1%}")
    print(f"  choose ({predictor.model}), fit and predict all {len(predicted)} spans: {chosen:.1f} s")
    print(f"  fit {predictor.model} (the model given) and predict all {len(predicted)} spans: {given:.1f} s")
    return predictor.model


def _partial(table: pd.DataFrame, corpus: pd.DataFrame, model: str, share: float = 0.4, draws: int = 3) -> None:
    """What adaptive profiling leaves: a random ``share`` of the table measured, the rest predicted
    by ``model``."""
    conv = table[table["op"] == "conv"].reset_index(drop=True)
    rng = np.random.default_rng(0)
    scores = {"alone": [], "with corpus": []}
    for _ in range(draws):
        order = rng.permutation(len(conv))
        known, rest = conv.iloc[order[:round(share * len(conv))]], conv.iloc[order[round(share * len(conv)):]]
        for name, frame in (("alone", known), ("with corpus", pd.concat([known, corpus], ignore_index=True))):
            predicted, _ = LatencyPredictor(frame, model=model).predict(rest)
            error = np.abs(predicted - rest["latency_ms"].to_numpy()) / rest["latency_ms"].to_numpy()
            scores[name].append(float(np.mean(error <= 0.10)))
    print(f"{share:.0%} of the table measured ({draws} random draws), the other rows predicted ({model}), "
          "share within ±10%:")
    for name, values in scores.items():
        print(f"  {name:<12} {'  '.join(f'{v:.1%}' for v in values)}   mean {np.mean(values):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--corpus", default=str(SHIPPED / "corpus_224_b1_onnxruntime_cpu.csv"))
    parser.add_argument("--configurations", default="400", help="corpus size, when it is measured")
    args = parser.parse_args()
    if not Path(args.corpus).exists():
        began = time.perf_counter()
        status = cli(["profile-device", "--cpu", "--corpus", args.configurations, "--resolution", "224",
                      "--batch-size", "1", "--lut", args.corpus, "--no-progress"])
        if status:
            sys.exit(status)
        print(f"corpus measured in {time.perf_counter() - began:.0f} s")
    model = build_model("mobilenet_v2").eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 224, 224), model_info={"name": "mobilenet_v2"})
    spans = pd.DataFrame([c.lut_fields() for c in span_candidates(space).values()])
    table = LatencyTable.read(args.table).select()
    chosen = _report("table alone", table.frame, spans)
    both = LatencyTable.read(args.table, args.corpus).select(**table.setting)
    _report("table + corpus", both.frame, spans)
    _partial(table.frame, both.frame[is_corpus(both.frame)], chosen)


if __name__ == "__main__":
    main()
