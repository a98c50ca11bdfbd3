"""The sequential driver: prune a decoder-only model one layer at a time on calibration sequences.

As in the SparseGPT and Wanda references, a layer's statistics come from its dense pass over the
(already pruned) previous layers' outputs, and the next layer's inputs from the pruned layer. Each
calibration sequence runs alone (batch of 1), so sequences of different lengths need no padding and
no padding token ever enters a statistic.
"""

from __future__ import annotations

import functools
import json
import math
import resource
import shutil
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import pruning_defaults
from ..io import InputError, atomic_path
from ..provenance import MEASURED_FIELDS  # noqa: F401  (the report's fields that measure the machine)

from .magnitude import satisfies_nm
from .methods import METHODS, PruneSpec
from .passes import capture_inputs, device_of, input_device, move_outside, restore, run_layer
from .sparsegpt import one_thread


DEFAULTS = pruning_defaults()


class InputStatistic:
    """Token-weighted running mean, in fp32, of a linear layer's input: H = (2/T) sum x x^T ("hessian")
    or (1/T) sum x^2 per input channel ("norms"), T the number of tokens seen so far.

    The running-mean update makes the result independent of how tokens are split into calls, so
    sequences of any lengths weigh every token alike. A large Hessian accumulates only its upper
    triangle, in row blocks (about 60% of the products), and is mirrored once when read.
    """

    CHUNK_TOKENS = 4096     # fp32 copies of at most this many rows at a time, however long the sequence
    SYMMETRIC_BLOCK = 1024  # row block of the upper-triangle accumulation; smaller Hessians are done whole

    def __init__(self, kind: str, columns: int, device=None):
        if kind not in ("hessian", "norms"):
            raise ValueError(f"unknown statistic {kind!r}")
        self.kind = kind
        self.tokens = 0
        shape = (columns, columns) if kind == "hessian" else (columns,)
        self._value = torch.zeros(shape, dtype=torch.float32, device=device)
        self._mirrored = True

    @property
    def value(self) -> torch.Tensor:
        if not self._mirrored:
            self._value.triu_()
            self._value.add_(self._value.T.tril(-1))  # the strict upper triangle, mirrored (a copy)
            self._mirrored = True
        return self._value

    @one_thread   # the Hessian's sums in one order whatever the threads (sparsegpt.one_thread)
    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1])
        for start in range(0, x.shape[0], self.CHUNK_TOKENS):
            chunk = x[start:start + self.CHUNK_TOKENS].to(device=self._value.device, dtype=torch.float32)
            new = chunk.shape[0]
            self._value *= self.tokens / (self.tokens + new)
            self.tokens += new
            if self.kind == "norms":
                self._value += chunk.pow(2).sum(dim=0) / self.tokens
                continue
            chunk = chunk * math.sqrt(2 / self.tokens)  # never in place: chunk may be the input itself
            columns, block = chunk.shape[1], self.SYMMETRIC_BLOCK
            if columns <= 2 * block:
                self._value.addmm_(chunk.T, chunk)
                continue
            for i in range(0, columns, block):
                self._value[i:i + block, i:].addmm_(chunk[:, i:i + block].T, chunk[:, i:])
            self._mirrored = False


class _Collector:
    """Forward hooks feeding each Linear's input into a statistic, one per distinct input tensor.

    Modules that read the very same tensor object in one forward (q/k/v; gate/up) share one
    statistic (the first to run is its leader) instead of computing it again. The tensor is held
    by a weak reference, so a freed tensor whose id() is reused is never taken for a shared one.
    """

    def __init__(self, modules: dict[str, nn.Linear], kind: str):
        self.modules, self.kind = modules, kind
        self.stats: dict[str, InputStatistic] = {}   # leader name -> statistic
        self.leader: dict[str, str] = {}             # module name -> leader name
        self._seen: dict[int, tuple[weakref.ref, str]] = {}
        self._handles = []

    def __enter__(self):
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(functools.partial(self._hook, name), with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._seen.clear()

    def new_pass(self) -> None:
        """Forget the tensors of the previous forward: sharing is decided within one forward."""
        self._seen.clear()

    def _hook(self, name, module, args, kwargs, output):
        x = args[0] if args else kwargs["input"]
        seen = self._seen.get(id(x))
        leader = seen[1] if seen is not None and seen[0]() is x else name
        if leader == name:
            self._seen[id(x)] = (weakref.ref(x), name)
        if self.leader.setdefault(name, leader) != leader:
            raise RuntimeError(f"{name}: shares its input with {leader} in one forward but with "
                               f"{self.leader[name]} in another; cannot share one statistic")
        if leader == name:
            if name not in self.stats:
                self.stats[name] = InputStatistic(self.kind, x.shape[-1], device=module.weight.device)
            self.stats[name].add(x)

    def groups(self) -> list[list[str]]:
        """Modules grouped by shared input, in the order the groups first ran."""
        grouped: dict[str, list[str]] = {}
        for name, leader in self.leader.items():
            grouped.setdefault(leader, []).append(name)
        return list(grouped.values())

    def statistic(self, name: str) -> torch.Tensor | None:
        leader = self.leader.get(name)
        return None if leader is None else self.stats[leader].value


def is_linear(module: nn.Module) -> bool:
    """A linear map the methods prune: nn.Linear, or transformers' Conv1D (GPT-2), its weight stored (in, out)."""
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, (nn.Linear, Conv1D))


def linear_weight(module: nn.Module) -> torch.Tensor:
    """The weight as (out, in), the layout every method prunes: a view, so writing it writes the module."""
    return module.weight.data if isinstance(module, nn.Linear) else module.weight.data.T


def _replay(layer, hidden, calls, index, device, collector=None):
    """Run ``layer`` on every sequence. Without a collector its outputs overwrite ``hidden`` in
    place, one sequence at a time, so only one copy of the activations is ever held."""
    for j, call in enumerate(calls):
        if collector is not None:
            collector.new_pass()
            run_layer(layer, hidden[j], call[index], device)
        else:
            hidden[j].copy_(run_layer(layer, hidden[j], call[index], device))
    return hidden


def _prune_module(module, stat, spec, method, options, qualified, report, prepared=None):
    info: dict = {}
    weight = linear_weight(module)
    new = method.prune(weight, stat, spec, info=info, name=qualified, **options, **(prepared or {}))
    if new.shape != weight.shape or new.dtype != weight.dtype:
        raise RuntimeError(f"{spec.method} returned {tuple(new.shape)} {new.dtype} for {qualified}")
    weight.copy_(new)
    zeros = int((weight == 0).sum())
    report["modules"][qualified] = {
        "sparsity": zeros / weight.numel(),
        "shape": list(weight.shape),
        "pattern_ok": satisfies_nm(weight, spec.n, spec.m) if spec.structured else None,
        "damping": info.get("damping"),
        "damping_raised": info.get("damping_raised", 0),
        "_zeros": zeros,
    }


class RunCheckpoints:
    """A resumable job's saved work beside its output, so that a killed job resumes: each pruned
    layer's weights and report, a whole-model method's steps (SLEB's rounds), a training state
    (router training, recovery).

    A resumed layer loads its pruned weights and only runs forward (to give the next layer its
    inputs), so the pruning work of finished layers is kept and the result is the same. Files of
    another model, calibration set or setting (a different `key`) are discarded; a folder that
    holds something else without a KEY is refused, not removed.
    """

    def __init__(self, directory: str | Path | None, key: str, log):
        self.directory = Path(directory) if directory is not None else None
        if self.directory is None:
            return
        stamp = self.directory / "KEY"
        if self.directory.exists() and not stamp.exists() and any(self.directory.iterdir()):
            raise InputError(f"{self.directory}: not empty and not layer checkpoints of a pruning run (no KEY); "
                             f"remove it or name another output")
        if self.directory.exists() and (not stamp.exists() or stamp.read_text() != key):
            log(f"discarding the layer checkpoints of another pruning run in {self.directory}")
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)

    def _paths(self, index: int) -> tuple[Path, Path]:
        return self.directory / f"layer-{index:04d}.safetensors", self.directory / f"layer-{index:04d}.json"

    def load(self, index: int, linears: dict[str, nn.Linear]) -> dict | None:
        """The layer's saved report (its weights loaded into `linears`), or None if not yet pruned."""
        if self.directory is None or not self._paths(index)[1].exists():
            return None
        weights, record = self._paths(index)
        tensors = load_file(str(weights))
        for name, module in linears.items():
            if name in tensors:
                module.weight.copy_(tensors[name])
        return json.loads(record.read_text())

    def load_step(self, name: str) -> dict | None:
        """A whole-model method's saved step (a SLEB round, say), or None if not yet done."""
        path = self.directory / f"{name}.json" if self.directory is not None else None
        return json.loads(path.read_text()) if path is not None and path.exists() else None

    def save_step(self, name: str, record: dict) -> None:
        if self.directory is None:
            return
        with atomic_path(self.directory / f"{name}.json") as tmp:
            tmp.write_text(json.dumps(record))

    def save(self, index: int, linears: dict[str, nn.Linear], record: dict) -> None:
        if self.directory is None:
            return
        weights, path = self._paths(index)
        with atomic_path(weights) as tmp:
            save_file({name: m.weight.detach().to("cpu").contiguous() for name, m in linears.items()}, str(tmp))
        with atomic_path(path) as tmp:   # written last: the layer counts as done once this exists
            tmp.write_text(json.dumps(record))


