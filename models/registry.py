"""A strict, listable registry of model builders, plus ``package.module:factory`` references."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from ..errors import DepthshrinkError
from .efficientnet_lite import EfficientNetLite
from .mobilenetv2 import MobileNetV2, StageSpec
from .mobilenetv3 import mobilenet_v3_large, mobilenet_v3_small


@dataclass(frozen=True)
class ZooEntry:
    """A registered network: its builder, total stride and a one-line description."""

    name: str
    builder: Callable[..., nn.Module]
    total_stride: int
    description: str
    defaults: dict = field(default_factory=dict)


_TINY_STAGES = (StageSpec(1, 8, 1, 1), StageSpec(4, 16, 2, 2), StageSpec(4, 24, 2, 1))


def _entries() -> dict[str, ZooEntry]:
    entries = [
        ZooEntry("mobilenet_v2", MobileNetV2, 32, "MobileNetV2, torchvision keys (ImageNet-size input)"),
        ZooEntry("mobilenet_v2_small", MobileNetV2, 8,
                 "MobileNetV2 for 28-64 px input: stem and stage 2 at stride 1",
                 {"small_input": True}),
        ZooEntry("efficientnet_lite0", EfficientNetLite, 32, "EfficientNet-Lite0, timm keys"),
        ZooEntry("efficientnet_lite0_small", EfficientNetLite, 8,
                 "EfficientNet-Lite0 for 28-64 px input", {"small_input": True}),
        ZooEntry("mobilenet_v3_large", mobilenet_v3_large, 32,
                 "MobileNetV3-Large, torchvision keys (SE gates are merge barriers)"),
        ZooEntry("mobilenet_v3_small", mobilenet_v3_small, 32,
                 "MobileNetV3-Small, torchvision keys (SE gates are merge barriers)"),
        ZooEntry("tiny_mobilenet", MobileNetV2, 2,
                 "5-block MobileNetV2-style test network (fast)", {"stages": _TINY_STAGES}),
    ]
    return {entry.name: entry for entry in entries}


ZOO = _entries()


def list_models() -> list[str]:
    """Names of the registered networks, sorted."""
    return sorted(ZOO)


def _load_factory(reference: str) -> Callable[..., nn.Module]:
    module_name, _, attr = reference.partition(":")
    if not module_name or module_name.startswith(".") or not attr:  # importlib: ValueError, TypeError
        raise DepthshrinkError(f"--model {reference}: write an absolute package.module:factory")
    try:
        module = _import_here(module_name)
    except ImportError as exc:
        raise DepthshrinkError(f"cannot import '{module_name}' for --model {reference}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise DepthshrinkError(f"'{attr}' in module '{module_name}' is not a callable factory")
    return factory


def _import_here(module_name: str):
    """Import ``module_name``, also from the working folder: the ``depthshrink`` console script,
    unlike ``python -m``, does not put it on the path, where a user's ``mynet.py`` lies."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if exc.name != module_name.split(".")[0] or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)  # after the installed packages: a local file shadows none of them
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError:  # not there either, or found and missing a module of its own: say which
            sys.path.remove(here)
            raise


def _takes(builder: Callable[..., nn.Module], option: str) -> bool:
    """Whether ``builder`` takes keyword ``option`` (a signature it hides: assume so)."""
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return True
    return option in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _accepted(builder: Callable[..., nn.Module], kwargs: dict) -> dict:
    """Keep the given keyword arguments, refusing those the builder cannot take."""
    given = {k: v for k, v in kwargs.items() if v is not None}
    unknown = sorted(k for k in given if not _takes(builder, k))
    if unknown:
        raise DepthshrinkError(f"{getattr(builder, '__name__', builder)} takes no {', '.join(unknown)}")
    return given


def takes(name: str, option: str) -> bool:
    """Whether the builder of ``name`` (zoo or ``package.module:factory``) takes ``option``."""
    return _takes(_load_factory(name) if ":" in name else getattr(ZOO.get(name), "builder", None), option)


def default_width(name: str) -> float | None:
    """The width the builder of ``name`` uses when given none: its ``width_mult`` default, if a number."""
    builder = _load_factory(name) if ":" in name else getattr(ZOO.get(name), "builder", None)
    try:
        default = inspect.signature(builder).parameters["width_mult"].default
    except (KeyError, TypeError, ValueError):  # no such parameter, or no signature to read
        return None
    return float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else None


def build_model(name: str, *, width_mult: float | None = None, in_channels: int | None = None,
                num_classes: int | None = None) -> nn.Module:
    """Build a zoo network by name, or call ``package.module:factory``.

    Options left ``None`` keep the builder's defaults; an option the builder does not take is
    refused rather than silently ignored.
    """
    options = {"width_mult": width_mult, "in_channels": in_channels, "num_classes": num_classes}
    if ":" in name:
        factory = _load_factory(name)
        try:
            model = factory(**_accepted(factory, options))
        except DepthshrinkError:
            raise
        except Exception as exc:  # the user's own code: its error, in one line
            first = (str(exc).splitlines() or [""])[0]
            raise DepthshrinkError(f"--model {name}: the factory raised {type(exc).__name__}: {first}") from None
    else:
        entry = ZOO.get(name)
        if entry is None:
            raise DepthshrinkError(f"unknown model '{name}'; known models: {', '.join(list_models())} "
                                   "(or give package.module:factory)")
        try:
            model = entry.builder(**entry.defaults, **_accepted(entry.builder, options))
        except (OverflowError, MemoryError, TypeError, RuntimeError) as exc:
            # --width-mult 1e308 or 1e20, --in-channels 10**23: channel counts past any tensor or memory
            first = (str(exc).splitlines() or [""])[0]
            if not isinstance(exc, (OverflowError, MemoryError)) and "overflow" not in first.lower() \
                    and "allocate" not in first:
                raise
            given = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items() if v is not None)
            raise DepthshrinkError(f"{name} cannot be built with {given}: {type(exc).__name__}: {first[:120]}") from None
    if not isinstance(model, nn.Module):
        raise DepthshrinkError(f"--model {name} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def min_resolution(name: str) -> int | None:
    """Smallest input size whose final feature map is at least 1×1 (zoo models only)."""
    entry = ZOO.get(name)
    return entry.total_stride if entry else None
