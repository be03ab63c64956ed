"""``depthshrink run``: base model → space → LUT → importance → search → finetune → merge →
measure → report, under one run folder. Every stage calls the Python API the subcommands call,
with the settings of its section of the config, and is skipped when its output exists, so a
re-run resumes where the last one stopped.

Run folder (field names fixed; the report reads them)::

    config.toml              the resolved settings
    device.json              device, backend, threads, measured peak FLOP/s
    base/last.pt             the base network (unless [train] weights is a train checkpoint)
    space.json  lut.csv  lut.validation.json  importance.csv
    search/<network>.json    masks (original.json: every activation kept), *.frontier.csv
    finetune/<network>/      finetune checkpoints (first seed; seed<k>/ inside: the others)
    baselines/<network>/     width multipliers and pruned networks, seeds as in finetune/
    networks/<network>/      merged model files, result.json (accuracy, latency, cost)
    results.csv              one row per network
    report/index.html
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..contracts.files import check_folder, write_json_atomic
from ..errors import DepthshrinkError
from ..models.build import ModelSpec
from ..training.data import DataSpec
from ..training.runs import RunOptions
from ..training.train import TrainConfig
from .config import PipelineConfig
from .networks import Network, measure_networks, network_list, network_seeds, results_frame, seed_folders, stage
from .runfolder import SHIPPED_WEIGHTS, data_source, finished, is_checkpoint, measured, read_result, shipped_base


class Pipeline:
    def __init__(self, config: PipelineConfig, run_dir: str | Path) -> None:
        self.config, self.run = config, Path(run_dir)
        self.config.data.source = data_source(config.data.source)  # what is used, recorded in config.toml
        self.data = DataSpec(config.data.source, config.data.subset or None)

    # -- what the stages share ------------------------------------------------------------------
    def model(self, width_mult: float | None = None, weights: str | None = None) -> ModelSpec:
        m = self.config.model
        return ModelSpec(m.name, m.resolution, width_mult or m.width_mult, m.in_channels, m.num_classes, weights)

    @property
    def model_info(self) -> dict:
        from ..contracts.space import ChainSpace
        return ChainSpace.from_json(self.run / "space.json").model

    @property
    def weights(self) -> str:
        """``[train] weights``, the shipped base resolved (a path, or "" to train from scratch)."""
        weights = self.config.train.weights
        if weights != SHIPPED_WEIGHTS:
            return weights
        shipped = shipped_base(self.config.model, self.config.data.source)
        return str(shipped) if shipped is not None else ""  # another [model] or data: its base is trained here

    @property
    def base(self) -> Path:
        """``[train] weights`` when it is a ``train`` checkpoint, else the run's own base training."""
        weights = self.weights
        if weights and is_checkpoint(weights):
            return Path(weights)
        return self.run / "base" / "last.pt"

    def finetune_config(self, seed: int) -> TrainConfig:
        return self.config.finetune_schedule(seed)

    def train_config(self, seed: int) -> TrainConfig:
        return self.config.train_schedule(seed)

    # -- stages ---------------------------------------------------------------------------------
    def run_all(self) -> Path:
        check_folder(self.run, "the run")
        self._check_earlier_settings()
        self.run.mkdir(parents=True, exist_ok=True)
        (self.run / "config.toml").write_text(self.config.to_toml())
        self.train_base()
        self.space()
        self.profile()
        self.importance()
        networks = self.search(network_list(self.config))
        self.finetune(networks)
        self.baselines(networks)
        self.measure(networks)
        return self.report()

    def _check_earlier_settings(self) -> None:
        """Refuse to mix outputs of other settings into this run (new budgets, baselines and seeds
        appended to the earlier ones are fine: what was trained is kept, what is new is trained)."""
        path = self.run / "config.toml"
        if not path.exists():
            return
        earlier = PipelineConfig.read(path)
        changed = [name for name in ("seed", "model", "data", "train", "profile", "importance", "measure")
                   if getattr(earlier, name) != getattr(self.config, name)]
        if replace(earlier.finetune, seeds=[]) != replace(self.config.finetune, seeds=[]):
            changed.append("finetune")
        if earlier.search.verify != self.config.search.verify:  # the masks searched before stay as they were
            changed.append("[search] verify")
        for name, before, now in (("[finetune] seeds", earlier.finetune.seeds, self.config.finetune.seeds),
                                  ("[baselines] width_seeds", earlier.baselines.width_seeds, self.config.baselines.width_seeds)):
            if now[:len(before)] != before:  # seeds are added after the earlier ones, whose trainings are kept
                changed.append(f"{name} (may only be extended: {before} + more)")
        if changed:
            raise DepthshrinkError(f"{self.run} holds a run with other settings ({', '.join(changed)} differ from "
                                   f"its config.toml): use another --out, or delete the folder")

    def train_base(self) -> None:
        weights = self.weights
        if weights and not Path(weights).exists():
            raise DepthshrinkError(f"[train] weights: {weights} does not exist")
        if weights and self.base == Path(weights):
            self._check_base_model(Path(weights))
            return  # a base checkpoint, used as it is
        # from scratch, or from a plain state_dict a user brings (e.g. ImageNet weights, torchvision keys)
        self._train("base", self.run / "base", self.model(weights=weights or None), self.config.seed)

    def _check_base_model(self, checkpoint: Path) -> None:
        """A base checkpoint of another model is refused here, not at the search after profiling and scoring."""
        from ..contracts.checkpoints import load_checkpoint

        saved, m = (load_checkpoint(checkpoint).get("spec") or {}).get("model") or {}, self.config.model
        wanted = {"name": m.name, "width_mult": m.width_mult, "resolution": m.resolution,
                  "in_channels": m.in_channels, "num_classes": m.num_classes}
        differ = [f"{k} {saved[k]} (not {v})" for k, v in wanted.items() if k in saved and saved[k] != v]
        if differ:
            raise DepthshrinkError(f"[train] weights: {checkpoint} is a checkpoint of another model: "
                                   f"{', '.join(differ)}")

    def _train(self, title: str, out: Path, model: ModelSpec, seed: int) -> None:
        from ..training.runs import train_network

        config = self.train_config(seed)
        if finished(out / "last.pt", config.epochs):
            return
        stage(f"{title}: train {model.name} x{model.width_mult} for {config.epochs} epoch(s)")
        trained = train_network(model, self.data, config, RunOptions(out, resume=True))
        print(f"held-out accuracy {trained.held_out_accuracy:.2%} -> {trained.checkpoint}")

    def space(self) -> None:
        from ..models.build import build_space

        if not (self.run / "space.json").exists():
            stage("space")
            _, space = build_space(self.model())
            space.to_json(self.run / "space.json")

    def profile(self) -> None:
        from .profile import describe, pipeline_job, profile_device

        p, lut = self.config.profile, self.run / "lut.csv"
        if p.luts:
            if not lut.exists():  # their validations come along: they calibrate the search
                from ..lut.merging import merge_lut_files

                stage(f"profile: the LUTs {', '.join(p.luts)}")
                merge_lut_files(p.luts, lut)
        elif not (self.run / "lut.validation.json").exists():
            stage("profile: this CPU, ONNX Runtime")
            print("\n".join(describe(profile_device(*pipeline_job(lut, self.model(), p)))))
        self._device_json()

    def lut_filters(self) -> dict:
        """The LUT's rows the run uses: those of ``[profile] threads``, in a table that records threads
        (a GPU's, from ``[profile] luts``, does not)."""
        from ..lut.table import read_lut

        return {"threads": self.config.profile.threads} if read_lut(self.run / "lut.csv")["threads"].notna().any() \
            else {}

    def _device_json(self) -> None:
        import platform
        import time

        path = self.run / "device.json"
        if path.exists():
            return
        from .._imports import lazy_import
        from ..export.networks import peak_flops_per_s
        from ..lut.table import LatencyTable
        from ..profiler.devices import cpu_label

        setting = LatencyTable.read(self.run / "lut.csv").select(**self.lut_filters()).setting
        threads = self.config.measure.threads
        # the measure stage times the networks here, with ONNX Runtime, whatever device the LUT is of
        # (``[profile] luts`` may bring another's): the search's predictions are of the LUT's device
        write_json_atomic(path, {"device": cpu_label(), "backend": "onnxruntime", "threads": threads,
                                 "lut_device": setting["device"], "lut_backend": setting["backend"],
                                 "lut_threads": setting.get("threads"),
                                 "peak_flops_per_s": peak_flops_per_s(threads), "host": platform.node(),
                                 "tool_version": lazy_import("onnxruntime").__version__,
                                 "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def importance(self) -> None:
        from ..training.scoring import ImportanceOptions, score_importance

        i, out = self.config.importance, self.run / "importance.csv"
        if out.exists():
            return
        stage(f"importance: {i.method}")
        options = ImportanceOptions(i.method, i.max_removed or None, i.bn_images, i.held_out_images,
                                    i.probe_steps, seed=self.config.seed)
        score_importance(options, self.base, self.data, out)

    def search(self, networks: list[Network]) -> list[Network]:
        """Masks for every shrunk network; those whose budget is out of reach are left out."""
        from .searching import search_networks

        return search_networks(self, networks)

    def finetune(self, networks: list[Network]) -> None:
        from ..training.runs import finetune_network
        from .deploy import merge_checkpoint

        seeds = self.config.finetune.seeds
        for network in networks:
            if network.kind not in ("dp", "depthshrinker"):
                continue
            folders = seed_folders(self.run / "finetune" / network.name, seeds)
            for seed, out in zip(seeds, folders):
                config = self.finetune_config(seed)
                if not finished(out / "last.pt", config.epochs):
                    stage(f"finetune {network.name}" + (f", seed {seed}" if len(seeds) > 1 else ""))
                    trained = finetune_network(self.run / network.masks, self.base, self.data, config,
                                               RunOptions(out, resume=True), eval_images=1000)
                    print(f"held-out accuracy {trained.held_out_accuracy:.2%} "
                          f"(original {trained.reference_accuracy:.2%})")
            merged = self.run / "networks" / network.name
            if not (merged / "merged.json").exists():  # the first seed's is the deployable network
                stage(f"merge {network.name}")
                merge_checkpoint(folders[0] / "last.pt", merged, measure=False)  # measured with the others

    def baselines(self, networks: list[Network]) -> None:
        from .pruning import train_pruned

        for network in [n for n in networks if n.kind in ("width", "pruned")]:
            seeds = network_seeds(self.config, network)
            for seed, out in zip(seeds, seed_folders(self.run / "baselines" / network.name, seeds)):
                if network.kind == "width":
                    self._train(network.name, out, self.model(network.width_mult), seed)
                elif not finished(out / "last.pt", self.config.finetune.epochs):
                    train_pruned(self, network, seed, out)

    def measure(self, networks: list[Network]) -> None:
        from ..training.data import load_split, sample

        test = load_split(DataSpec(self.data.source), "test", self.model_info)
        if self.config.data.test_images:
            test = sample(test, self.config.data.test_images)
        device = json.loads((self.run / "device.json").read_text())
        earlier = {n.name: read_result(self.run / "networks" / n.name / "result.json") for n in networks}
        pending = [n for n in networks if not measured(earlier[n.name], len(network_seeds(self.config, n)))]
        timed_at = {(r or {}).get("timed_at") for r in earlier.values()}  # None: not measured, or an older run
        if pending or None in timed_at or len(timed_at) > 1:
            # new networks, or results timed in other passes (a run extended later): every network is
            # timed again in the same passes, the accuracies measured before are kept
            new = {n.name for n in pending}
            kept = {name: r["accuracy_seeds"] for name, r in earlier.items()
                    if name not in new and "accuracy_seeds" in r and r.get("test_images") == len(test)}
            stage(f"measure {', '.join(n.name for n in pending) or 'nothing new'}; time all networks in the same passes")
            for network, result in zip(networks, measure_networks(self, networks, test, device, kept)):
                path = self.run / "networks" / network.name / "result.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(path, result)
        frame = results_frame(self.run, networks)
        frame.to_csv(self.run / "results.csv", index=False)
        print("\n" + frame[["network", "accuracy", "latency_ms", "throughput_ips", "predicted_latency_ms"]]
              .to_string(index=False, float_format=lambda v: f"{v:.4g}"))

    def report(self) -> Path:
        from ..reports.build import build_report

        stage("report")
        report = build_report([self.run], self.run / "report")
        return report.index_path
