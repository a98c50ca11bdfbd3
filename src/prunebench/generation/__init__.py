"""Text generation behind one interface, with backends registered by name, run in resumable shards.

A backend turns a list of `Request`s (a rendered prompt and a seed each) into `Completion`s. The
runner cuts the requests into shards, writes each finished shard atomically beside the output and
merges them at the end, so a job killed at any point continues where it stopped on the next run,
with no sample lost or written twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..io import InputError, atomic_path, dump_line, iter_jsonl
from ..prompts import PROMPT_TOO_LONG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_new_tokens: int


@dataclass(frozen=True)
class Request:
    id: str
    sample: int
    prompt: str
    seed: int
    max_new_tokens: int | None = None   # this request's own limit (its benchmark's); None: the sampling's

    def limit(self, sampling: "Sampling") -> int:
        return self.max_new_tokens if self.max_new_tokens is not None else sampling.max_new_tokens


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int
    finish: str  # "stop" (end of turn), "length" (token limit) or PROMPT_TOO_LONG (nothing generated)


def fits(prompt_tokens: int, max_model_len: int) -> bool:
    """Whether a prompt leaves room for at least one generated token in the model's context."""
    return prompt_tokens < max_model_len


class Backend(Protocol):
    shard_size: int

    def generate(self, requests: list[Request], sampling: Sampling) -> list[Completion]:
        """Completions in the order of `requests`."""


def _hf(model, entry, device):
    from .hf import HFBackend

    return HFBackend(model, entry, device)


def _vllm(model, entry, device):
    from .vllm import VLLMBackend

    return VLLMBackend(model, entry, device)


BACKENDS: dict[str, Callable[..., Backend]] = {"hf": _hf, "vllm": _vllm}


def make_backend(name: str, model, entry: dict, device: str | None = None) -> Backend:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise InputError(f"unknown generation backend {name!r} (known: {', '.join(BACKENDS)})") from None
    return factory(model, entry, device)


def request_seed(root_seed: int, problem_id: str, sample: int) -> int:
    """A seed per problem and sample, independent of batching, order and backend."""
    digest = hashlib.sha256(f"{root_seed}\0{problem_id}\0{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _fingerprint(requests: list[Request], sampling: Sampling, model_key: str) -> str:
    digest = hashlib.sha256(json.dumps([model_key, asdict(sampling)]).encode())
    for r in requests:
        limit = "" if r.max_new_tokens is None else f"\0{r.max_new_tokens}"   # unchanged where no request has its own
        digest.update(f"{r.id}\0{r.sample}\0{r.seed}{limit}\0{r.prompt}\n".encode())
    return digest.hexdigest()


class Progress:
    """Samples done, tokens per second and time left, on stderr (the job's log)."""

    def __init__(self, total: int, already_done: int, label: str):
        self.total, self.done, self.label = total, already_done, label
        self.fresh = self.tokens = 0
        self.start = time.monotonic()

    def update(self, requests: int, tokens: int) -> None:
        self.done += requests
        self.fresh += requests
        self.tokens += tokens
        elapsed = max(time.monotonic() - self.start, 1e-9)
        left = elapsed / self.fresh * (self.total - self.done)
        print(f"[{self.label}] {self.done}/{self.total} samples, {self.tokens / elapsed:.1f} tokens/s, "
              f"~{left / 60:.1f} min left", file=sys.stderr, flush=True)


def run_sharded(backend_factory: Callable[[], Backend], requests: list[Request], sampling: Sampling,
                work_dir: str | Path, *, model_key: str, extra: Callable[[Request], dict],
                shard_size: int | None = None, label: str = "generate") -> list[dict]:
    """Generate every request, resuming from the finished shards in `work_dir`; return all samples.

    `extra(request)` adds fields (dataset metadata) to each sample. The backend is built only if a
    shard is left to do. The caller removes `work_dir` once it has written its own output, so a
    job killed after generation but before that write loses no generated text.
    """
    parts = Path(work_dir)
    fingerprint = _fingerprint(requests, sampling, model_key)
    stamp = parts / "FINGERPRINT"
    if parts.exists() and not stamp.exists() and any(parts.iterdir()):
        raise InputError(f"{parts}: not empty and not the shards of a generation run (no FINGERPRINT); "
                         f"remove it or name another output")
    if parts.exists() and (not stamp.exists() or stamp.read_text().strip() != fingerprint):
        log.warning("discarding shards of a different request set in %s", parts)
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")

    backend: Backend | None = None
    size = shard_size
    shard_files = sorted(parts.glob("shard-*.jsonl"))
    if shard_files:  # a resumed run keeps the shard size it started with
        size = int((parts / "SHARD_SIZE").read_text())
    if size is None:
        backend = backend_factory()
        size = backend.shard_size
    (parts / "SHARD_SIZE").write_text(str(size))

    shards = [requests[i:i + size] for i in range(0, len(requests), size)]
    done = {int(p.stem.split("-")[1]) for p in shard_files}
    progress = Progress(len(requests), sum(len(shards[i]) for i in done if i < len(shards)), label)
    if done:
        log.info("resuming: %d of %d shards already done", len(done), len(shards))
    for index, shard in enumerate(shards):
        if index in done:
            continue
        if backend is None:
            backend = backend_factory()
        completions = backend.generate(shard, sampling)
        with atomic_path(parts / f"shard-{index:05d}.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as out:
            for request, completion in zip(shard, completions, strict=True):
                out.write(dump_line({"id": request.id, "sample": request.sample, **extra(request),
                                     "text": completion.text, "tokens": completion.tokens,
                                     "finish": completion.finish, "seed": request.seed}))
        progress.update(len(shard), sum(c.tokens for c in completions))
        too_long = sum(c.finish == PROMPT_TOO_LONG for c in completions)
        if too_long:
            log.warning("%s: %d prompt(s) of shard %d are longer than the model's max_model_len; nothing was "
                        "generated for them (finish %r, graded as its own verdict)", label, too_long, index,
                        PROMPT_TOO_LONG)
    return [record for index in range(len(shards)) for record in iter_jsonl(parts / f"shard-{index:05d}.jsonl")]
