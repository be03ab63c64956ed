"""Read the folders written by ``depthshrink run``: what each holds, and what it lacks.

A run folder needs only ``results.csv``; every other stage file is optional and a missing one
is listed (``RunFolder.missing``) instead of failing the report.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DepthshrinkError

# the stage files of a run folder, in pipeline order
STAGE_FILES = ("config.toml", "device.json", "space.json", "lut.csv", "lut.validation.json",
               "importance.csv", "search/", "results.csv")
MASKS_FORMAT = "depthshrink.masks/1"
KINDS = ("original", "dp", "depthshrinker", "width", "pruned")
SETTING_KEYS = ("device", "backend", "threads")


@dataclass
class NetworkMasks:
    """One masks file of a run: which network, where, and its fields as written."""

    network: str
    path: Path
    data: dict

    @property
    def segments(self) -> list[tuple[int, int]]:
        return [(int(s), int(e)) for s, e in self.data.get("segments", [])]

    @property
    def segment_latency_ms(self) -> list[float] | None:
        values = self.data.get("segment_latency_ms")
        return None if values is None else [float(v) for v in values]


@dataclass
class RunFolder:
    """Everything the report reads from one run folder (``None``/empty where a file is missing)."""

    name: str
    path: Path
    results: pd.DataFrame
    device: dict = field(default_factory=dict)
    config_text: str | None = None
    space: object | None = None  # ChainSpace
    masks: list[NetworkMasks] = field(default_factory=list)
    frontiers: dict[str, pd.DataFrame] = field(default_factory=dict)
    validation: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def lut_path(self) -> Path | None:
        path = self.path / "lut.csv"
        return path if path.is_file() else None

    @property
    def importance_unit(self) -> str:
        """What the run's importance scores measure: the masks method's are mask scores, not points."""
        try:
            units = pd.read_csv(self.path / "importance.csv", usecols=["unit"])["unit"].dropna()
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            units = pd.Series(dtype=str)  # no file, or a method that writes no unit: accuracy points
        return str(units.iloc[0]) if len(units) else "est. accuracy change, points"

    @property
    def peak_flops_per_s(self) -> float | None:
        value = _number(self.device.get("peak_flops_per_s"))
        return value if value and value > 0 else None


def load_runs(paths: list[str | os.PathLike]) -> list[RunFolder]:
    """Read every run folder; names are the folder names, made unique with the folders above (:func:`run_names`)."""
    if not paths:
        raise DepthshrinkError("give at least one run folder")
    resolved = [Path(p).resolve() for p in paths]
    for path, given in zip(resolved, paths):
        if resolved.count(path) > 1:
            raise DepthshrinkError(f"run folder {given} is given more than once")
    return [load_run(given, name) for given, name in zip(paths, run_names(resolved))]


def run_names(folders: list[Path]) -> list[str]:
    """Each folder's shortest trailing path that no other folder's ends with (``run``, ``x/run``,
    ``a/x/run``): what the page and the figures' file names call it."""
    names = []
    for folder in folders:
        depth = 1
        while depth < len(folder.parts) and any(other != folder and other.parts[-depth:] == folder.parts[-depth:]
                                                 for other in folders):
            depth += 1
        names.append("/".join(folder.parts[-depth:]))
    return names


def load_run(path: str | os.PathLike, name: str | None = None) -> RunFolder:
    """One run folder; raises when it does not exist or holds no readable ``results.csv``."""
    folder = Path(path)
    if not folder.is_dir():
        raise DepthshrinkError(f"run folder {path} does not exist" if not folder.exists()
                               else f"run folder {path} is not a folder")
    run = RunFolder(name or folder.resolve().name, folder, read_results(folder / "results.csv"))
    run.missing = [f for f in STAGE_FILES if not (folder / f.rstrip("/")).exists()]
    run.device = _read_json_or_note(folder / "device.json", run, dict) or {}
    run.validation = _read_json_or_note(folder / "lut.validation.json", run, list) or []
    if (folder / "config.toml").is_file():
        run.config_text = (folder / "config.toml").read_text(errors="replace")
    run.space = _read_space(folder / "space.json", run)
    run.masks, run.frontiers = _read_search(folder, run)
    return run


