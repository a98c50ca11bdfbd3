"""prunebench: a reproducible benchmark harness for pruning large reasoning models."""

__version__ = "0.1.0"
