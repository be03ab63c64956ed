"""How long a full latency table takes on this CPU, how many configurations it holds, and how
well the sum of its entries predicts whole networks (ONNX Runtime).

    python bench/lut_table.py --model mobilenet_v2 --resolution 224 --out lut/NAME.csv [--passes 3] [--cache-flush auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from depthshrink.cli.main import main as cli
from depthshrink.lut.table import read_lut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--width-mult", default="1.0")
    parser.add_argument("--resolution", default="224")
    parser.add_argument("--in-channels", default="3")
    parser.add_argument("--num-classes", default="1000")
    parser.add_argument("--batch-size", default="1")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--passes", default="3", help="interleaved timing passes (profile-device --passes)")
    parser.add_argument("--cache-flush", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--out", required=True, help="LUT to write (must not exist: this times a full table)")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists: the benchmark times a table from scratch")
    began = time.perf_counter()
    status = cli(["profile-device", "--cpu", "--model", args.model, "--width-mult", args.width_mult,
                  "--resolution", args.resolution, "--in-channels", args.in_channels,
                  "--num-classes", args.num_classes, "--batch-size", args.batch_size,
                  "--threads", args.threads, "--passes", args.passes, "--cache-flush", args.cache_flush,
                  "--lut", str(out), "--validate", "--no-progress"])
    seconds = time.perf_counter() - began
    if status:
        sys.exit(status)
    frame = read_lut(out)
    print(f"full table: {int((frame['op'] == 'conv').sum())} distinct conv configurations + "
          f"{int((frame['op'] == 'fixed').sum())} fixed part in {seconds:.0f} s "
          f"({seconds / len(frame):.2f} s per configuration, export and validation included)")


if __name__ == "__main__":
    main()
