"""``depthshrink run``: base model → space → LUT → importance → search → finetune → merge →
measure → report, under one run folder. Every stage runs the same subcommand a user would, and
is skipped when its output exists, so a re-run resumes where the last one stopped.

Run folder (field names fixed; the report reads them)::

    config.toml              the resolved settings
    device.json              device, backend, threads, measured peak FLOP/s
    base/last.pt             the base network (unless [train] weights is a train checkpoint)
    space.json  lut.csv  lut.validation.json  importance.csv
    search/<network>.json    masks (original.json: every activation kept), *.frontier.csv
    finetune/<network>/      finetune checkpoints;  baselines/<network>/: width multipliers
    networks/<network>/      merged model files, result.json (accuracy, latency, cost)
    results.csv              one row per network
    report/index.html
"""

from __future__ import annotations

import functools
import json
import warnings
from argparse import Namespace
from pathlib import Path

from ..errors import DepthshrinkError
from ..models.space import write_json_atomic
from .config import PipelineConfig
from .networks import Network, measure_networks, network_list, results_frame


class Pipeline:
    def __init__(self, config: PipelineConfig, run_dir: str | Path) -> None:
        self.config, self.run = config, Path(run_dir)
        self.data = self._data_source()
        self.config.data.source = self.data  # what is used, recorded in config.toml

    # -- helpers --------------------------------------------------------------------------------
    def _data_source(self) -> str:
        from ..shrink.data import FASHION_MNIST

        source = self.config.data.source
        if source == "fashion-mnist" and not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
            warnings.warn("FASHION-MNIST IS NOT INSTALLED (apt-get install dataset-fashion-mnist): this run "
                          "uses SYNTHETIC data, its accuracies say nothing about real images", stacklevel=2)
            return "synthetic"
        return source

    def cli(self, stage: str, *argv: str, allowed: tuple[int, ...] = (0,)) -> int:
        from ..cli.main import main

        print(f"\n== {stage}: depthshrink {' '.join(argv)}", flush=True)
        status = main(list(argv))
        if status not in allowed:
            raise DepthshrinkError(f"stage '{stage}' failed (its error is above); fix it and run again: "
                                   "finished stages are kept")
        return status

    def model_args(self, width_mult: float | None = None) -> list[str]:
        m = self.config.model
        return ["--model", m.name, "--width-mult", str(width_mult or m.width_mult), "--resolution",
                str(m.resolution), "--in-channels", str(m.in_channels), "--num-classes", str(m.num_classes)]

    def data_args(self) -> list[str]:
        subset = self.config.data.subset
        return ["--data", self.data] + (["--subset", str(subset)] if subset else [])

    @property
    def model_info(self) -> dict:
        from ..models.space import ChainSpace
        return ChainSpace.from_json(self.run / "space.json").model

    @property
    def base(self) -> Path:
        """``[train] weights`` when it is a ``train`` checkpoint, else the run's own base training."""
        weights = self.config.train.weights
        if weights and _is_checkpoint(weights):
            return Path(weights)
        return self.run / "base" / "last.pt"

    # -- stages ---------------------------------------------------------------------------------
    def run_all(self) -> Path:
        self._check_earlier_settings()
        self.run.mkdir(parents=True, exist_ok=True)
        (self.run / "config.toml").write_text(self.config.to_toml())
        self.train_base()
        self.space()
        self.profile()
        self.importance()
        networks = network_list(self.config)
        networks = self.search(networks)
        self.finetune(networks)
        self.baselines(networks)
        self.measure(networks)
        return self.report()

    def _check_earlier_settings(self) -> None:
        """Refuse to mix outputs of other settings into this run (new budgets and baselines are fine)."""
        path = self.run / "config.toml"
        if not path.exists():
            return
        earlier = PipelineConfig.read(path)
        changed = [name for name in ("seed", "model", "data", "train", "profile", "importance", "finetune", "measure")
                   if getattr(earlier, name) != getattr(self.config, name)]
        if changed:
            raise DepthshrinkError(f"{self.run} holds a run with other settings ({', '.join(changed)} differ from "
                                   f"its config.toml): use another --out, or delete the folder")

    def train_base(self) -> None:
        weights = self.config.train.weights
        if weights and not Path(weights).exists():
            raise DepthshrinkError(f"[train] weights: {weights} does not exist")
        if weights and self.base == Path(weights):
            return  # a base checkpoint, used as it is
        # from scratch, or from a plain state_dict a user brings (e.g. ImageNet weights, torchvision keys)
        self._train("base", self.run / "base", [*self.model_args(), *(["--weights", weights] if weights else [])])

    def _train(self, stage: str, out: Path, model_args: list[str]) -> None:
        t = self.config.train
        if _finished(out / "last.pt", t.epochs):
            return
        self.cli(stage, "train", *model_args, *self.data_args(), "--epochs", str(t.epochs), "--batch-size",
                 str(t.batch_size), "--lr", str(t.lr), "--seed", str(self.config.seed), "--out", str(out),
                 "--resume")

    def space(self) -> None:
        if not (self.run / "space.json").exists():
            self.cli("space", "space", *self.model_args(), "--out", str(self.run / "space.json"))

    def profile(self) -> None:
        p, lut = self.config.profile, self.run / "lut.csv"
        if p.luts:
            if not lut.exists():
                self.cli("profile", "lut", "merge", *p.luts, "--out", str(lut))
        elif not (self.run / "lut.validation.json").exists():
            options = ["--budget-fraction", str(p.budget_fraction)] if p.budget_fraction < 1 else []
            options += ["--cache-flush", p.cache_flush]
            self.cli("profile", "profile-device", "--cpu", *self.model_args(), "--batch-size", "1", "--lut", str(lut),
                     "--validate", "--threads", str(p.threads), "--min-time-ms", str(p.min_time_ms),
                     "--passes", str(p.passes), *options)
        self._device_json()

    def _device_json(self) -> None:
        import platform
        import time

        path = self.run / "device.json"
        if path.exists():
            return
        from ..lut.table import LatencyTable
        from ..shrink.measure import peak_flops_per_s

        setting = LatencyTable.read(self.run / "lut.csv").select(threads=self.config.profile.threads).setting
        threads = self.config.measure.threads
        write_json_atomic(path, {"device": setting["device"], "backend": "onnxruntime", "threads": threads,
                                 "peak_flops_per_s": peak_flops_per_s(threads), "host": platform.node(),
                                 "tool_version": _ort_version(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def importance(self) -> None:
        i, out = self.config.importance, self.run / "importance.csv"
        if out.exists():
            return
        limit = ["--max-removed", str(i.max_removed)] if i.max_removed else []
        self.cli("importance", "importance", "--method", i.method, "--weights", str(self.base), *self.data_args(),
                 *limit, "--bn-images", str(i.bn_images), "--held-out-images", str(i.held_out_images),
                 "--probe-steps", str(i.probe_steps), "--seed", str(self.config.seed), "--out", str(out))

    def search(self, networks: list[Network]) -> list[Network]:
        """Masks for every shrunk network; those whose budget is out of reach are left out."""
        folder = self.run / "search"
        folder.mkdir(exist_ok=True)
        common = ["--space", str(self.run / "space.json"), "--lut", str(self.run / "lut.csv"),
                  "--importance", str(self.run / "importance.csv"), "--threads", str(self.config.profile.threads)]
        if not (folder / "original.json").exists():  # the unchanged network, with its per-layer latencies
            scratch = folder / ".original.json"
            self.cli("search original", "search", *common, "--latency-budget", "1x", "--out", str(scratch),
                     "--frontier", str(folder / ".original.frontier.csv"))
            write_json_atomic(folder / "original.json", {**json.loads(scratch.read_text()), "method": "original"})
            scratch.unlink()
            (folder / ".original.frontier.csv").unlink(missing_ok=True)
        for network in networks:
            if network.kind in ("dp", "depthshrinker") and not (self.run / network.masks).exists():
                status = self.cli(f"search {network.name}", "search", *common, "--latency-budget", network.budget,
                                  "--method", network.kind, "--out", str(self.run / network.masks), allowed=(0, 3))
                if status == 3:  # a budget out of reach: the other networks still run
                    print(f"!! {network.name} is left out: no network of this method fits its budget", flush=True)
        return [n for n in networks if not n.masks or (self.run / n.masks).exists()]

    def finetune(self, networks: list[Network]) -> None:
        f = self.config.finetune
        for network in networks:
            if network.kind not in ("dp", "depthshrinker"):
                continue
            out = self.run / "finetune" / network.name
            if not _finished(out / "last.pt", f.epochs):
                self.cli(f"finetune {network.name}", "finetune", "--masks", str(self.run / network.masks),
                         "--weights", str(self.base), *self.data_args(), "--epochs", str(f.epochs),
                         "--batch-size", str(f.batch_size), "--lr", str(f.lr), "--distill", str(f.distill),
                         "--seed", str(self.config.seed), "--out", str(out), "--resume", "--eval-images", "1000")
            merged = self.run / "networks" / network.name
            if not (merged / "merged.json").exists():
                self.cli(f"merge {network.name}", "merge", "--checkpoint", str(out / "last.pt"), "--out", str(merged),
                         "--no-measure")  # the measure stage times every network alike

    def baselines(self, networks: list[Network]) -> None:
        from .pruning import train_pruned

        for network in networks:
            if network.kind == "width":
                self._train(network.name, self.run / "baselines" / network.name, self.model_args(network.width_mult))
            elif network.kind == "pruned" and not _finished(self.run / "baselines" / network.name / "last.pt",
                                                            self.config.finetune.epochs):
                train_pruned(self, network)

    def measure(self, networks: list[Network]) -> None:
        from ..cli.train import load_data

        from ..shrink.data import sample

        test = load_data(Namespace(data=self.data, subset=None), "test", self.model_info)
        if self.config.data.test_images:
            test = sample(test, self.config.data.test_images)
        device = json.loads((self.run / "device.json").read_text())
        pending = [n for n in networks if not (self.run / "networks" / n.name / "result.json").exists()]
        if pending:
            print(f"\n== measure {', '.join(n.name for n in pending)}", flush=True)
            for network, result in zip(pending, measure_networks(self, pending, test, device)):
                path = self.run / "networks" / network.name / "result.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(path, result)
        frame = results_frame(self.run, networks)
        frame.to_csv(self.run / "results.csv", index=False)
        print("\n" + frame[["network", "accuracy", "latency_ms", "throughput_ips", "predicted_latency_ms"]]
              .to_string(index=False, float_format=lambda v: f"{v:.4g}"))

    def report(self) -> Path:
        self.cli("report", "report", str(self.run), "--out", str(self.run / "report"))
        return self.run / "report" / "index.html"


def _finished(checkpoint: Path, epochs: int) -> bool:
    """Whether ``checkpoint`` exists and reached ``epochs`` (read without unpickling anything)."""
    if not checkpoint.exists():
        return False
    from ..shrink.train import load_checkpoint
    return load_checkpoint(checkpoint).get("epoch", 0) >= epochs


def _ort_version() -> str:
    from .._imports import lazy_import
    return lazy_import("onnxruntime").__version__


def _is_checkpoint(path: str) -> bool:
    """Whether ``path`` is a depthshrink ``train`` checkpoint (not a plain state_dict)."""
    return _is_checkpoint_version(path, Path(path).stat().st_mtime_ns) if Path(path).exists() else False


@functools.lru_cache(maxsize=8)
def _is_checkpoint_version(path: str, mtime_ns: int) -> bool:  # a replaced file is read again
    from ..training.checkpoints import CHECKPOINT_FORMAT, load_torch_file
    try:
        state = load_torch_file(path, "weights")
    except DepthshrinkError:  # unreadable: the train stage names the problem
        return False
    return isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT
