"""Option groups shared by several subcommands, and what they build."""

from __future__ import annotations

import argparse

from ..errors import DepthshrinkError


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required,
                       help="zoo name (an unknown name lists them) or package.module:factory")
    group.add_argument("--width-mult", type=positive_float, help="width multiplier (zoo default 1.0)")
    group.add_argument("--resolution", type=positive_int, required=required, help="input height and width, pixels")
    group.add_argument("--in-channels", type=positive_int, help="input channels (default 3)")
    group.add_argument("--num-classes", type=positive_int, help="classifier outputs (zoo default 1000)")
    group.add_argument("--weights", help="state_dict file to load (torch.load with weights_only=True); for train, "
                                         "another class count or RGB weights for one channel are adapted")
    group.add_argument("--strided-merge", choices=("pointwise", "any"), default="pointwise",
                       help="after a strided conv, allow only 1x1 convs inside a span (pointwise, "
                            "default) or any kernel (grows by stride*(k-1))")
    group.add_argument("--stem-convs", type=non_negative_int, default=1,
                       help="main-path convs at the start kept out of the chain (default 1)")
    group.add_argument("--head-convs", type=non_negative_int, default=1,
                       help="main-path convs at the end kept out of the chain (default 1)")


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device corpus (instead of --model)")
    group.add_argument("--corpus", type=positive_int, metavar="N",
                       help="N conv configurations sampled for networks of --resolution, not taken from one model: "
                            "their rows train the latency predictor for every network on this device")
    group.add_argument("--corpus-seed", type=non_negative_int, default=0, help="which sample (default 0)")


def corpus_spec(args: argparse.Namespace):
    """The corpus the options ask for, or None; exactly one of --model and --corpus."""
    if bool(args.model) == bool(args.corpus):
        raise DepthshrinkError("give either --model or --corpus (with --resolution)")
    if not args.corpus:
        if args.corpus_seed:
            raise DepthshrinkError("--corpus-seed needs --corpus")
        return None
    if args.resolution is None:
        raise DepthshrinkError("--corpus needs --resolution")
    from ..profiler.corpus import CorpusSpec
    return CorpusSpec(args.corpus, args.resolution, args.corpus_seed)


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """Which rows of a LUT to use (a filter left out must have one value in the table)."""
    group = parser.add_argument_group("which LUT rows (default: the only value present)")
    group.add_argument("--device")
    group.add_argument("--backend")
    group.add_argument("--precision")
    group.add_argument("--batch-size", type=positive_int)
    group.add_argument("--threads", type=positive_int)


def setting_filters(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("device", "backend", "precision", "batch_size", "threads")}


def load_weights(model, path: str, adapt: bool = False) -> None:
    """Load a state_dict (or a checkpoint holding one) into ``model``, strictly.

    With ``adapt`` (training starts from the weights, e.g. ImageNet ones on another dataset), a
    classifier of another class count is left out (the model's own, new one is trained) and RGB
    stem weights are summed over colours for a one-channel input; each change is said on stderr.
    """
    from ..training.checkpoints import load_torch_file

    state = load_torch_file(path, "weights")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if adapt and isinstance(state, dict):
        state = _adapt_ends(model, dict(state))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DepthshrinkError(f"weights {path} do not fit this model: {first}") from None


def _adapt_ends(model, state: dict) -> dict:
    import sys

    from torch import nn

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


def build_space(args: argparse.Namespace, adapt_weights: bool = False):
    """(model in eval mode, chain space) from the model options (see :func:`load_weights` for
    ``adapt_weights``)."""
    import torch

    from ..models import build_model, min_resolution
    from ..models.trace import trace

    if args.resolution is None:
        raise DepthshrinkError("--model needs --resolution")
    smallest = min_resolution(args.model)
    if smallest is not None and args.resolution < smallest:
        raise DepthshrinkError(f"resolution {args.resolution} is too small for {args.model} "
                               f"(total stride {smallest}): use at least {smallest}")
    model = build_model(args.model, width_mult=args.width_mult, in_channels=args.in_channels,
                        num_classes=args.num_classes)
    if args.weights:
        load_weights(model, args.weights, adapt_weights)
    model.eval()
    in_channels = args.in_channels or _first_conv_in_channels(model)
    info = {"name": args.model, "width_mult": args.width_mult if args.width_mult is not None else 1.0,
            "resolution": args.resolution}
    example = torch.zeros(1, in_channels, args.resolution, args.resolution)
    space = trace(model, example, model_info=info, stem_convs=args.stem_convs,
                  head_convs=args.head_convs, strided_merge=args.strided_merge)
    return model, space


def _first_conv_in_channels(model) -> int:
    from torch import nn

    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise DepthshrinkError("the model has no Conv2d")
    return conv.in_channels


def _number(kind: type, low: float, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < low or (low == 0 and kind is float and value == 0):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


positive_int = _number(int, 1, "a positive integer")
non_negative_int = _number(int, 0, "a non-negative integer")
positive_float = _number(float, 0, "a positive number")
