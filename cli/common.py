"""Option groups shared by several subcommands, and what they build."""

from __future__ import annotations

import argparse
import math

from ..errors import DepthshrinkError

# the options beside --model (None when not given: their defaults are filled in by model_spec)
MODEL_OPTIONS = ("width_mult", "resolution", "in_channels", "num_classes", "weights", "strided_merge", "stem_convs",
                 "head_convs")


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
    group.add_argument("--strided-merge", choices=("pointwise", "any"),
                       help="after a strided conv, allow only 1x1 convs inside a span (pointwise, "
                            "default) or any kernel (grows by stride*(k-1))")
    group.add_argument("--stem-convs", type=non_negative_int,
                       help="main-path convs at the start kept out of the chain (default 1)")
    group.add_argument("--head-convs", type=non_negative_int,
                       help="main-path convs at the end kept out of the chain (default 1)")


def refuse_model_options(args: argparse.Namespace, reason: str, keep: tuple[str, ...] = ()) -> None:
    """Refuse model options given where no --model is built (they would be ignored); ``keep``: options
    that are used there too."""
    given = [f"--{name.replace('_', '-')}" for name in MODEL_OPTIONS if name not in keep and getattr(args, name) is not None]
    if given:
        raise DepthshrinkError(f"{', '.join(given)} describe a --model: {reason}")


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device corpus (instead of --model)")
    group.add_argument("--corpus", type=positive_int, metavar="N",
                       help="N conv configurations sampled for networks of --resolution, not taken from one model: "
                            "their rows train the latency predictor for every network on this device")
    group.add_argument("--corpus-seed", type=non_negative_int, default=0, help="which sample (default 0)")


def corpus_spec(args: argparse.Namespace, exclusive: bool = True):
    """The corpus the options ask for, or None; with ``exclusive``, exactly one of --model and --corpus
    (profile-device checks that itself: it also takes --bundle)."""
    if exclusive and bool(args.model) == bool(args.corpus):
        raise DepthshrinkError("give either --model or --corpus (with --resolution)")
    if not args.corpus:
        if args.corpus_seed:
            raise DepthshrinkError("--corpus-seed needs --corpus")
        return None
    refuse_model_options(args, "--corpus samples conv configurations, not a model's", keep=("resolution",))
    if args.resolution is None:
        raise DepthshrinkError("--corpus needs --resolution")
    from ..export.corpus import CorpusSpec
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
    from ..contracts.setting import SETTING_COLUMNS

    return {k: getattr(args, k) for k in SETTING_COLUMNS}


def model_spec(args: argparse.Namespace):
    """The model the options describe (``--model`` and the options beside it)."""
    from ..models.build import ModelSpec

    if args.resolution is None:
        raise DepthshrinkError("--model needs --resolution")
    return ModelSpec(args.model, args.resolution, args.width_mult, args.in_channels, args.num_classes, args.weights,
                     args.strided_merge or "pointwise", 1 if args.stem_convs is None else args.stem_convs,
                     1 if args.head_convs is None else args.head_convs)


def build_space(args: argparse.Namespace, adapt_weights: bool = False):
    """(model in eval mode, chain space) from the model options."""
    from ..models.build import build_space as build

    return build(model_spec(args), adapt_weights)


def _number(kind: type, low: float, what: str, high: float = math.inf):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high or (low == 0 and kind is float and value == 0):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


positive_int = _number(int, 1, "a positive integer")
non_negative_int = _number(int, 0, "a non-negative integer")
positive_float = _number(float, 0, "a positive number")


def seed(text: str) -> int:
    """A run's seed, refused here when torch or numpy would refuse it after the data has loaded."""
    from ..training.ranks import MAX_SEED  # the training commands import torch anyway

    return _number(int, 0, f"an integer from 0 to {MAX_SEED}", MAX_SEED)(text)
