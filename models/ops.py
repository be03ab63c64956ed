"""What each fx node *is* to the chain tracer (conv, BN, activation, residual add, pass-through),
and the fx tracing that keeps pass-through modules whole and records the eval-mode graph.

Matching is by type and function object, never by node names. Two third-party pass-through
types (torchvision's ``StochasticDepth``, timm's ``DropPath``) are known by their qualified type
name, so neither package need be installed; others are added with
:func:`register_pass_through`. Anything not listed is an unknown op, which the tracer treats as a
barrier (no merge across it) and warns about.
"""

from __future__ import annotations

import copy
import operator
from contextlib import contextmanager
from enum import Enum

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import DepthshrinkError


class Kind(Enum):
    CONV = "conv"
    BN = "batchnorm"
    ACT = "activation"
    ADD = "add"
    PASS = "pass-through"
    INPUT = "input"
    OTHER = "other"


ACTIVATION_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hardswish", nn.SiLU: "silu",
    nn.GELU: "gelu", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.Mish: "mish",
    nn.Hardtanh: "hardtanh",
}
ACTIVATION_FUNCTIONS: dict[object, str] = {
    F.relu: "relu", torch.relu: "relu", F.relu_: "relu", torch.relu_: "relu", F.relu6: "relu6",
    F.hardswish: "hardswish", F.silu: "silu", F.gelu: "gelu", F.leaky_relu: "leaky_relu",
    F.elu: "elu", F.mish: "mish", F.hardtanh: "hardtanh",
}
ACTIVATION_METHODS = {"relu": "relu", "relu_": "relu"}
ACTIVATION_BY_NAME: dict[str, type] = {name: module for module, name in ACTIVATION_MODULES.items()}
PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d)
# identity in eval mode, a random per-sample (or per-batch) scale in training: linear either way
KNOWN_PASS_TYPES = frozenset({"torchvision.ops.stochastic_depth.StochasticDepth",
                              "timm.layers.drop.DropPath", "timm.models.layers.drop.DropPath"})
_registered_pass: list[type] = []
# squeeze-and-excitation: the input scaled by a gate computed from it, nonlinear by nature, so a merge
# barrier the tracer need not warn about (torchvision's, and the zoo's MobileNetV3's)
KNOWN_GATE_TYPES = frozenset({"torchvision.ops.misc.SqueezeExcitation",
                              "depthshrink.models.mobilenetv3.SqueezeExcitation"})
ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)


def register_pass_through(module_type: type) -> type:
    """Declare ``module_type`` a pass-through: the identity in eval mode and linear in training
    (dropout, stochastic depth). The tracer keeps its modules whole (called at run time, so a
    shrunk model still trains with them) and merges across them. Usable as a class decorator."""
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"register_pass_through takes an nn.Module subclass, not {module_type!r}")
    if module_type not in _registered_pass:
        _registered_pass.append(module_type)
    return module_type


def is_pass_through(module: nn.Module) -> bool:
    if isinstance(module, (*PASS_MODULES, *_registered_pass)):
        return True
    return any(f"{cls.__module__}.{cls.__qualname__}" in KNOWN_PASS_TYPES for cls in type(module).__mro__)


def gate_of(node: fx.Node) -> str | None:
    """The path of the squeeze-and-excitation module (:data:`KNOWN_GATE_TYPES`) whose forward made
    ``node``, if any."""
    for path, owner in (node.meta.get("nn_module_stack") or {}).values():
        if isinstance(owner, type) and any(f"{c.__module__}.{c.__qualname__}" in KNOWN_GATE_TYPES for c in owner.__mro__):
            return path
    return None


def module_of(node: fx.Node, root: nn.Module) -> nn.Module | None:
    return root.get_submodule(node.target) if node.op == "call_module" else None


def _is_residual_add(node: fx.Node) -> bool:
    if node.op == "call_function" and node.target in ADD_FUNCTIONS:
        tensors = node.args
    elif node.op == "call_method" and node.target in ("add", "add_"):
        tensors = node.args
    else:
        return False
    return (len(tensors) == 2 and all(isinstance(a, fx.Node) for a in tensors)
            and not node.kwargs.get("alpha"))


