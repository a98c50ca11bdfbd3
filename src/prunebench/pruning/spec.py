"""Pruning method names: ``sparsegpt-0.5`` (unstructured, half the weights of every matrix removed),
``wanda-2of4`` (N:M, at most 2 nonzeros in every 4 consecutive weights of a row) or ``shortgpt-0.2``
(depth: whole decoder blocks holding a fifth of the decoder's parameters removed).

Free of torch, so that the workflow can check a config's method names when it plans.
``dense`` is deliberately not a method: the unpruned model is not pruned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal



@dataclass(frozen=True)
class Declared:
    """A method as the workflow, the config's checks and the tables know it, without torch; its
    algorithm is pruning.methods.METHODS[name].

    `family`: unstructured methods zero weights in place; depth methods remove blocks; width methods
    narrow them; dynamic methods train routers that skip blocks per token. `label`: its name in
    tables and figures. `own_architecture`: its checkpoints are prunebench's own model types
    (prunebench.architectures), which vLLM does not serve, so they are evaluated on the hf backend.
    `searching`: a depth method that runs the model once per candidate block and round, the longest
    prunes of a study (SLEB about 13 min on one core in the default, ShortGPT 0.4); the workflow
    starts them before the study's other prunes, so that a run does not end on one of them.
    `traces`: it prunes on the model's own traces (a self-generated recipe: each sequence a pool
    problem's prompt and the model's response) and regenerates them as it prunes (RESP), so its
    prune job reads the pools' problems and the self-generation settings. `beyond`: not a method
    of the second paper's study: its rows are shown in the study's tables and left out of the
    paper's claims, which pool the paper's own methods by family."""

    family: str
    label: str
    own_architecture: bool = False
    searching: bool = False
    traces: bool = False
    beyond: bool = False


DECLARED: dict[str, Declared] = {
    "sparsegpt": Declared("unstructured", "SparseGPT"),
    "wanda": Declared("unstructured", "Wanda"),
    "magnitude": Declared("unstructured", "Magnitude"),
    "owl_wanda": Declared("unstructured", "OWL-Wanda"),
    "owl_sparsegpt": Declared("unstructured", "OWL-SparseGPT"),
    "shortgpt": Declared("depth", "ShortGPT"),
    "sleb": Declared("depth", "SLEB", searching=True),
    "shortened_ppl": Declared("depth", "Shortened-LLaMA PPL", searching=True),
    "shortened_taylor": Declared("depth", "Shortened-LLaMA Taylor+"),
    "slicegpt": Declared("width", "SliceGPT", own_architecture=True),
    "llm_pruner": Declared("width", "LLM-Pruner", own_architecture=True),
    "resp": Declared("width", "RESP", traces=True, beyond=True),
    "mod": Declared("dynamic", "MoD", own_architecture=True),
    "dllm": Declared("dynamic", "D-LLM", own_architecture=True),
    "skipgpt": Declared("dynamic", "SkipGPT", own_architecture=True),
}
METHOD_NAMES = tuple(DECLARED)
FAMILIES = {name: method.family for name, method in DECLARED.items()}
OWN_ARCHITECTURE = tuple(name for name, method in DECLARED.items() if method.own_architecture)
SEARCHING = tuple(name for name, method in DECLARED.items() if method.searching)
ON_TRACES = tuple(name for name, method in DECLARED.items() if method.traces)
# The grammar of a method name, written once: parse_method reads it, and the workflow's `method`
# wildcard is "dense|" + METHOD_PATTERN, so every name this module accepts has a rule that builds it.
_METHOD, _SPARSITY = r"[a-z][a-z0-9_]*", r"[0-9]*\.?[0-9]+"
METHOD_PATTERN = rf"{_METHOD}-(?:[0-9]+of[0-9]+|{_SPARSITY})"
# A recovered model: the pruned model's method name, a plus and the recovery's name under config
# `recovery` (shortgpt-0.2+aligned); CELL_PATTERN is what the workflow's `method` wildcard takes.
RECOVERY_PATTERN = r"[a-z][a-z0-9_]*"
CELL_PATTERN = rf"{METHOD_PATTERN}(?:\+{RECOVERY_PATTERN})?"
_NAME = re.compile(rf"^(?P<method>{_METHOD})-(?:(?P<n>[0-9]+)of(?P<m>[0-9]+)|(?P<sparsity>{_SPARSITY}))$")


@dataclass(frozen=True)
class PruneSpec:
    """What to prune to: an unstructured fraction, or an N:M pattern (N kept of every M)."""

    method: str
    sparsity: float | None
    n: int | None = None
    m: int | None = None

    def __post_init__(self):
        if self.method not in METHOD_NAMES:
            raise ValueError(f"unknown pruning method {self.method!r} (known: {', '.join(sorted(METHOD_NAMES))})")
        if self.sparsity is not None:
            if self.n is not None or self.m is not None:
                raise ValueError("give either a sparsity or an N:M pattern, not both")
            if not 0.0 < self.sparsity < 1.0:
                raise ValueError(f"sparsity must lie strictly between 0 and 1, got {self.sparsity}")
        else:
            if self.n is None or self.m is None:
                raise ValueError("give a sparsity, or both n and m of an N:M pattern")
            if not 1 <= self.n < self.m:
                raise ValueError(f"an N:M pattern needs 1 <= N < M, got {self.n}:{self.m}")
            if self.family != "unstructured":
                raise ValueError(f"{self.method} is a {self.family}-pruning method: it takes a ratio "
                                 f"(the fraction of decoder parameters removed), not an N:M pattern")

    @property
    def family(self) -> str:
        """unstructured, depth, width or dynamic."""
        return FAMILIES[self.method]

    @property
    def structured(self) -> bool:
        """True for an N:M pattern."""
        return self.sparsity is None

    @property
    def target(self) -> float:
        """The fraction of weights removed: the sparsity, or (M-N)/M for a pattern."""
        return self.sparsity if self.sparsity is not None else (self.m - self.n) / self.m

    @property
    def pattern(self) -> str | None:
        """``"2:4"`` for an N:M spec, None for unstructured."""
        return f"{self.n}:{self.m}" if self.structured else None

    @property
    def name(self) -> str:
        """Canonical name; ``parse_method(spec.name) == spec``."""
        if self.structured:
            return f"{self.method}-{self.n}of{self.m}"
        return f"{self.method}-{format(Decimal(repr(self.sparsity)), 'f')}"  # 1e-05 is written 0.00001


def parse_method(name: str) -> PruneSpec:
    """``"sparsegpt-0.5"`` -> PruneSpec("sparsegpt", 0.5); ``"wanda-2of4"`` -> PruneSpec("wanda", None, 2, 4)."""
    if not isinstance(name, str):
        raise ValueError(f"a pruning method name must be a string, got {name!r}")
    match = _NAME.match(name.strip())
    if match is None:
        raise ValueError(f"cannot read pruning method {name!r}: expected METHOD-SPARSITY (sparsegpt-0.5) or "
                         f"METHOD-NofM (wanda-2of4), METHOD one of {', '.join(sorted(METHOD_NAMES))}; the unpruned "
                         f"model is 'dense', which is not a pruning method")
    method = match["method"]
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown pruning method {method!r} in {name!r} (known: {', '.join(sorted(METHOD_NAMES))})")
    try:
        if match["sparsity"] is not None:
            return PruneSpec(method, float(match["sparsity"]))
        return PruneSpec(method, None, int(match["n"]), int(match["m"]))
    except ValueError as err:
        raise ValueError(f"pruning method {name!r}: {err}") from None


def split_recovery(name: str) -> tuple[str, str | None]:
    """``"shortgpt-0.2+aligned"`` -> ("shortgpt-0.2", "aligned"); a name without recovery -> (name, None)."""
    method, plus, recovery = name.partition("+")
    return method, (recovery if plus else None)


def algorithm(method_name: str) -> str:
    """The algorithm a cell's method name runs: ``"sleb-0.2+aligned"`` -> ``"sleb"``."""
    return parse_method(split_recovery(method_name)[0]).method


def vllm_servable(method_name: str) -> bool:
    """Whether vLLM can serve the checkpoint a method name builds (standard architectures only; a
    recovered model keeps its pruned model's architecture)."""
    return algorithm(method_name) not in OWN_ARCHITECTURE