def check_model(model, spec: PruneSpec, layers_path: str):
    """Refuse, before any work, a model `spec` cannot prune; return its decoder layers. `model` may
    sit on the meta device (built from its config alone), so the prune command checks before it
    loads any weight. Whole-model methods add their own check (WholeModelMethod.check)."""
    try:
        layers = functools.reduce(getattr, layers_path.split("."), model)
    except AttributeError:
        raise InputError(f"layers_path {layers_path!r}: {type(model).__name__} has no such submodule") from None
    if METHODS[spec.method].allocation is not None and spec.structured:
        raise InputError(f"{spec.name}: {spec.method} gives each layer its own sparsity; an N:M pattern is the "
                         "same in every row of every layer (give a sparsity)")
    whole = METHODS[spec.method].whole
    if whole is not None:
        whole.check(model, spec, layers_path)
    return layers


def _enter_layer(layer, index: int, layers_path: str, run_device, device, skip) -> tuple[str, object, dict]:
    """A layer about to be run: its name prefix, the device it runs on (moved there where the run
    names one) and its linear layers, less those `skip` leaves dense."""
    prefix = f"{layers_path}.{index}."
    if device is not None:
        layer.to(run_device)
    linears = {name: module for name, module in layer.named_modules() if is_linear(module)
               and not any((prefix + name).endswith(suffix) for suffix in skip)}
    return prefix, run_device if device is not None else device_of(layer), linears


def _layer_sparsities(allocation, layers, hidden, calls, spec: PruneSpec, run_device, device, home, skip, options,
                      layers_path: str) -> list[float]:
    """A method's layer allocation (OWL): every layer's score from the dense model's pass over the
    calibration data, then one sparsity per layer. Consumes ``hidden`` (the first layer's inputs)."""
    scores = []
    for index, layer in enumerate(layers):
        prefix, layer_device, linears = _enter_layer(layer, index, layers_path, run_device, device, skip)
        with _Collector(linears, "norms") as collector:
            _replay(layer, hidden, calls, index, layer_device, collector)
        seen = {name: (linear_weight(module), norms) for name, module in linears.items()
                if (norms := collector.statistic(name)) is not None}
        scores.append(allocation.layer_score(seen, **options))
        del collector, seen
        hidden = _replay(layer, hidden, calls, index, layer_device)
        if device is not None:
            layer.to(home)
    targets = allocation.sparsities(scores, spec.target, **options)
    for index, target in enumerate(targets):
        if not 0.0 < target < 1.0:
            raise InputError(f"{spec.name}: layer {index}'s sparsity would be {target:.3f}; lower the allocation's "
                             "spread (owl_lambda)")
    return targets


