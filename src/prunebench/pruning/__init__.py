"""Pruning core: method names and registry, one module per algorithm, and the sequential driver."""

from .driver import InputStatistic, capture_inputs, prune_model
from .methods import METHODS, Method, PruneSpec, parse_method

__all__ = ["METHODS", "InputStatistic", "Method", "PruneSpec", "capture_inputs", "parse_method", "prune_model"]
