"""``depthshrink predictor evaluate``: how well the latency predictor does on a table."""

from __future__ import annotations

import argparse
import json

from .common import add_setting_arguments, positive_int, setting_filters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)
    evaluate = sub.add_parser("evaluate", help="grouped cross-validation of every model on a LUT")
    evaluate.add_argument("--lut", nargs="+", required=True,
                          help="LUT CSV file(s); rows of a device corpus ('profile-device --corpus') only train")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object (the best model)")
    evaluate.add_argument("--plot", help="parity plot to write (PNG; predicted vs measured, log axes)")
    evaluate.add_argument("--folds", type=_at_least_two, default=5)
    add_setting_arguments(evaluate)


def _at_least_two(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("cross-validation needs at least 2 folds")
    return value


def run(args: argparse.Namespace) -> int:
    from ..contracts.files import check_file_target
    from ..errors import DepthshrinkError
    from ..lut.predictor import cross_validate, fold_count
    from ..lut.table import LatencyTable, is_corpus
    from ..lut.transfer import priors_for

    if args.plot:
        if check_file_target(args.plot).suffix.lower() != ".png":
            raise DepthshrinkError(f"--plot {args.plot}: the parity plot is a PNG, name it *.png")

    table = LatencyTable.read(*args.lut).select(**setting_filters(args))
    priors = priors_for(table.frame)  # the predictor the search uses: a small table leans on the shipped ones
    results = cross_validate(table.frame, args.folds, priors=priors)
    corpus_rows = int(((table.frame["op"] == "conv") & is_corpus(table.frame)).sum())
    trained_on = f", plus {corpus_rows} corpus rows that only train" if corpus_rows else ""
    trained_on += f", with {len(priors)} shipped tables as the prior" if priors else ""
    if args.plot:
        from ..reports.plots import parity_plot
        parity_plot(results[0], table.setting, args.plot)
    if args.json:
        print(json.dumps({**results[0].to_dict(), "corpus_rows": corpus_rows, "prior_tables": len(priors),
                          **table.setting}))
        return 0
    print(f"grouped {fold_count(table.frame, args.folds)}-fold cross-validation on {results[0].rows} conv rows "
          f"({', '.join(f'{k}={v}' for k, v in table.setting.items())}){trained_on}:")
    print(f"  {'model':<22}{'RMSPE':>8}{'±5%':>8}{'±10%':>8}{'±20%':>8}")
    for r in results:
        print(f"  {r.model:<22}{r.rmspe:>8.3f}{r.within_5pct:>8.1%}{r.within_10pct:>8.1%}{r.within_20pct:>8.1%}")
    print(f"best: {results[0].model}" + (f"; parity plot -> {args.plot}" if args.plot else ""))
    return 0
