"""Rebuild networks from the plain specs stored beside their weights (no pickled modules):
a checkpoint's ``spec`` names the model (and, after finetuning, its masks)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..contracts.masks import Masks
from ..contracts.space import ChainSpace
from ..errors import DepthshrinkError

MERGED_FORMAT = "depthshrink.merged/1"


def build_from_spec(info: dict) -> tuple[nn.Module, ChainSpace]:
    """The base network and its chain space, as ``info`` (a chain space's ``model``) describes them."""
    from ..models import build_model
    from ..models.registry import takes
    from ..models.trace import trace

    if not info or "name" not in info:
        raise DepthshrinkError("the file does not say which model it holds")
    # the traced input channels and classes, to a builder that takes them (another's were its defaults)
    traced = {k: info.get(k) for k in ("in_channels", "num_classes") if takes(info["name"], k)}
    model = build_model(info["name"], width_mult=info.get("width_mult"), **traced).eval()
    example = torch.zeros(1, info["in_channels"], info["height"], info["width"])
    space = trace(model, example, model_info={k: info[k] for k in ("name", "width_mult", "resolution") if k in info},
                  stem_convs=info.get("stem_convs", 1), head_convs=info.get("head_convs", 1),
                  strided_merge=info.get("strided_merge", "pointwise"))
    return model, space


def load_into(module: nn.Module, state: dict, source: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise DepthshrinkError(f"{source} does not fit this network: {str(exc).splitlines()[0]}") from None


def network_from_checkpoint(state: dict, source: str) -> nn.Module:
    """A train checkpoint gives the base network; a finetune checkpoint the shrunk one."""
    from .apply import apply_masks

    spec = state.get("spec") or {}
    model, space = build_from_spec(spec.get("model"))
    if spec.get("masks"):
        model = apply_masks(model, space, Masks.from_dict(spec["masks"]))
    load_into(model, state.get("ema") or state["model"], source)  # the EMA weights when training kept them
    return model.eval()


# how a network is cut into a chain (which spans are legal), not what it computes: masks searched on
# a space traced another way than the base's checkpoint records are applied to the base traced so
CHAIN_KEYS = ("strided_merge", "stem_convs", "head_convs")


def load_base_network(path: str | os.PathLike, chain: dict | None = None) -> tuple[nn.Module, ChainSpace]:
    """The base network of a ``train`` checkpoint (its EMA weights when it kept them) and its space,
    traced with ``chain``'s :data:`CHAIN_KEYS` where given (a masks file's); a shrunk (finetune)
    checkpoint is refused."""
    from ..contracts.checkpoints import load_checkpoint

    state = load_checkpoint(path)
    if (state.get("spec") or {}).get("masks"):
        raise DepthshrinkError(f"{path} is already shrunk: give the base network's checkpoint")
    info = (state.get("spec") or {}).get("model")
    if info and chain:
        info = {**info, **{k: chain[k] for k in CHAIN_KEYS if k in chain}}
    model, space = build_from_spec(info)
    load_into(model, state.get("ema") or state["model"], str(path))
    return model.eval(), space


def save_merged(folder: str | os.PathLike, merged: nn.Module, spec: dict) -> None:
    folder = Path(folder)
    torch.save(merged.state_dict(), folder / "merged.pt")
    (folder / "merged.json").write_text(json.dumps({"format": MERGED_FORMAT, **spec}, indent=1) + "\n")


def load_merged(folder: str | os.PathLike) -> nn.Module:
    """A merged network from ``merged.json`` (its spec) and ``merged.pt`` (``weights_only``)."""
    from .apply import apply_masks
    from .merge import merge

    folder = Path(folder)
    try:
        spec = json.loads((folder / "merged.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DepthshrinkError(f"{folder} holds no readable merged.json: {exc}") from None
    if spec.get("format") != MERGED_FORMAT or "model" not in spec or "masks" not in spec:
        raise DepthshrinkError(f"{folder}/merged.json is not a merged-model spec")
    model, space = build_from_spec(spec["model"])
    merged = merge(apply_masks(model, space, Masks.from_dict(spec["masks"])).eval(), tolerance=float("inf"))
    from ..contracts.checkpoints import load_torch_file

    state = load_torch_file(folder / "merged.pt", "merged weights")
    if not isinstance(state, dict):
        raise DepthshrinkError(f"{folder}/merged.pt holds no state_dict")
    load_into(merged, state, str(folder))
    return merged.eval()