def prune_model(model, calibration: list[torch.Tensor], spec: PruneSpec, *, layers_path: str = "model.layers",
                skip_modules: Sequence[str] = (), true_sequential: bool = DEFAULTS["true_sequential"],
                offload_activations: bool = False, device: str | None = None,
                checkpoint_dir: str | Path | None = None, checkpoint_key: str = "", log=print,
                **method_options) -> dict:
    """Prune every nn.Linear of the decoder layers at ``layers_path`` in place; return a JSON-able report.

    ``method_options`` (blocksize, percdamp, mask_selection, ...: the workflow schema's pruning
    options, whose defaults fill what is not given) go to the method, which ignores what is not its.

    ``device`` runs each layer there (moving it in and back out) while the rest of the model waits
    where it is; None runs everything where the model already is. ``offload_activations`` keeps the
    calibration activations in pinned CPU memory, copied to the layer's device one sequence at a
    time. ``true_sequential`` recomputes the statistics of each group of modules (q/k/v, o, gate/up,
    down: found as modules sharing an input) after the earlier groups of the layer are pruned.
    ``checkpoint_dir`` keeps each finished layer (see RunCheckpoints; ``checkpoint_key`` names
    the run) so that a killed run resumes at its first unfinished layer.
    """
    method = METHODS[spec.method]
    layers = check_model(model, spec, layers_path)
    checkpoints = RunCheckpoints(checkpoint_dir, checkpoint_key, log)
    if method.whole is not None:  # blocks removed or the model narrowed: the method's own whole-model pass
        return method.whole.prune(model, calibration, spec, layers_path=layers_path, device=device, log=log,
                           checkpoints=checkpoints, **method_options)
    start = time.perf_counter()
    calibration = [torch.as_tensor(ids).reshape(-1) for ids in calibration]
    if method.needs is not None and not calibration:
        raise InputError(f"{spec.name} needs calibration sequences, got none")
    if any(len(ids) == 0 for ids in calibration):
        raise InputError("calibration sequences must not be empty")
    home = device_of(layers[0])
    run_device = torch.device(device) if device is not None else home
    if run_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run_device)
    options = {**{k: v for k, v in DEFAULTS.items() if k != "true_sequential"}, **method_options, "log": log}
    report = {"method": spec.name, "sparsity_target": spec.target, "pattern": spec.pattern, "modules": {},
              "calibration": {"sequences": len(calibration), "tokens": int(sum(len(ids) for ids in calibration))}}
    skipped, resumed = [], 0

    def first_inputs():
        """The first layer's inputs for every calibration sequence, and the calls' other arguments."""
        if method.needs is None:
            return [], []
        moved = move_outside(model, layers, run_device) if device is not None else []
        try:
            return capture_inputs(model, layers, calibration, input_device(model, run_device),
                                  store_device="cpu" if offload_activations else None,
                                  pin_memory=offload_activations and torch.cuda.is_available())
        finally:
            restore(moved)

    with torch.no_grad():
        targets = None
        if method.allocation is not None:   # a sparsity per layer, from a dense pass of its own
            targets = _layer_sparsities(method.allocation, layers, *first_inputs(), spec, run_device, device, home,
                                        skip_modules, options, layers_path)
            report["layer_sparsity_targets"] = targets
            log(f"{spec.name}: layer sparsities {', '.join(f'{t:.3f}' for t in targets)}")
        hidden, calls = first_inputs()
        for index, layer in enumerate(layers):
            layer_spec = spec if targets is None else PruneSpec(spec.method, targets[index])
            layer_start = time.perf_counter()
            prefix, layer_device, linears = _enter_layer(layer, index, layers_path, run_device, device, skip_modules)
            saved = checkpoints.load(index, linears)
            if saved is not None:
                resumed += 1
                report["modules"].update(saved["modules"])
                skipped += saved["skipped"]
                if method.needs is not None:
                    hidden = _replay(layer, hidden, calls, index, layer_device)
            elif method.needs is None:
                for name, module in linears.items():
                    _prune_module(module, None, layer_spec, method, options, prefix + name, report)
            else:
                with _Collector(linears, method.needs) as collector:
                    _replay(layer, hidden, calls, index, layer_device, collector)
                for name in linears:
                    if name not in collector.leader:
                        skipped.append(prefix + name)
                        log(f"{prefix + name}: no calibration token reached it; left dense")
                for number, group in enumerate(collector.groups()):
                    source = collector
                    if true_sequential and number > 0:
                        with _Collector({name: linears[name] for name in group}, method.needs) as source:
                            _replay(layer, hidden, calls, index, layer_device, source)
                    stat = source.statistic(group[0])   # one statistic per group: its modules read one input
                    prepared = (method.prepare(stat, name=prefix + group[0], **options)
                                if method.prepare is not None else None)
                    for name in group:
                        _prune_module(linears[name], stat, layer_spec, method, options, prefix + name, report, prepared)
                    del prepared, stat
                    for name in group:          # free this group's statistic before the next group's
                        collector.stats.pop(collector.leader[name], None)
                    del source
                hidden = _replay(layer, hidden, calls, index, layer_device)
            if saved is None:
                checkpoints.save(index, linears, {
                    "modules": {k: v for k, v in report["modules"].items() if k.startswith(prefix)},
                    "skipped": [name for name in skipped if name.startswith(prefix)]})
            if device is not None:
                layer.to(home)
            pruned = sum(name.startswith(prefix) for name in report["modules"])
            log(f"{spec.name}: layer {index + 1}/{len(layers)}: {'resumed' if saved else 'pruned'} {pruned} "
                f"modules in {time.perf_counter() - layer_start:.1f} s")

    zeros = sum(entry.pop("_zeros") for entry in report["modules"].values())
    total = sum(math.prod(entry["shape"]) for entry in report["modules"].values())
    report["overall_sparsity"] = zeros / total if total else 0.0
    report["skipped_modules"] = skipped
    report["resumed_layers"] = resumed   # wall time and peak memory are of this run only
    report["wall_seconds"] = time.perf_counter() - start
    if run_device.type == "cuda":
        report["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(run_device))
    else:
        report["peak_memory_bytes"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return report
