"""Ship a trained base network under ``weights/``: the checkpoint without its optimizer state, and a
JSON of its provenance (the command, seed, commit, data checksum, accuracy on the held-out and
test splits, training time), every figure measured here.

    python bench/ship_base.py --run /work/basetrain/out --commit <sha> \
        --command "depthshrink train ..." --name mobilenet_v2_small_x0.5_fashion_mnist
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from pathlib import Path

import depthshrink
from depthshrink.contracts.checkpoints import load_checkpoint, save_checkpoint
from depthshrink.training.data import FASHION_MNIST, DataSpec
from depthshrink.training.runs import evaluate_file

WEIGHTS = Path(depthshrink.__file__).parent / "weights"
KEPT = ("format", "epoch", "model", "ema", "ema_updates", "spec", "config")  # ema: what a base trained with it deploys


def data_checksum(folder: Path = FASHION_MNIST) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*-ubyte.gz"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the train run folder (last.pt, metrics.jsonl)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", required=True, help="the command that trained it, as run")
    parser.add_argument("--commit", required=True, help="the commit of the code that trained it")
    parser.add_argument("--note", default="", help="anything a reader must know (a resume, a thread count)")
    args = parser.parse_args()
    run = Path(args.run)
    state = load_checkpoint(run / "last.pt")
    WEIGHTS.mkdir(exist_ok=True)
    target = WEIGHTS / f"{args.name}.pt"
    save_checkpoint(target, {k: state[k] for k in KEPT if k in state})
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    data = DataSpec("fashion-mnist")
    test = evaluate_file(data, "test", checkpoint=target)
    held_out = evaluate_file(data, "held-out", checkpoint=target)
    seen = 55_000 // state["config"]["batch_size"] * state["config"]["batch_size"]
    provenance = {
        "file": target.name, "command": args.command, "commit": args.commit, "seed": state["config"]["seed"],
        "model": state["spec"]["model"], "train_config": state["config"], "epochs": state["epoch"],
        "data": {"source": "Debian dataset-fashion-mnist", "train_images": 55_000, "held_out_images": 5_000,
                 "test_images": 10_000, "sha256": data_checksum()},
        "test_accuracy": round(test, 4), "held_out_accuracy": round(held_out, 4),
        "training_seconds": round(sum(seen / e["images_per_s"] for e in epochs)),
        "last_epoch": epochs[-1], "host": platform.node(), "cpu": platform.processor() or platform.machine(),
        "note": args.note,
    }
    target.with_suffix(".json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"{target}: test accuracy {test:.2%}, held-out {held_out:.2%}, {state['epoch']} epochs, "
          f"{provenance['training_seconds'] / 3600:.2f} h of training -> {target.with_suffix('.json')}")


if __name__ == "__main__":
    main()
