"""A network and its chain space from a typed description (what ``--model`` and its options say),
with its weights loaded strictly, or adapted when training starts from another dataset's."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn

from ..contracts.space import ChainSpace
from ..errors import DepthshrinkError
from .registry import build_model, default_width, min_resolution


@dataclass(frozen=True)
class ModelSpec:
    """A zoo name or ``package.module:factory`` and its options (``None``: the builder's default)."""

    name: str
    resolution: int
    width_mult: float | None = None
    in_channels: int | None = None
    num_classes: int | None = None
    weights: str | None = None          # a state_dict (or a checkpoint holding one) to load
    strided_merge: str = "pointwise"    # after a strided conv: only 1x1 convs in a span, or any kernel
    stem_convs: int = 1                 # main-path convs kept out of the chain at either end
    head_convs: int = 1


def build_space(spec: ModelSpec, adapt_weights: bool = False) -> tuple[nn.Module, ChainSpace]:
    """(the model in eval mode, its chain space); see :func:`load_weights` for ``adapt_weights``."""
    from .trace import trace

    smallest = min_resolution(spec.name)
    if smallest is not None and spec.resolution < smallest:
        raise DepthshrinkError(f"resolution {spec.resolution} is too small for {spec.name} "
                               f"(total stride {smallest}): use at least {smallest}")
    model = build_model(spec.name, width_mult=spec.width_mult, in_channels=spec.in_channels,
                        num_classes=spec.num_classes)
    if spec.weights:
        load_weights(model, spec.weights, adapt_weights)
    model.eval()
    in_channels = spec.in_channels or _first_conv_in_channels(model)
    # the width as given: None (the builder's default) rebuilds a factory that takes no width, and the
    # masks and labels read None as 1x (contracts.masks, contracts.candidates); a default other than 1
    # is recorded (a factory defaulting to 0.5 was labelled 1x, its rows taken for the 1x network's)
    default = default_width(spec.name) if spec.width_mult is None else None
    width = spec.width_mult if default is None or default == 1.0 else default
    info = {"name": spec.name, "width_mult": width, "resolution": spec.resolution}
    example = torch.zeros(1, in_channels, spec.resolution, spec.resolution)
    space = trace(model, example, model_info=info, stem_convs=spec.stem_convs, head_convs=spec.head_convs,
                  strided_merge=spec.strided_merge)
    return model, space


def load_weights(model: nn.Module, path: str, adapt: bool = False) -> None:
    """Load a state_dict (or a checkpoint holding one) into ``model``, strictly.

    With ``adapt`` (training starts from the weights, e.g. ImageNet ones on another dataset), a
    classifier of another class count is left out (the model's own, new one is trained) and RGB
    stem weights are summed over colours for a one-channel input; each change is said on stderr.
    """
    from ..contracts.checkpoints import load_torch_file

    state = load_torch_file(path, "weights")
    if isinstance(state, dict) and isinstance(state.get("spec"), dict) and state["spec"].get("masks"):
        raise DepthshrinkError(f"{path} is a finetune checkpoint (a shrunk network): give the base network's "
                               "weights, or its train checkpoint")
    for key in ("ema", "state_dict", "model"):  # a train checkpoint's averaged weights, as it deploys them
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if adapt and isinstance(state, dict):
        state = _adapt_ends(model, dict(state))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[0]
        raise DepthshrinkError(f"weights {path} do not fit this model: {first}") from None


def _adapt_ends(model: nn.Module, state: dict) -> dict:
    own = model.state_dict()
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    stem = f"{convs[0]}.weight" if convs else None
    if stem in state and state[stem].shape[1] == 3 and own[stem].shape[1] == 1:
        state[stem] = state[stem].sum(dim=1, keepdim=True)
        print(f"note: {stem}: RGB weights summed over colours for a one-channel input", file=sys.stderr)
    head = linears[-1] if linears else None
    keys = [k for k in (f"{head}.weight", f"{head}.bias") if k in state and k in own]
    if keys and any(state[k].shape != own[k].shape for k in keys):
        print(f"note: {head}: the weights' classifier has {state[keys[0]].shape[0]} outputs, not "
              f"{own[keys[0]].shape[0]}: it is left out and the model's own is trained", file=sys.stderr)
        state.update({k: own[k] for k in keys})
    return state


def _first_conv_in_channels(model: nn.Module) -> int:
    """The input channels of the first conv the model runs (one registered first may run later)."""
    from .ops import symbolic_trace

    try:
        run = [model.get_submodule(n.target) for n in symbolic_trace(model).graph.nodes if n.op == "call_module"]
    except DepthshrinkError:  # not traceable: the tracer says why later; registration order meanwhile
        run = list(model.modules())
    conv = next((m for m in run if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise DepthshrinkError("the model has no Conv2d")
    return conv.in_channels