def classify(node: fx.Node, root: nn.Module) -> Kind:
    """The role of ``node`` in a conv chain."""
    if node.op == "placeholder":
        return Kind.INPUT
    module = module_of(node, root)
    if module is not None:
        if isinstance(module, nn.Conv2d):
            return Kind.CONV
        if isinstance(module, nn.BatchNorm2d):
            return Kind.BN
        if type(module) in ACTIVATION_MODULES:
            return Kind.ACT
        if is_pass_through(module):
            return Kind.PASS
        return Kind.OTHER
    if node.op == "call_function" and node.target in ACTIVATION_FUNCTIONS:
        return Kind.ACT
    if node.op == "call_method" and node.target in ACTIVATION_METHODS:
        return Kind.ACT
    if _is_residual_add(node):
        return Kind.ADD
    return Kind.OTHER


def activation_name(node: fx.Node, root: nn.Module) -> str:
    module = module_of(node, root)
    if module is not None:
        return ACTIVATION_MODULES[type(module)]
    if node.op == "call_function":
        return ACTIVATION_FUNCTIONS[node.target]
    return ACTIVATION_METHODS[node.target]


class _ActivationCall(nn.Module):
    """An activation function called with a node's own arguments (the input first), out of place."""

    def __init__(self, function, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.function, self.args, self.kwargs = function, args, kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x, *self.args, **self.kwargs)


OUT_OF_PLACE = {F.relu_: F.relu, torch.relu_: torch.relu, "relu_": torch.relu, "relu": torch.relu}


def activation_module(node: fx.Node, root: nn.Module) -> nn.Module:
    """A fresh module computing what activation ``node`` computes, its arguments kept (a LeakyReLU's
    slope, a hardtanh's bounds), never in place: the input is still needed beside it."""
    module = module_of(node, root)
    if module is not None:
        fresh = copy.deepcopy(module)
        if hasattr(fresh, "inplace"):
            fresh.inplace = False
        return fresh
    function = OUT_OF_PLACE.get(node.target, node.target)
    kwargs = {k: v for k, v in node.kwargs.items() if k != "inplace"}
    return _ActivationCall(function, tuple(node.args[1:]), kwargs)


def describe(node: fx.Node, root: nn.Module) -> str:
    """A short human name for a node, for warnings and errors."""
    module = module_of(node, root)
    if module is not None:
        return f"'{node.target}' ({type(module).__name__})"
    target = getattr(node.target, "__name__", node.target)
    stack = node.meta.get("nn_module_stack") or {}
    if stack:  # the module whose forward made this op
        path, owner = list(stack.values())[-1]
        return f"{node.op} {target} (in '{path}', {getattr(owner, '__name__', owner)})"
    return f"{node.op} {target}"


class _Tracer(fx.Tracer):
    """fx's tracer, keeping pass-through modules (stochastic depth …) whole: they then follow the
    module's own ``training`` flag when called, instead of the flag seen while tracing."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_pass_through(m) or super().is_leaf_module(m, module_qualified_name)


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """``model``'s graph as it runs in eval mode, whatever mode it is in (the graph module takes
    ``model``'s mode): a branch on ``self.training`` taken while tracing in training mode could add
    random ops that merging cannot follow."""
    gm = _trace_in_mode(model, training=False)
    gm.training = model.training
    return gm


def training_differs(model: nn.Module) -> bool:
    """Whether ``model`` traces to other code in training mode than in eval mode: a branch on
    ``self.training`` or a training flag handed to a function, outside pass-through modules."""
    try:
        trained = _trace_in_mode(model, training=True)
    except DepthshrinkError:
        return True
    return trained.code != _trace_in_mode(model, training=False).code


@contextmanager
def in_mode(model: nn.Module, training: bool):
    """Every module of ``model`` in one mode inside the block, each back in its own after it."""
    modes = {module: module.training for module in model.modules()}
    model.train(training)
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.train(mode)


def _trace_in_mode(model: nn.Module, training: bool) -> fx.GraphModule:
    try:
        with in_mode(model, training):
            return fx.GraphModule(model, _Tracer().trace(model), type(model).__name__)
    except Exception as exc:  # fx raises many types; all mean "not traceable"
        raise DepthshrinkError(f"torch.fx cannot trace {type(model).__name__}: {exc} "
                               "(avoid data-dependent control flow in forward)") from exc
