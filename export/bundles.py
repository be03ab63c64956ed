"""Write a profiling bundle from a PyTorch model (the only part of profiling that needs torch)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..contracts.candidates import Candidate, distinct_candidates, model_label
from ..contracts.masks import per_block_masks
from ..contracts.space import ChainSpace, write_json_atomic
from ..errors import DepthshrinkError
from ..lut.table import CORPUS as CORPUS_LABEL
from ..models.ops import ACTIVATION_BY_NAME
from ..profiler.bundle import MANIFEST, Bundle, Entry
from ..shrink.apply import apply_masks
from ..shrink.merge import merge
from .corpus import CorpusSpec, sample_candidates
from .fixed import fixed_part
from .onnx import export_onnx


class CandidateBlock(nn.Module):
    """conv (+bias) → optional residual add → optional activation: one LUT configuration."""

    def __init__(self, candidate: Candidate) -> None:
        super().__init__()
        s = candidate.shape
        self.conv = nn.Conv2d(s.in_channels, s.out_channels, s.kernel_size, s.stride, s.padding,
                              groups=s.groups, bias=True)
        self.residual_add = candidate.residual_add
        self.act = ACTIVATION_BY_NAME[candidate.activation]() if candidate.activation else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        y = self.conv(x)
        if self.residual_add:
            y = y + skip
        return self.act(y)


def _make_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DepthshrinkError(f"cannot create bundle folder {folder}: {exc.strerror}") from None
    # a bundle exported again: its files are rewritten before its manifest, so the old manifest goes
    # first (killed half-way, the folder is no bundle, not an old manifest naming the new files)
    (folder / MANIFEST).unlink(missing_ok=True)
    return folder


def _export_candidates(candidates: list[Candidate], batch_size: int, folder: Path, progress: bool) -> list[Entry]:
    """One ONNX file per configuration (files already there are kept)."""
    entries = []
    for candidate in tqdm(candidates, desc="export", unit="onnx", disable=not progress):
        inputs = candidate.input_shapes(batch_size)
        file = f"{candidate.key}_b{batch_size}.onnx"
        if not (folder / file).exists():
            examples = tuple(torch.randn(*shape) for shape in inputs.values())
            export_onnx(CandidateBlock(candidate), examples, folder / file, list(inputs))
        entries.append(Entry(candidate.key, "conv", file, inputs, candidate.lut_fields()))
    return entries


def export_corpus(spec: CorpusSpec, batch_size: int, folder: str | os.PathLike, progress: bool = True) -> Bundle:
    """A bundle of sampled configurations (see :mod:`.corpus`): conv entries only, no network."""
    folder = _make_folder(folder)
    entries = _export_candidates(sample_candidates(spec), batch_size, folder, progress)
    bundle = Bundle(folder, {"corpus": spec.to_dict()}, CORPUS_LABEL, batch_size, entries, None)
    write_json_atomic(folder / MANIFEST, bundle.to_manifest())
    return bundle


def corpus_module(entry: Entry) -> nn.Module:
    """The PyTorch module of a corpus entry (the torch backend)."""
    return CandidateBlock(Candidate.from_fields(entry.fields))


def export_bundle(model: nn.Module, space: ChainSpace, batch_size: int, folder: str | os.PathLike,
                  networks: bool = True, progress: bool = True) -> Bundle:
    """Export every configuration (and the fixed part, and whole networks) as ONNX files."""
    check_timeable(model, space)
    folder = _make_folder(folder)
    model = model.eval()
    entries = _export_candidates(distinct_candidates(space), batch_size, folder, progress)
    label = model_label(space.model)
    info = space.model
    image = [batch_size, info["in_channels"], info["height"], info["width"]]
    last = space.layers[-1].shape
    chain_out = [batch_size, last.out_channels, *Candidate(last, None, False).output_size]
    fixed_file = f"fixed_b{batch_size}.onnx"
    fixed = fixed_part(model, space)
    fixed_inputs = fixed.input_shapes(image, chain_out)
    export_onnx(fixed.module, tuple(torch.randn(*shape) for shape in fixed_inputs.values()),
                folder / fixed_file, list(fixed_inputs))
    entries.append(Entry("fixed", "fixed", fixed_file, fixed_inputs, {"model": label}))
    if networks:
        masks = per_block_masks(space)
        variants = {"original": (model, [[p, p + 1] for p in range(space.num_layers)]),
                    "merged_blocks": (merge(apply_masks(model, space, masks).eval()),
                                      [list(s) for s in masks.segments])}
        for name, (net, segments) in variants.items():
            export_onnx(net, torch.randn(*image), folder / f"network_{name}_b{batch_size}.onnx")
            entries.append(Entry(f"network_{name}", "network", f"network_{name}_b{batch_size}.onnx", {"input": image},
                                 {"model": label, "segments": segments}))
    space.to_json(folder / "space.json")
    bundle = Bundle(folder, info, label, batch_size, entries, space)
    write_json_atomic(folder / MANIFEST, bundle.to_manifest())  # last: a bundle is whole or absent
    return bundle


def check_timeable(model: nn.Module, space: ChainSpace) -> None:
    """Refuse a chain layer a LUT row cannot describe (a row is a square, undilated conv with symmetric
    padding): it would be timed as another conv (a dilated 3x3 as an undilated one)."""
    for layer in space.layers:
        conv = model.get_submodule(layer.module)
        odd = [what for what, found in (
            ("a dilation", conv.dilation != (1, 1)),
            ("a non-square kernel or stride", conv.kernel_size[0] != conv.kernel_size[1] or conv.stride[0] != conv.stride[1]),
            ("asymmetric padding", isinstance(conv.padding, str) and conv.kernel_size[0] % 2 == 0 and conv.padding != "valid"
             or not isinstance(conv.padding, str) and conv.padding[0] != conv.padding[1])) if found]
        if odd:
            raise DepthshrinkError(f"layer {layer.index} ({layer.module}) has {' and '.join(odd)}: latency tables time "
                                   "square, undilated convs, so it would be timed as another conv; keep it out of "
                                   "the chain (--stem-convs, --head-convs) to profile this model")


def module_builder(model: nn.Module, space: ChainSpace):
    """PyTorch modules for the entries of a bundle exported from ``model`` (the torch backend)."""
    check_timeable(model, space)
    def build(entry: Entry) -> nn.Module:
        if entry.op == "conv":
            return CandidateBlock(Candidate.from_fields(entry.fields))
        if entry.op == "fixed":
            return fixed_part(model, space).module
        if entry.key == "network_original":
            return model
        return merge(apply_masks(model, space, per_block_masks(space)).eval())
    return build

