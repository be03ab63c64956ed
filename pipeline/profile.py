"""Profiling as ``profile-device`` and the pipeline run it: a network (exported here), a device
corpus, or a bundle exported elsewhere, timed into a LUT, and optionally validated against whole
networks timed in the same passes."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts.files import FileLock
from ..errors import DepthshrinkError
from ..profiler.base import CacheFlush
from ..profiler.factory import BackendOptions, backend_factory
from ..profiler.session import ProfileReport, Settings
from ..profiler.timing import TimingProtocol
from .config import ProfileSection

DRIFT_WARNING_FRACTION = 0.10  # a whole network's slowest pass this much over its fastest: the machine drifts


@dataclass(frozen=True)
class ProfileJob:
    """What to profile (one of ``model``, ``corpus``, ``bundle``), into which LUT, how."""

    lut: str | os.PathLike
    batch_size: int
    model: object | None = None               # a ModelSpec
    corpus: object | None = None              # a CorpusSpec
    bundle: str | os.PathLike | None = None   # a folder from export-bundle
    validate: bool = False                    # time whole networks too, and compare with the sum of rows
    budget_fraction: float | None = None      # measure at most this share of the configurations (adaptive)
    target_accuracy: float = 0.95             # adaptive: stop once this share of held-out rows is within 10%
    protocol: TimingProtocol = field(default_factory=TimingProtocol)
    noisy_spread: float = 0.25
    progress: bool = True


def pipeline_job(lut: str | os.PathLike, model: object, section: ProfileSection) -> tuple[ProfileJob, BackendOptions]:
    """The job and backend the pipeline's profile stage runs on this CPU from its ``[profile]``
    section: a network validated whole, a share of its configurations picked adaptively (all when
    the share is 1), ``min_time_ms`` per row over ``passes`` interleaved passes."""
    job = ProfileJob(lut, 1, model, validate=True,
                     budget_fraction=section.budget_fraction if section.budget_fraction < 1 else None,
                     protocol=TimingProtocol(min_time_ms=section.min_time_ms, passes=section.passes))
    return job, BackendOptions(threads=section.threads, cache_flush=CacheFlush(section.cache_flush))


@dataclass
class Profiled:
    report: ProfileReport
    label: str
    model_label: str
    backend: str
    precision: str
    validation: list[dict] | None = None


def profile_device(job: ProfileJob, options: BackendOptions) -> Profiled:
    """Measure what ``job.lut`` lacks on this machine (see :func:`..profiler.session.profile`)."""
    from ..lut.writer import check_lut_header, check_lut_name
    from ..profiler.bundle import load_bundle
    from ..profiler.session import profile
    from ..profiler.validation import validate

    if sum(x is not None for x in (job.model, job.corpus, job.bundle)) != 1:
        raise DepthshrinkError("give one of --model (with --resolution), --corpus (with --resolution) or --bundle")
    if job.budget_fraction is not None and not 0 < job.budget_fraction <= 1:
        raise DepthshrinkError("--budget-fraction must be in (0, 1]")
    bundle = load_bundle(job.bundle) if job.bundle is not None else None
    corpus = job.corpus is not None or (bundle is not None and bundle.space is None)
    if corpus and job.validate:
        raise DepthshrinkError("--validate times whole networks: a corpus has none")
    if job.validate and bundle is not None and not bundle.of_op("network"):
        raise DepthshrinkError("--validate times whole networks: this bundle has none "
                               "(export it without --no-networks)")
    if corpus and job.budget_fraction is not None:
        raise DepthshrinkError("--budget-fraction chooses among a network's configurations: measure a corpus whole")
    if bundle is not None and bundle.batch_size != job.batch_size:
        raise DepthshrinkError(f"the bundle was exported for batch {bundle.batch_size}, not --batch-size {job.batch_size}")
    make_backend, label = backend_factory(options)
    check_lut_name(job.lut)
    if Path(job.lut).is_file():
        check_lut_header(job.lut)  # a foreign file is refused before any slow export
    auto_flush = options.backend_name == "onnxruntime" and options.cache_flush is CacheFlush.AUTO
    with FileLock(job.lut, "a profiling session"), tempfile.TemporaryDirectory(prefix="depthshrink-bundle-") as scratch:
        bundle, modules = _bundle(job, bundle, scratch, networks=job.validate or auto_flush)
        backend = make_backend()  # after the export: a GPU context is held only while timing
        try:
            settings = Settings(label, job.batch_size, job.protocol, job.noisy_spread, job.progress)
            report = profile(bundle, backend, job.lut, settings, modules, job.budget_fraction, job.target_accuracy,
                             networks=job.validate)
            validation = validate(bundle, backend, job.lut, settings, modules, report.networks) if job.validate else None
            return Profiled(report, label, bundle.model_label, backend.name, backend.precision, validation)
        finally:
            backend.close()


def _bundle(job: ProfileJob, bundle, scratch: str, networks: bool):
    """(the bundle to time, how the torch backend builds each entry or None)."""
    if job.corpus is not None or (bundle is not None and bundle.space is None):
        from ..export.bundles import corpus_module, export_corpus

        if bundle is None:
            bundle = export_corpus(job.corpus, job.batch_size, scratch, progress=job.progress)
        return bundle, corpus_module  # the torch backend builds each configuration itself
    if bundle is not None:
        return bundle, None
    from ..export.bundles import export_bundle, module_builder
    from ..models.build import build_space

    model, space = build_space(job.model)
    bundle = export_bundle(model, space, job.batch_size, scratch, networks=networks, progress=job.progress)
    return bundle, module_builder(model, space)


def describe(profiled: Profiled) -> list[str]:
    """What a profiling session did, in lines: the flush choice, the rows, the slowest, the validation."""
    report = profiled.report
    measured = report.measured
    lines = [report.cache_flush.describe()] if report.cache_flush is not None else []
    lines.append(f"{profiled.model_label} on {profiled.label} ({profiled.backend}, {profiled.precision}): "
                 f"measured {len(measured)}, already in the LUT {report.skipped}, {report.seconds:.1f} s")
    if not measured.empty:
        lines.append(f"median call overhead {measured['call_overhead_ms'].median() * 1e3:.1f} us (subtracted); "
                     f"re-measured {int(measured['remeasured'].sum())}, still noisy {int(measured['noisy'].sum())}")
        columns = ["op", "in_channels", "out_channels", "kernel_size", "stride", "groups", "height",
                   "activation", "latency_ms", "latency_p10_ms", "latency_p90_ms", "runs"]
        slowest = measured.nlargest(5, "latency_ms")[columns].copy()
        for column in columns[1:7]:
            slowest[column] = slowest[column].astype("Int64")
        lines += ["slowest configurations:", slowest.to_string(index=False, float_format="%.4f")]
    if profiled.validation:
        among = all(r["timed_among_rows"] for r in profiled.validation)
        lines.append("sum of LUT entries vs measured whole network" + (" (timed in the table's passes):" if among
                                                                        else ":"))
        for r in profiled.validation:
            guessed = f" ({r['predicted_segments']} from the predictor)" if r["predicted_segments"] else ""
            lines.append(f"  {r['network']:<14} {r['segments']:>3} segments{guessed}  measured {r['measured_ms']:.3f} ms"
                         f"  predicted {r['predicted_ms']:.3f} ms  error {r['error_pct']:+.1f}%")
    return lines


def drift_warning(validation: list[dict]) -> str | None:
    """A line when a whole network's passes moved more than ``DRIFT_WARNING_FRACTION`` apart."""
    moved = max((r["slowest_pass_ms"] / r["fastest_pass_ms"] - 1 for r in validation), default=0.0)
    if moved <= DRIFT_WARNING_FRACTION:
        return None
    return (f"a whole network's timings differed by up to {moved:.0%} while they were taken; this machine's "
            "speed moves in phases, so latencies measured at different times differ by about as much")
