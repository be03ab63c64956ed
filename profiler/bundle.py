"""A profiling bundle: one ONNX file per configuration plus ``manifest.json``.

Reading a bundle needs no PyTorch, so a Jetson or GPU box with only TensorRT, pycuda, numpy
and pandas can profile a bundle exported elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts.space import ChainSpace, ConvShape, read_json, whole_number
from ..errors import DepthshrinkError

BUNDLE_FORMAT = "depthshrink.bundle/1"
CORPUS_FORMAT = "depthshrink.bundle/2"  # a corpus: no space, no network (older readers refuse it clearly)
MANIFEST = "manifest.json"
CONV_FIELDS = tuple(ConvShape.__dataclass_fields__)  # what a conv entry records of its shape


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
    problem = _manifest_problem(data)
    if problem:  # a manifest edited by hand: one line, not a KeyError or a row of nonsense in the LUT
        raise DepthshrinkError(f"{manifest}: {problem}")
    entries = []
    for item in data["entries"]:
        extra = {k: v for k, v in item.items() if k not in ("key", "op", "file", "inputs")}
        entry = Entry(item["key"], item["op"], item["file"], item["inputs"], extra)
        if not (folder / entry.file).exists():
            raise DepthshrinkError(f"bundle {folder} lacks {entry.file}: copy the whole folder")
        entries.append(entry)
    space_file = data.get("space", "space.json")
    space = ChainSpace.from_json(folder / space_file) if space_file else None
    if space is not None and not any(e.op == "fixed" for e in entries):
        raise DepthshrinkError(f"{manifest}: a network's bundle needs its fixed entry (stem and head)")
    return Bundle(folder, data["model"], data["model_label"], data["batch_size"], entries, space)


def _manifest_problem(data: dict) -> str | None:
    """What makes a manifest unreadable as a bundle, or None."""
    if not isinstance(data.get("model"), dict) or not isinstance(data.get("model_label"), str):
        return "model (a table) and model_label (a text) are needed"
    if not whole_number(data.get("batch_size")):
        return f"batch_size must be a positive integer, not {data.get('batch_size')!r}"
    if not isinstance(data.get("entries"), list) or not data["entries"]:
        return "entries must be a non-empty list"
    for item in data["entries"]:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("key", "op", "file")):
            return f"every entry needs a key, an op and a file: {item!r}"
        if item["op"] not in ("conv", "fixed", "network"):
            return f"entry {item['key']}: op {item['op']!r} is not conv, fixed or network"
        inputs = item.get("inputs")
        if not isinstance(inputs, dict) or not inputs or not all(
                isinstance(shape, list) and shape and all(whole_number(d) for d in shape) for shape in inputs.values()):
            return f"entry {item['key']}: inputs must map names to shapes of positive integers"
        if any(shape[0] != data["batch_size"] for shape in inputs.values()):  # ONNX files of another batch
            return f"entry {item['key']}: its inputs are not of batch {data['batch_size']}, the manifest's"
        if item["op"] == "conv" and not all(whole_number(item.get(k), 0 if k == "padding" else 1) for k in CONV_FIELDS):
            return f"entry {item['key']}: {', '.join(CONV_FIELDS)} must be integers (padding from 0, others from 1)"
        if item["op"] == "network" and not (isinstance(item.get("segments"), list) and all(
                isinstance(s, list) and len(s) == 2 and all(whole_number(x, 0) for x in s) for s in item["segments"])):
            return f"entry {item['key']}: segments must be [start, end] pairs of integers"
    return None