def read_results(path: Path) -> pd.DataFrame:
    """``results.csv`` of a run, with ``kind`` filled from the network name where empty."""
    if not path.is_file():
        raise DepthshrinkError(f"run folder {path.parent} holds no results.csv: run "
                               "'depthshrink run' to completion first (or give the right folder)")
    try:
        frame = pd.read_csv(path, dtype={"network": str, "kind": str, "budget": str, "masks": str,
                                         "device": str, "backend": str})
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DepthshrinkError(f"{path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    if "network" not in frame.columns or frame.empty:
        raise DepthshrinkError(f"{path} holds no results (it needs a 'network' column and one row per network)")
    if "run" in frame.columns:
        raise DepthshrinkError(f"{path} is a report's combined table (it has a 'run' column): give the run "
                               "folders the report was made of")
    frame["network"] = frame["network"].fillna("").astype(str)
    if "kind" not in frame.columns:
        frame["kind"] = None
    frame["kind"] = [k if isinstance(k, str) and k else _kind_of(n) for k, n in zip(frame["kind"], frame["network"])]
    return frame


def _kind_of(network: str) -> str:
    prefix = re.split(r"[-_@]", network.lower(), maxsplit=1)[0]
    return prefix if prefix in KINDS else "other"


def _read_json_or_note(path: Path, run: RunFolder, kind: type):
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        run.notes.append(f"{run.name}: {path.name} is not valid JSON ({exc}); left out")
        return None
    if not isinstance(data, kind):
        run.notes.append(f"{run.name}: {path.name} does not hold a JSON {kind.__name__}; left out")
        return None
    return data


def _read_space(path: Path, run: RunFolder):
    from ..contracts.space import ChainSpace

    if not path.is_file():
        return None
    try:
        return ChainSpace.from_json(path)
    except (DepthshrinkError, KeyError, TypeError, ValueError) as exc:
        run.notes.append(f"{run.name}: space.json cannot be read ({exc}); merged kernel sizes are not shown")
        return None


def _read_search(folder: Path, run: RunFolder) -> tuple[list[NetworkMasks], dict[str, pd.DataFrame]]:
    """Masks files (``search/*.json`` and those named in results.csv) and frontier CSVs; with results, only
    of the networks they hold (a budget dropped from the config left its files, and its figures)."""
    listed = set(run.results["network"].astype(str)) | {"original"} if "network" in run.results else None

    def wanted(name: str) -> bool:
        return listed is None or name in listed

    paths = sorted(p for p in (folder / "search").glob("*.json") if wanted(p.name.removesuffix(".json"))) \
        if (folder / "search").is_dir() else []
    for value in run.results.get("masks", pd.Series(dtype=str)).dropna():
        path = folder / str(value)
        folder_missing = any(str(value).startswith(m) for m in run.missing if m.endswith("/"))
        if str(value).strip() and not path.is_file():
            if not folder_missing:
                run.missing.append(str(value))
        elif str(value).strip() and path.resolve() not in {p.resolve() for p in paths}:
            paths.append(path)
    masks = []
    for path in paths:
        data = _read_json_or_note(path, run, dict)
        if data is not None and data.get("format") == MASKS_FORMAT:
            masks.append(NetworkMasks(path.name.removesuffix(".json"), path, data))
    masks.sort(key=lambda m: (m.network != "original", m.network))
    frontiers = {}
    for path in sorted((folder / "search").glob("*.frontier.csv")) if (folder / "search").is_dir() else []:
        if not wanted(path.name.removesuffix(".frontier.csv")):
            continue
        try:
            frontiers[path.name.removesuffix(".frontier.csv")] = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            run.notes.append(f"{run.name}: {path.name} cannot be read ({str(exc).splitlines()[0]}); left out")
    return masks, frontiers


def legend_label(device, backend=None, threads=None) -> str:
    """How a measurement setting is named in titles and legends: device, backend, threads."""
    parts = [str(device) if _present(device) else "unknown device"]
    if _present(backend):
        parts.append(str(backend))
    number = _number(threads)
    if number is not None:
        parts.append(f"{int(number)} thread" + ("s" if number != 1 else ""))
    return ", ".join(parts)


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value) != ""


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def file_name(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"
