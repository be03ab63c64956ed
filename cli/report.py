"""``depthshrink report``: compare the networks of one or more run folders on one HTML page."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="folder(s) written by 'depthshrink run' (each needs results.csv)")
    parser.add_argument("--multi-device", nargs="+", default=[], metavar="MASKS",
                        help="masks files of multi-device searches (search with several --lut): each device's "
                             "budget and predicted latency beside the best network for that device alone")
    parser.add_argument("--out", required=True,
                        help="report folder to write (created): index.html, its PNG figures, results.csv")


def run(args: argparse.Namespace) -> int:
    from ..reports.build import build_report

    report = build_report(args.run_dirs, args.out, args.multi_device)
    notes = sum(len(n) for n in report.notes.values()) + sum(len(r.notes) for r in report.runs)
    incomplete = [f"{r.name} (no {', '.join(r.missing)})" for r in report.runs if r.missing]
    print(f"{len(report.runs)} run(s), {len(report.table)} network(s), {len(report.figures)} figure(s)"
          + (f", {notes} note(s) on the page" if notes else "") + f" -> {report.index_path}")
    if incomplete:
        print("missing files: " + "; ".join(incomplete))
    return 0
