"""The networks a run compares, and how each is loaded and measured (accuracy on the test
split, latency and throughput in ONNX Runtime, parameters, FLOPs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import PipelineConfig

RESULT_COLUMNS = ["network", "kind", "budget", "latency_budget_ms", "predicted_latency_ms", "accuracy",
                  "accuracy_se", "seeds", "test_images", "latency_ms", "latency_p10_ms", "latency_p90_ms", "throughput_ips",
                  "throughput_batch_size", "parameters", "flops", "device", "backend", "threads", "masks", "timed_at"]


@dataclass(frozen=True)
class Network:
    name: str
    kind: str                      # original | dp | depthshrinker | width | pruned
    budget: str = ""               # dp, depthshrinker: the --latency-budget text
    width_mult: float | None = None
    pruning_ratio: float | None = None

    @property
    def masks(self) -> str:
        """The masks file, relative to the run folder ('' for networks without one)."""
        if self.kind == "original":
            return "search/original.json"
        return f"search/{self.name}.json" if self.kind in ("dp", "depthshrinker") else ""


def stage(title: str) -> None:
    """The header of a pipeline stage in the log."""
    print(f"\n== {title}", flush=True)


def seed_folders(folder: Path, seeds: list[int]) -> list[Path]:
    """One training folder per seed: ``folder`` itself for the first seed, ``folder/seed<k>`` for the
    others, so seeds added to a run later (after the earlier ones) keep the trainings already made."""
    return [folder] + [folder / f"seed{seed}" for seed in seeds[1:]]


def network_seeds(config: PipelineConfig, network: Network) -> list[int]:
    """The seeds a network is trained with: the run's own for the original, ``[baselines] width_seeds``
    for a width baseline, ``[finetune] seeds`` for the finetuned ones (shrunk and pruned)."""
    if network.kind == "original":
        return [config.seed]
    return config.baselines.width_seeds if network.kind == "width" else config.finetune.seeds


def network_list(config: PipelineConfig) -> list[Network]:
    networks = [Network("original", "original")]
    for budget in config.search.budgets:
        networks += [Network(f"{method}-{budget.replace(' ', '')}", method, budget) for method in config.search.methods]
    networks += [Network(f"width-{w:g}", "width", width_mult=w) for w in config.baselines.width_mults]
    networks += [Network(f"pruned-{r:g}", "pruned", pruning_ratio=r) for r in config.baselines.pruning_ratios]
    return networks


def load_networks(pipeline, network: Network, first_only: bool = False) -> list:
    """The network of each training seed (one for the original): for a shrunk network the
    deployable (merged) model first, then the other seeds' finetuned checkpoints (which compute
    what their merged models would: merge refuses otherwise). ``first_only``: the first alone
    (the deployable network, all a latency needs)."""
    from ..contracts.checkpoints import load_checkpoint
    from ..shrink.rebuild import load_base_network, load_merged, network_from_checkpoint

    def from_checkpoints(folders: list[Path]) -> list:
        return [network_from_checkpoint(load_checkpoint(f / "last.pt"), str(f / "last.pt")) for f in folders]

    if network.kind == "original":
        return [load_base_network(pipeline.base)[0]]
    seeds = network_seeds(pipeline.config, network)[:1 if first_only else None]
    if network.kind == "width":
        return from_checkpoints(seed_folders(pipeline.run / "baselines" / network.name, seeds))
    if network.kind == "pruned":
        from .pruning import load_pruned
        return [load_pruned(pipeline, network, folder) for folder in
                seed_folders(pipeline.run / "baselines" / network.name, seeds)]
    folders = seed_folders(pipeline.run / "finetune" / network.name, seeds)
    return [load_merged(pipeline.run / "networks" / network.name), *from_checkpoints(folders[1:])]


def lut_predicts_this_machine(device: dict) -> bool:
    """Whether the run's LUT is of the device, backend and thread count its networks are measured with
    (``device.json``; a run from before ``lut_device`` or ``lut_threads`` was recorded profiled this
    machine with them: ``[profile] threads`` = 2 beside ``[measure] threads`` = 1 set a 2-thread prediction
    beside a 1-thread measurement, a "LUT error" of 30%)."""
    def same(a, b) -> bool:
        return str(a).lower() == str(b).lower()
    return same(device.get("lut_device", device["device"]), device["device"]) and \
        same(device.get("lut_backend", device["backend"]), device["backend"]) and \
        same(device.get("lut_threads") or device.get("threads"), device.get("threads"))


def measure_networks(pipeline, networks: list[Network], test, device: dict,
                     kept: dict[str, list[float]] | None = None) -> list[dict]:
    """Each network's accuracy (per seed; ``kept`` holds those measured before, by network name,
    which are not evaluated again), parameters and FLOPs, and its latency and throughput: all
    networks are timed in the same interleaved passes, so a shared machine's slow phase favours
    none; ``timed_at`` names those passes."""
    from datetime import UTC, datetime

    from ..export.networks import costs
    from ..profiler.timing import TimingProtocol
    from ..training.evaluate import accuracy

    m, settings, kept = pipeline.config.model, pipeline.config.measure, kept or {}
    seeds = [load_networks(pipeline, network, first_only=network.name in kept) for network in networks]
    accuracies = [kept[network.name] if network.name in kept else [accuracy(model, test) for model in models]
                  for network, models in zip(networks, seeds)]
    timed_at = datetime.now(UTC).isoformat(timespec="seconds")
    measured = costs([models[0] for models in seeds], (m.in_channels, m.resolution, m.resolution), settings.threads,
                     TimingProtocol(300, 20, settings.min_time_ms, passes=settings.passes),
                     settings.throughput_batch_size)
    results, predicted_here = [], lut_predicts_this_machine(device)
    for network, per_seed, cost in zip(networks, accuracies, measured):
        # a LUT of another device: its budgets and predictions are not this machine's (the masks keep them)
        masks = json.loads((pipeline.run / network.masks).read_text()) if network.masks and predicted_here else {}
        network_accuracy = float(np.mean(per_seed))
        result = {"network": network.name, "kind": network.kind, "budget": network.budget,
                  "latency_budget_ms": masks.get("latency_budget_ms") if network.kind != "original" else None,
                  "predicted_latency_ms": masks.get("predicted_latency_ms"), "accuracy": network_accuracy,
                  "accuracy_se": float(np.std(per_seed, ddof=1) / np.sqrt(len(per_seed))) if len(per_seed) > 1 else None,
                  "seeds": len(per_seed), "accuracy_seeds": per_seed, "test_images": len(test), **cost.to_dict(),
                  "device": device["device"], "backend": device["backend"], "masks": network.masks,
                  "timed_at": timed_at}
        print(f"{network.name}: accuracy {network_accuracy:.2%}, latency {cost.latency_ms:.4f} ms (predicted "
              f"{result['predicted_latency_ms'] or float('nan'):.4f}), {cost.throughput_ips:.0f} images/s")
        results.append(result)
    return results


def results_frame(run: Path, networks: list[Network]) -> pd.DataFrame:
    rows = [json.loads((run / "networks" / n.name / "result.json").read_text()) for n in networks]
    return pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS)
