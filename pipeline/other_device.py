"""The networks of a finished run timed on another device (PyTorch on a GPU or this CPU), written
as a run folder of their own: the same networks and accuracies, that device's latencies and
throughputs, so ``depthshrink report RUN OTHER`` shows both devices side by side.

Only the deployable network of each (its first seed) is needed: :func:`pack` copies the run's
``config.toml``, ``space.json``, ``results.csv``, ``search/``, ``networks/*/merged.*``, the base
(the run's own, or a user's checkpoint outside the run, as ``base/last.pt``), the width and pruned
baselines' first checkpoints, and, for a pruned network, torch-pruning itself under ``_vendor/``
(a GPU machine without a package index lacks it) — not the run's finetuning folders.
"""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..errors import DepthshrinkError
from .config import PipelineConfig
from .networks import RESULT_COLUMNS, load_networks, network_list
from .runfolder import SHIPPED_BASE

PORTABLE = ("config.toml", "space.json", "results.csv", "device.json", "base/last.pt", "search/*.json",
            "networks/*/merged.json", "networks/*/merged.pt", "baselines/*/last.pt")
VENDOR = "_vendor"  # packages a pruned network needs, for PYTHONPATH on the other machine


def _finished(run: Path) -> tuple[PipelineConfig, pd.DataFrame]:
    if not (run / "results.csv").exists() or not (run / "config.toml").exists():
        raise DepthshrinkError(f"{run} holds no finished run (results.csv and config.toml)")
    config, results = PipelineConfig.read(run / "config.toml"), pd.read_csv(run / "results.csv")
    unknown = sorted(set(results["network"]) - {n.name for n in network_list(config)})
    if unknown:
        raise DepthshrinkError(f"{run}/results.csv names networks its config.toml does not: {', '.join(unknown)}")
    return config, results


def _pipeline(config: PipelineConfig, run: Path):
    from .stages import Pipeline

    with warnings.catch_warnings():  # no data is read: a machine without Fashion-MNIST need not say so
        warnings.simplefilter("ignore")
        return Pipeline(config, run)


def pack(run: str | Path, dest: str | Path) -> list[Path]:
    """Copy what timing ``run``'s networks elsewhere needs into ``dest``; the files copied (relative)."""
    run, dest = Path(run), Path(dest)
    config, results = _finished(run)
    if dest.resolve() == run.resolve():
        raise DepthshrinkError("give the packed copy another folder than the run")
    files = sorted(p.relative_to(run) for pattern in PORTABLE for p in run.glob(pattern) if p.is_file())
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / name, dest / name)
    base = _pipeline(config, run).base
    if base.exists() and run.resolve() not in base.resolve().parents and base.resolve() != SHIPPED_BASE.resolve():
        (dest / "base").mkdir(parents=True, exist_ok=True)  # a user's checkpoint: the packed run's own base
        shutil.copy2(base, dest / "base" / "last.pt")
        files.append(Path("base/last.pt"))
    if (results["kind"] == "pruned").any():
        import torch_pruning

        shutil.copytree(Path(torch_pruning.__file__).parent, dest / VENDOR / "torch_pruning", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        files.append(Path(VENDOR) / "torch_pruning")
    return files


def device_of(device: str) -> tuple[str, str]:
    """(the results' device label, the torch device) for ``cpu`` or a GPU as ``--gpu`` takes it."""
    if device == "cpu":
        return "cpu-torch", "cpu"
    from ..profiler.devices import resolve_gpu

    target = resolve_gpu(device)
    return target.label, f"cuda:{target.index}"


def time_on_device(run: str | Path, out: str | Path, device: str = "cpu", precision: str = "fp32",
                   threads: int | None = None, min_time_ms: float = 1000.0, passes: int = 3,
                   throughput_batch_size: int | None = None) -> pd.DataFrame:
    """Time the networks of ``run``'s results.csv with PyTorch on ``device`` (``cpu``, or a GPU as
    ``--gpu`` takes it: an index or a name), at batch 1 (latency) and the run's throughput batch,
    in the same interleaved passes (a GPU: one CUDA graph per network); write ``out`` as a run
    folder (results.csv, device.json, config.toml) and return its results. Accuracies are the run's
    (fp32, ONNX Runtime), not evaluated again in ``precision``."""
    from ..export.networks import costs
    from ..profiler.base import Workload
    from ..profiler.pytorch import TorchBackend
    from ..profiler.timing import TimingProtocol, interleaved

    run, out = Path(run), Path(out)
    config, results = _finished(run)
    if out.resolve() == run.resolve() or (out / "networks").is_dir() or (out / "search").is_dir():
        raise DepthshrinkError(f"give the other device's timings another folder than a run ({out} holds one: its "
                               "results.csv, config.toml and device.json would be written over)")
    by_name = {n.name: n for n in network_list(config)}
    label, backend_device = device_of(device)
    backend = TorchBackend(backend_device, threads, precision, cuda_graph=device != "cpu")

    def on_backend(runs: list, protocol: TimingProtocol) -> list:
        workloads = [Workload(f"network{i}", {"input": list(shape)}, build_module=lambda model=model: model)
                     for i, (model, shape) in enumerate(runs)]
        return interleaved(workloads, backend.time, protocol)

    try:
        pipeline = _pipeline(config, run)
        models = [load_networks(pipeline, by_name[name], first_only=True)[0] for name in results["network"]]
        m = config.model
        measured = costs(models, (m.in_channels, m.resolution, m.resolution), backend.threads,
                         TimingProtocol(300, 20, min_time_ms, passes=passes),
                         throughput_batch_size or config.measure.throughput_batch_size, time_runs=on_backend)
    finally:
        backend.close()
    timed_at = datetime.now(UTC).isoformat(timespec="seconds")
    frame = results.assign(
        **pd.DataFrame([c.to_dict() for c in measured], index=results.index), device=label,
        backend=f"torch-{precision}", timed_at=timed_at,
        # the search's predictions, budgets and masks files are of the run's own device
        predicted_latency_ms=None, latency_budget_ms=None, masks="",
    ).reindex(columns=RESULT_COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results.csv", index=False)
    shutil.copy(run / "config.toml", out / "config.toml")
    (out / "device.json").write_text(json.dumps({
        "device": label, "backend": f"torch-{precision}", "threads": backend.threads, "precision": precision,
        "timed_at": timed_at, "networks_of": str(run),
        "accuracy_of": "the run's own (fp32, ONNX Runtime), not evaluated again here"}, indent=1))
    return frame
