"""The pipeline's settings: typed sections read from a TOML file, every key checked.

The defaults are the demo: small-input MobileNetV2-0.5 on Fashion-MNIST, the shipped base, a CPU
LUT measured adaptively in ONNX Runtime, two budgets (verified), a short finetuning on a subset.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DepthshrinkError


@dataclass
class ModelSection:
    name: str = "mobilenet_v2_small"
    width_mult: float = 0.5
    resolution: int = 28
    in_channels: int = 1
    num_classes: int = 10


@dataclass
class DataSection:
    source: str = "fashion-mnist"       # fashion-mnist, a folder with its idx files, or synthetic
    subset: int = 4500                  # training images used (0: all)
    test_images: int = 0                # test images for the final accuracy (0: the whole split)


@dataclass
class TrainSection:
    weights: str = "shipped"            # "shipped": the trained base under weights/ (for the demo's model);
                                        # a base checkpoint from train (used as it is); a plain state_dict
                                        # (e.g. ImageNet weights) trained `epochs` from; "": from scratch
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 4e-5
    augment: bool = False               # random 2-pixel shifts and left-right flips


@dataclass
class ProfileSection:
    luts: list[str] = field(default_factory=list)  # existing LUTs for this device: skips profiling
    budget_fraction: float = 0.4        # share of conv configurations measured (adaptive); 1: all
    threads: int = 1
    min_time_ms: float = 200.0
    passes: int = 3                     # interleaved timing passes, the fastest kept (docs/profiling.md)
    cache_flush: str = "auto"           # onnxruntime: flush the caches before timing a block? auto|on|off (docs/profiling.md)


@dataclass
class ImportanceSection:
    method: str = "zero-shot"           # zero-shot | probe | masks
    max_removed: int = 2                # longest segments scored (activations removed; 0: all)
    bn_images: int = 256
    held_out_images: int = 1000
    probe_steps: int = 50


@dataclass
class SearchSection:
    budgets: list[str] = field(default_factory=lambda: ["1.25x", "1.5x"])
    methods: list[str] = field(default_factory=lambda: ["dp", "depthshrinker"])
    verify: bool = True                 # build each chosen network, time it, tighten until it keeps its budget


@dataclass
class FinetuneSection:
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.02
    weight_decay: float = 4e-5          # the pruned baseline is finetuned with the same schedule
    distill: float = 0.7
    augment: bool = False               # random 2-pixel shifts and left-right flips
    seeds: list[int] = field(default_factory=lambda: [0])  # one finetuning per seed; accuracy: their mean ± SE


@dataclass
class BaselineSection:
    # width networks are trained from scratch with [train]'s schedule, which must be the base's for a
    # fair comparison (bench/pipeline.toml: 30 epochs): none in the demo, whose base ships trained
    width_mults: list[float] = field(default_factory=list)
    pruning_ratios: list[float] = field(default_factory=lambda: [0.3])  # torch-pruning L1 channel pruning
    width_seeds: list[int] = field(default_factory=lambda: [0])  # width networks: one training per seed


@dataclass
class MeasureSection:
    threads: int = 1
    min_time_ms: float = 500.0
    passes: int = 3                     # every network timed in the same interleaved passes (docs/profiling.md)
    throughput_batch_size: int = 64


@dataclass
class PipelineConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    profile: ProfileSection = field(default_factory=ProfileSection)
    importance: ImportanceSection = field(default_factory=ImportanceSection)
    search: SearchSection = field(default_factory=SearchSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    baselines: BaselineSection = field(default_factory=BaselineSection)
    measure: MeasureSection = field(default_factory=MeasureSection)
    seed: int = 0

    def train_schedule(self, seed: int):
        """The schedule of every network trained from the start: the base and the width baselines."""
        from ..training.train import TrainConfig

        t = self.train
        return TrainConfig(t.epochs, t.batch_size, t.lr, weight_decay=t.weight_decay, seed=seed, augment=t.augment)

    def finetune_schedule(self, seed: int):
        """The schedule of every finetuned network: the shrunk ones and the pruned baseline."""
        from ..training.train import TrainConfig

        f = self.finetune
        return TrainConfig(f.epochs, f.batch_size, f.lr, weight_decay=f.weight_decay, distill_weight=f.distill,
                           seed=seed, augment=f.augment)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> PipelineConfig:
        config = cls()
        _check_keys(data, [f.name for f in dataclasses.fields(cls)], source)
        profile = data.get("profile")
        if isinstance(profile, dict) and isinstance(profile.get("cache_flush"), bool):  # run folders before auto
            data = {**data, "profile": {**profile, "cache_flush": "on" if profile["cache_flush"] else "off"}}
        for name, value in data.items():
            default = getattr(config, name)
            if dataclasses.is_dataclass(default):
                if not isinstance(value, dict):
                    raise DepthshrinkError(f"{source}: [{name}] must be a table")
                setattr(config, name, _section(type(default), value, f"{source} [{name}]"))
            else:
                setattr(config, name, _typed(value, type(default), f"{source}: {name}"))
        if config.profile.cache_flush not in ("auto", "on", "off"):
            raise DepthshrinkError(f"{source} [profile] cache_flush must be auto, on or off")
        for section in ("profile", "measure"):
            if getattr(config, section).passes < 1:
                raise DepthshrinkError(f"{source} [{section}] passes must be at least 1")
        _check_values(config, source)
        return config

    @classmethod
    def read(cls, path: str | Path) -> PipelineConfig:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise DepthshrinkError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DepthshrinkError(f"{path} is not valid TOML: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(data, str(path))

    def to_toml(self) -> str:
        lines = [f"seed = {_toml_value(self.seed)}"]
        for section in dataclasses.fields(self):
            value = getattr(self, section.name)
            if dataclasses.is_dataclass(value):
                lines += ["", f"[{section.name}]"]
                lines += [f"{f.name} = {_toml_value(getattr(value, f.name))}" for f in dataclasses.fields(value)]
        return "\n".join(lines) + "\n"


def _check_values(config: PipelineConfig, source: str) -> None:
    """Refuse, before any stage runs, what a later stage would refuse (or skip) hours in."""
    from ..search.api import METHODS
    from ..search.budget import parse_budget
    from ..training.scoring import METHODS as IMPORTANCE_METHODS

    for budget in config.search.budgets:
        try:
            parse_budget(budget)
        except DepthshrinkError as exc:
            raise DepthshrinkError(f"{source} [search] budgets: {exc}") from None
    unknown = [m for m in config.search.methods if m not in METHODS]
    if unknown:
        raise DepthshrinkError(f"{source} [search] methods: no method {', '.join(map(repr, unknown))}; "
                               f"the methods are {', '.join(METHODS)}")
    if not all(0 < r < 1 for r in config.baselines.pruning_ratios):
        raise DepthshrinkError(f"{source} [baselines] pruning_ratios must lie between 0 and 1")
    if not all(0 < w < math.inf for w in config.baselines.width_mults):
        raise DepthshrinkError(f"{source} [baselines] width_mults must be positive")
    for section, seeds in (("finetune", config.finetune.seeds), ("baselines", config.baselines.width_seeds)):
        if not seeds:
            raise DepthshrinkError(f"{source} [{section}] needs at least one seed")
    budgets = [parse_budget(b) for b in config.search.budgets]  # "1.5x" and "1.5 x" are one budget
    for what, values in (("[finetune] seeds", config.finetune.seeds), ("[baselines] width_seeds",
                                                                       config.baselines.width_seeds),
                         ("[search] budgets", budgets), ("[search] methods", config.search.methods),
                         ("[baselines] pruning_ratios", config.baselines.pruning_ratios),
                         ("[baselines] width_mults", config.baselines.width_mults)):
        if len(set(values)) < len(values):  # two runs of one seed made a standard error of 0
            raise DepthshrinkError(f"{source} {what} holds a value twice: {[str(v) for v in values]}")
    model, data, imp = config.model, config.data, config.importance
    for what, ok in (("[model] width_mult must be a positive number", 0 < model.width_mult < math.inf),
                     ("[model] resolution must be at least 1", model.resolution >= 1),
                     ("[model] in_channels must be at least 1", model.in_channels >= 1),
                     ("[model] num_classes must be at least 2", model.num_classes >= 2),
                     ("[data] subset must be 0 (all) or more", data.subset >= 0),
                     ("[data] test_images must be 0 (all) or more", data.test_images >= 0),
                     ("[importance] max_removed must be 0 (all) or more", imp.max_removed >= 0),
                     ("[importance] bn_images must be at least 1", imp.bn_images >= 1),
                     ("[importance] held_out_images must be at least 1", imp.held_out_images >= 1),
                     ("[importance] probe_steps must be at least 1", imp.probe_steps >= 1),
                     (f"[importance] method must be one of {', '.join(IMPORTANCE_METHODS)}",
                      imp.method in IMPORTANCE_METHODS)):
        if not ok:
            raise DepthshrinkError(f"{source} {what}")
    p, m = config.profile, config.measure
    for what, ok in (("[profile] threads must be at least 1", p.threads >= 1),
                     ("[profile] budget_fraction must be in (0, 1]", 0 < p.budget_fraction <= 1),
                     ("[profile] min_time_ms must be positive", p.min_time_ms > 0),
                     ("[measure] threads must be at least 1", m.threads >= 1),
                     ("[measure] min_time_ms must be positive", m.min_time_ms > 0),
                     ("[measure] throughput_batch_size must be at least 1", m.throughput_batch_size >= 1)):
        if not ok:  # threads = 0 is ONNX Runtime's "all cores", recorded as 0
            raise DepthshrinkError(f"{source} {what}")
    for section, schedule in (("train", config.train_schedule), ("finetune", config.finetune_schedule)):
        try:
            schedule(config.seed)
        except DepthshrinkError as exc:
            raise DepthshrinkError(f"{source} [{section}]: {exc}") from None


def _check_keys(data: dict, valid: list[str], source: str) -> None:
    unknown = [key for key in data if key not in valid]
    if unknown:
        raise DepthshrinkError(f"{source}: unknown key {', '.join(map(repr, unknown))}; valid keys: "
                               f"{', '.join(valid)}")


def _section(kind: type, data: dict, source: str):
    fields = {f.name: f for f in dataclasses.fields(kind)}
    _check_keys(data, list(fields), source)
    section = kind()
    for name, value in data.items():
        default = getattr(section, name)
        if isinstance(default, list):
            item = typing.get_args(typing.get_type_hints(kind)[name])[0]
            if not isinstance(value, list):
                raise DepthshrinkError(f"{source} {name} must be a list")
            value = [_typed(v, item, f"{source} {name}") for v in value]
        else:
            value = _typed(value, type(default), f"{source} {name}")
        setattr(section, name, value)
    return section


def _typed(value, kind: type, where: str):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DepthshrinkError(f"{where} must be {kind.__name__}, not {value!r}")
    return value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
