"""The registry that maps a pruning method's name to its algorithm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Protocol

import torch
from torch import nn

from . import depth, dynamic, llm_pruner, magnitude, owl, resp, slicegpt, sparsegpt, wanda
from .spec import FAMILIES, METHOD_NAMES, PruneSpec, parse_method

__all__ = ["METHODS", "LayerAllocation", "Method", "PruneSpec", "WholeModelMethod", "parse_method"]


class WholeModelMethod(Protocol):
    """A method that rewrites the whole model rather than one matrix at a time (depth, width,
    dynamic). A module with these two functions is one (pruning/depth.py, slicegpt.py, ...).

    ``check`` refuses, before any work, a model the method cannot prune; the model may sit on the
    meta device (built from its config alone). ``prune`` rewrites the model in place and returns
    its JSON-able record; ``checkpoints`` (a RunCheckpoints) keeps what a killed run resumes from,
    and ``options`` are the schema's pruning options (each method reads its own)."""

    def check(self, model: nn.Module, spec: PruneSpec, layers_path: str) -> None: ...

    def prune(self, model: nn.Module, calibration: list[torch.Tensor], spec: PruneSpec, *, layers_path: str,
              device=None, log=print, checkpoints=None, **options) -> dict: ...


class LayerAllocation(Protocol):
    """How an unstructured method spreads its target over the decoder layers (OWL, pruning/owl.py).
    The driver first runs the dense model over the calibration data, layer by layer, and gives
    ``layer_score`` each layer's linears as (weight, its input's per-channel mean square); then
    ``sparsities`` turns the scores into one sparsity per layer, which the method prunes each layer
    to. ``options`` are the schema's pruning options, as for ``prune``."""

    def layer_score(self, linears: dict[str, tuple[torch.Tensor, torch.Tensor]], **options) -> float: ...

    def sparsities(self, scores: list[float], target: float, **options) -> list[float]: ...


@dataclass(frozen=True)
class Method:
    """One algorithm: the input statistic it needs and how it prunes one weight matrix.

    ``needs`` is ``"hessian"`` (2/T sum x x^T, SparseGPT), ``"norms"`` (1/T sum x^2 per input
    channel, Wanda), ``"sequences"`` (the token sequences themselves), ``"traces"`` (self-generated
    exchanges split into prompt and response, pruning.resp.Trace, with a way to regenerate them) or
    ``None`` (no calibration data at all). ``prune(weight, stats, spec, **options)``
    returns a new tensor of the same shape and dtype whose pruned entries are exactly 0; methods
    ignore options that are not theirs, so a driver can pass one set of options to all of them.
    ``prepare(stats, **options)``, where given, is the work that depends on the statistic alone, done
    once for all modules sharing it; its result is passed to ``prune`` as extra keyword arguments.

    A depth method (family depth, declared in pruning/spec.py) ranks whole blocks on the calibration ``sequences`` and
    removes them (pruning/depth.py); a width method (``"width"``) narrows the model (SliceGPT,
    pruning/slicegpt.py; LLM-Pruner, pruning/llm_pruner.py); a dynamic method (``"dynamic"``) trains
    routers that skip blocks per token (pruning/dynamic.py). None of these prunes a single matrix in
    place, so ``prune`` is None and ``whole`` is its WholeModelMethod.
    """

    name: str
    needs: Literal["hessian", "norms", "sequences", "traces"] | None
    prune: Callable[..., torch.Tensor] | None
    prepare: Callable[..., dict] | None = None
    whole: WholeModelMethod | None = None  # depth, width, dynamic: the whole-model pass
    allocation: LayerAllocation | None = None  # unstructured: a sparsity per layer instead of one for all

    @property
    def family(self) -> str:
        """Declared with its name, torch-free (pruning.spec.DECLARED)."""
        return FAMILIES[self.name]


METHODS: dict[str, Method] = {
    "sparsegpt": Method("sparsegpt", "hessian", sparsegpt.prune, sparsegpt.prepare),
    "wanda": Method("wanda", "norms", wanda.prune),
    "magnitude": Method("magnitude", None, magnitude.prune),
    "owl_wanda": Method("owl_wanda", "norms", wanda.prune, allocation=owl),
    "owl_sparsegpt": Method("owl_sparsegpt", "hessian", sparsegpt.prune, sparsegpt.prepare, allocation=owl),
    **{name: Method(name, "sequences", None, whole=depth)
       for name in ("shortgpt", "sleb", "shortened_ppl", "shortened_taylor")},
    "slicegpt": Method("slicegpt", "sequences", None, whole=slicegpt),
    "llm_pruner": Method("llm_pruner", "sequences", None, whole=llm_pruner),
    "resp": Method("resp", "traces", None, whole=resp),
    **{name: Method(name, "sequences", None, whole=dynamic) for name in ("mod", "dllm", "skipgpt")},
}
assert tuple(METHODS) == METHOD_NAMES, "pruning.spec.DECLARED must declare the registry's methods, in its order"
assert all((m.whole is None) == (m.family == "unstructured") for m in METHODS.values()), \
    "a method prunes matrices (unstructured) or the whole model, as its declared family says"
