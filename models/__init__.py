"""Model zoo, chain tracing and the chain space (``space`` needs no torch; the rest does)."""

from importlib import import_module

_LAZY = {"ZOO": "registry", "build_model": "registry", "list_models": "registry", "min_resolution": "registry"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'depthshrink.models' has no attribute {name!r}")
