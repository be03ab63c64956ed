"""What each fx node *is* to the chain tracer: conv, BN, activation, residual add, pass-through.

Matching is by type and function object, never by name strings. Anything not listed is an
unknown op, which the tracer treats as a barrier (no merge across it) and warns about.
"""

from __future__ import annotations

import operator
from enum import Enum

import torch
import torch.nn.functional as F
from torch import fx, nn


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
ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)


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
        if isinstance(module, PASS_MODULES):
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


def describe(node: fx.Node, root: nn.Module) -> str:
    """A short human name for a node, for warnings and errors."""
    module = module_of(node, root)
    if module is not None:
        return f"'{node.target}' ({type(module).__name__})"
    target = getattr(node.target, "__name__", node.target)
    return f"{node.op} {target}"
