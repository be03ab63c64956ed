"""Model zoo, chain tracing and the chain space."""

from .registry import ZOO, build_model, list_models, min_resolution

__all__ = ["ZOO", "build_model", "list_models", "min_resolution"]
