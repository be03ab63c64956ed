"""The networks of a finished run timed on another device (PyTorch on a GPU or this CPU), written
as a run folder of their own: the same networks and accuracies, that device's latencies and
throughputs, so ``depthshrink report RUN OTHER`` shows both devices side by side.

Only the deployable network of each (its first seed) is needed: the run's ``config.toml``,
``space.json``, ``results.csv``, ``search/``, ``networks/*/merged.*``, the base when the run trained
its own, and the width and pruned baselines' first checkpoints, which :func:`portable_files` lists
(a GPU machine gets those, not the run's finetuning folders).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..errors import DepthshrinkError
from .config import PipelineConfig
from .networks import RESULT_COLUMNS, load_networks, network_list

PORTABLE = ("config.toml", "space.json", "results.csv", "device.json", "base/last.pt", "search/*.json",
            "networks/*/merged.json", "networks/*/merged.pt", "baselines/*/last.pt")


def portable_files(run: str | Path) -> list[Path]:
    """The files of ``run`` that timing its networks elsewhere needs (relative to ``run``)."""
    run = Path(run)
    return sorted(p.relative_to(run) for pattern in PORTABLE for p in run.glob(pattern) if p.is_file())


def time_on_device(run: str | Path, out: str | Path, device: str = "cpu", precision: str = "fp32",
                   threads: int | None = None, min_time_ms: float = 1000.0, passes: int = 3,
                   throughput_batch_size: int | None = None) -> pd.DataFrame:
    """Time the networks of ``run``'s results.csv with PyTorch on ``device`` (``cpu``, or a GPU as
    ``--gpu`` takes it: an index or a name), at batch 1 (latency) and the run's throughput batch,
    in the same interleaved passes (a GPU: one CUDA graph per network); write ``out`` as a run
    folder (results.csv, device.json, config.toml) and return its results."""
    from ..profiler.base import Workload
    from ..profiler.pytorch import TorchBackend
    from ..profiler.timing import TimingProtocol, interleaved
    from .stages import Pipeline

    run, out = Path(run), Path(out)
    if not (run / "results.csv").exists() or not (run / "config.toml").exists():
        raise DepthshrinkError(f"{run} holds no finished run (results.csv and config.toml)")
    config = PipelineConfig.read(run / "config.toml")
    results = pd.read_csv(run / "results.csv")
    by_name = {n.name: n for n in network_list(config)}
    unknown = sorted(set(results["network"]) - set(by_name))
    if unknown:
        raise DepthshrinkError(f"{run}/results.csv names networks its config.toml does not: {', '.join(unknown)}")
    gpu = device != "cpu"
    label, backend_device = "cpu-torch", "cpu"
    if gpu:
        from ..profiler.devices import resolve_gpu
        target = resolve_gpu(device)
        label, backend_device = target.slug, f"cuda:{target.index}"
    backend = TorchBackend(backend_device, threads, precision, cuda_graph=gpu)
    try:
        pipeline = Pipeline(config, run)
        models = [load_networks(pipeline, by_name[name], first_only=True)[0] for name in results["network"]]
        batch = throughput_batch_size or config.measure.throughput_batch_size
        shape = [config.model.in_channels, config.model.resolution, config.model.resolution]
        workloads = [Workload(f"{name}-b{b}", {"input": [b, *shape]}, build_module=lambda model=model: model)
                     for name, model in zip(results["network"], models) for b in (1, batch)]
        timings = interleaved(workloads, backend.time, TimingProtocol(300, 20, min_time_ms, passes=passes))
    finally:
        backend.close()
    timed_at = datetime.now(UTC).isoformat(timespec="seconds")
    latency, batched = timings[::2], timings[1::2]
    frame = results.assign(
        latency_ms=[t.latency_ms for t in latency], latency_p10_ms=[t.latency_p10_ms for t in latency],
        latency_p90_ms=[t.latency_p90_ms for t in latency], throughput_batch_size=batch,
        throughput_ips=[1000.0 * batch / t.latency_ms for t in batched], device=label,
        backend=f"torch-{precision}", threads=threads, timed_at=timed_at,
        predicted_latency_ms=None, latency_budget_ms=None,  # the search's, of the run's own device
    ).reindex(columns=RESULT_COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results.csv", index=False)
    shutil.copy(run / "config.toml", out / "config.toml")
    (out / "device.json").write_text(json.dumps({"device": label, "backend": f"torch-{precision}", "threads": threads,
                                                 "precision": precision, "timed_at": timed_at,
                                                 "networks_of": str(run)}, indent=1))
    return frame
