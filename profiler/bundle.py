"""A profiling bundle: one ONNX file per configuration plus ``manifest.json``.

Reading a bundle needs no PyTorch, so a Jetson or GPU box with only TensorRT, pycuda, numpy
and pandas can profile a bundle exported elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts.space import ChainSpace, read_json
from ..errors import DepthshrinkError

BUNDLE_FORMAT = "depthshrink.bundle/1"
CORPUS_FORMAT = "depthshrink.bundle/2"  # a corpus: no space, no network (older readers refuse it clearly)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Entry:
    """One thing to time: a conv configuration, the fixed part, or a whole network."""

    key: str
    op: str                         # "conv", "fixed" or "network"
    file: str                       # ONNX file, relative to the bundle folder
    inputs: dict[str, list[int]]    # input name -> shape
    fields: dict = field(default_factory=dict)  # LUT columns of a conv; segments of a network


@dataclass
class Bundle:
    folder: Path
    model: dict
    model_label: str
    batch_size: int
    entries: list[Entry]
    space: ChainSpace | None        # None for a corpus

    def path(self, entry: Entry) -> Path:
        return self.folder / entry.file

    def of_op(self, op: str) -> list[Entry]:
        return [e for e in self.entries if e.op == op]

    def to_manifest(self) -> dict:
        return {"format": BUNDLE_FORMAT if self.space is not None else CORPUS_FORMAT,
                "model": self.model, "model_label": self.model_label,
                "batch_size": self.batch_size,
                "space": "space.json" if self.space is not None else None,
                "entries": [{"key": e.key, "op": e.op, "file": e.file, "inputs": e.inputs, **e.fields}
                            for e in self.entries]}


def load_bundle(folder: str | os.PathLike) -> Bundle:
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.exists():
        raise DepthshrinkError(f"{folder} is not a profiling bundle (no {MANIFEST}); make one with "
                               "'depthshrink export-bundle'")
    data = read_json(manifest, "bundle manifest")
    if data.get("format") not in (BUNDLE_FORMAT, CORPUS_FORMAT):
        raise DepthshrinkError(f"{manifest}: format is {data.get('format')!r}, expected {BUNDLE_FORMAT!r} "
                               f"or {CORPUS_FORMAT!r}")
    entries = []
    for item in data["entries"]:
        extra = {k: v for k, v in item.items() if k not in ("key", "op", "file", "inputs")}
        entry = Entry(item["key"], item["op"], item["file"], item["inputs"], extra)
        if not (folder / entry.file).exists():
            raise DepthshrinkError(f"bundle {folder} lacks {entry.file}: copy the whole folder")
        entries.append(entry)
    space_file = data.get("space", "space.json")
    space = ChainSpace.from_json(folder / space_file) if space_file else None
    return Bundle(folder, data["model"], data["model_label"], int(data["batch_size"]), entries, space)
