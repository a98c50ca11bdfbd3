"""Pruning core: method names, a module per algorithm, the registry and the sequential driver.

Names (``spec``) import without torch; everything else loads on first use, so that planning a
workflow does not pay for importing torch.
"""

from importlib import import_module

from .spec import METHOD_NAMES, PruneSpec, parse_method

_LAZY = {"METHODS": "methods", "Method": "methods", "InputStatistic": "driver", "capture_inputs": "passes",
         "prune_model": "driver", "check_model": "driver"}

__all__ = ["METHODS", "METHOD_NAMES", "InputStatistic", "Method", "PruneSpec", "capture_inputs", "check_model",
           "parse_method", "prune_model"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
