"""How long a full latency table takes on this CPU, how many configurations it holds, and how
well the sum of its entries predicts whole networks (ONNX Runtime).

    python bench/lut_table.py --model mobilenet_v2 --resolution 224 --out lut/NAME.csv [--passes 3] [--cache-flush auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from depthshrink.cli.common import positive_float, positive_int
from depthshrink.lut.table import read_lut
from depthshrink.models.build import ModelSpec
from depthshrink.pipeline.profile import ProfileJob, describe, profile_device
from depthshrink.profiler.base import CacheFlush
from depthshrink.profiler.factory import BackendOptions
from depthshrink.profiler.timing import TimingProtocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--width-mult", type=positive_float, default=1.0)
    parser.add_argument("--resolution", type=positive_int, default=224)
    parser.add_argument("--in-channels", type=positive_int, default=3)
    parser.add_argument("--num-classes", type=positive_int, default=1000)
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--passes", type=positive_int, default=3, help="interleaved timing passes (profile-device --passes)")
    parser.add_argument("--cache-flush", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--out", required=True, help="LUT to write (must not exist: this times a full table)")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists: the benchmark times a table from scratch")
    began = time.perf_counter()
    model = ModelSpec(args.model, args.resolution, args.width_mult, args.in_channels, args.num_classes)
    job = ProfileJob(out, args.batch_size, model, validate=True, protocol=TimingProtocol(passes=args.passes),
                     progress=False)
    print("\n".join(describe(profile_device(job, BackendOptions(threads=args.threads,
                                                                 cache_flush=CacheFlush(args.cache_flush))))))
    seconds = time.perf_counter() - began
    frame = read_lut(out)
    print(f"full table: {int((frame['op'] == 'conv').sum())} distinct conv configurations + "
          f"{int((frame['op'] == 'fixed').sum())} fixed part in {seconds:.0f} s "
          f"({seconds / len(frame):.2f} s per configuration, export and validation included)")


if __name__ == "__main__":
    main()
