"""The second paper's task suite, run by lm-evaluation-harness on any model prunebench builds.

prunebench does not score these tasks itself: it loads the model once (a prepared model.json or a
pruned checkpoint, in the entry's dtype), hands it to lm-eval's HF model type, and runs each
configured task through `lm_eval.simple_evaluate` on a seeded subset of its documents. Tasks the
local mirror holds come from the YAMLs in `tasks/` (lm-eval's own prompts and metrics, reading the
mirror); any other name is lm-eval's built-in task, which reads the hub.

Each task's outcome is written as soon as it is known (`{task}.json`: lm-eval's results for the
task plus the score the tables show, and provenance; `{task}.jsonl`: lm-eval's per-document
records), so a killed run resumes at the next task. A task that fails records why and the run goes
on. Sealed tasks (TruthfulQA) keep only document ids and metric values per document: their
questions appear in no file and no log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from pathlib import Path

from ..io import write_json, write_jsonl
from .. import sandbox
from ..taskfiles import CODE_TASKS, MIRRORED_TASKS, SHIPPED_TASKS, TASK_DIR
from .tasks.code import PASS_AT_K
from .tasks.mirror import SEALED_TASKS

log = logging.getLogger(__name__)
# A logged document's text field longer than this is replaced by its length and sha256 (LiveCodeBench
# problems carry their tests, megabytes each, which the task's data already holds).
RECORD_FIELD_LIMIT = 64 << 10
# Per-document fields lm-eval logs that hold a document's text (the prompt, the document itself).
TEXT_FIELDS = ("doc", "arguments", "resps", "filtered_resps", "target")


def task_manager(data_dir: str | None, builtin: bool = True):
    """lm-eval's task index: the mirror-reading YAMLs here, over lm-eval's built-in tasks where
    `builtin` (indexing those takes seconds; a suite of mirrored tasks alone needs none of them);
    the mirror's folder reaches the loaders as task metadata."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASK_DIR), include_defaults=builtin, metadata={"data_dir": data_dir})


def subset(count: int, limit: int | None, seed: int, task: str) -> list[int] | None:
    """The documents a limited run evaluates: a seeded sample (the same for every model, so that
    rows of a table compare the same documents), in document order; None for all of them."""
    if limit is None or limit >= count:
        return None
    return sorted(random.Random(f"{seed}:{task}").sample(range(count), limit))


def primary_metric(results: dict) -> str | None:
    """The metric a table shows when the entry names none: acc_norm where the task has it (as the
    structured-pruning papers report), else acc, else the first metric lm-eval reports."""
    names = [k.split(",")[0] for k in results if "," in k and not k.split(",")[0].endswith("_stderr")]
    return next((m for m in ("acc_norm", "acc") if m in names), names[0] if names else None)


def score(results: dict, metric: str) -> tuple[float | None, float | None]:
    """(value, standard error) of `metric` in lm-eval's results for one task, in percent."""
    def pick(key):
        value = results.get(f"{key},none")
        if value is None:
            value = next((v for k, v in results.items() if k.split(",")[0] == key), None)
        return float(value) * 100 if isinstance(value, (int, float)) and math.isfinite(value) else None

    return pick(metric), pick(f"{metric}_stderr")


def _docs_digest(task, indices: list[int] | None) -> str:
    """sha256 of the documents evaluated, so that two runs on different data cannot pass as one."""
    digest = hashlib.sha256()
    chosen = None if indices is None else set(indices)
    for i, doc in enumerate(task.eval_docs):
        if chosen is None or i in chosen:
            digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def serializable(value):
    """lm-eval's own serialization of what JSON cannot hold, a function named by its module and
    name: lm-eval writes its repr, whose memory address differs in every process, so a task whose
    config holds functions (winogrande's doc_to_text) would differ from run to run."""
    from lm_eval.utils import handle_non_serializable

    if callable(value) and hasattr(value, "__qualname__"):
        return f"<function {getattr(value, '__module__', None) or '?'}.{value.__qualname__}>"
    return handle_non_serializable(value)


def _sample_record(sample: dict, sealed: bool) -> dict:
    """lm-eval's per-document record as JSON-ready data; a sealed task's without any text."""
    if sealed:
        sample = {k: v for k, v in sample.items() if k not in TEXT_FIELDS and not k.endswith("_hash")}
    elif isinstance(sample.get("doc"), dict):
        sample = {**sample, "doc": {k: _bounded(v) for k, v in sample["doc"].items()}}
    return json.loads(json.dumps(sample, default=serializable))


def _bounded(value):
    if isinstance(value, str) and len(value) > RECORD_FIELD_LIMIT:
        return {"omitted_characters": len(value), "sha256": hashlib.sha256(value.encode()).hexdigest()}
    return value


def run_task(lm, manager, name: str, spec: dict, *, seed: int, system_prompt: str | None = None) -> tuple[dict, list]:
    """Evaluate one task; return (outcome, per-document records). Raises what lm-eval raises."""
    from lm_eval import simple_evaluate

    task = manager.load([name])["tasks"][name]
    runs_code = bool(getattr(task.config, "unsafe_code", False))
    if runs_code and name not in SHIPPED_TASKS:
        raise RuntimeError(f"{name} runs model-written code through lm-eval's own executor, outside prunebench's "
                           f"sandbox; it is not run (prunebench's code tasks: "
                           f"{', '.join(CODE_TASKS)})")
    indices = subset(len(task.eval_docs), spec.get("limit"), seed, name)
    samples = spec.get("samples", 1)
    if samples > 1:  # several generations per document: pass@k for every k they allow
        task.config.repeats = samples
        for kwargs in task._metric_fn_kwargs.values():
            if "k" in kwargs:
                kwargs["k"] = [k for k in PASS_AT_K if k <= samples]
    gen_kwargs = {k: v for k, v in (("max_gen_toks", spec.get("max_gen_toks")), ("temperature", spec.get("temperature")))
                  if v is not None}
    if spec.get("temperature"):
        gen_kwargs["do_sample"] = True
    chat = bool(spec.get("chat_template"))
    output = simple_evaluate(
        model=lm, tasks=[task], task_manager=manager, num_fewshot=spec.get("num_fewshot"),
        samples={name: indices} if indices is not None else None, gen_kwargs=gen_kwargs or None,
        apply_chat_template=chat, system_instruction=system_prompt if chat else None,
        log_samples=True, confirm_run_unsafe_code=runs_code, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
        fewshot_random_seed=seed, bootstrap_iters=spec.get("bootstrap_iters", 1000))
    results = output["results"][name]
    metric = spec.get("metric") or primary_metric(results)
    value, stderr = score(results, metric)
    outcome = {
        "task": name,
        "category": spec.get("category"),
        "metric": metric,
        "score": value,
        "stderr": stderr,
        "documents": len(indices) if indices is not None else len(task.eval_docs),
        "of_documents": len(task.eval_docs),
        "documents_sha256": _docs_digest(task, indices),
        "sealed": name in SEALED_TASKS,
        **({"sandbox": sandbox.isolation()} if runs_code else {}),  # how model-written code ran (the report says)
        # lm-eval's own record of the task (its results shape), without clock times.
        "lm_eval": json.loads(json.dumps({
            "results": {name: results},
            "versions": {name: output["versions"].get(name)},
            "n-shot": {name: output["n-shot"].get(name)},
            "higher_is_better": {name: output["higher_is_better"].get(name)},
            "n-samples": {name: output["n-samples"].get(name)},
            "configs": {name: output["configs"].get(name)},
        }, default=serializable)),
    }
    records = [_sample_record(s, name in SEALED_TASKS) for s in output["samples"][name]]
    metadata = (outcome["lm_eval"]["configs"][name] or {}).get("metadata") or {}
    if "config_source" in metadata:  # where the YAML lies on this machine: named by package instead
        metadata["config_source"] = _portable_source(metadata["config_source"])
    return outcome, records


def _portable_source(source: str) -> str:
    """A task YAML's path as `package:relative/path`, the same in every clone and environment."""
    import lm_eval

    path = Path(source)
    for package, root in (("prunebench", TASK_DIR.parent.parent), ("lm_eval", Path(lm_eval.__file__).parent)):
        if path.is_relative_to(root):
            return f"{package}:{path.relative_to(root).as_posix()}"
    return path.name


def run_suite(model: str, tasks: dict[str, dict], out_dir: str | Path, *, data_dir: str | None, seed: int,
              batch_size: int, allow_hub: bool = False, device: str | None = None, backend: str = "hf",
              tensor_parallel: int = 1, provenance_of=None, measurements: str | Path | None = None,
              loglikelihood_batch_size: int | None = None) -> dict[str, dict]:
    """Every task of `tasks` ({name: spec}) on one model, resuming after the last task written.

    A task's earlier result is kept only if it succeeded (or its cell was skipped) and its
    provenance names the same model, inputs, seed and settings: an out-dir reused for another
    model, or a task that failed (its data missing, since mirrored), is evaluated again.

    The hf backend scores log-likelihood requests `loglikelihood_batch_size` at a time (None =
    `batch_size`) and generates `batch_size` prompts at a time.

    `provenance_of(name, spec)` gives each result's provenance block; `measurements` (a path)
    receives each task's wall time, which results do not hold (they stay byte-identical).
    """
    from ..models import model_info

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if data_dir:
        sandbox.hide(data_dir)  # model-written code never sees the mirror, wherever it is kept
    info = model_info(model)
    todo = {n: s for n, s in tasks.items() if not _kept(out_dir / f"{n}.json", n, s, provenance_of)}
    outcomes, timings = {}, {}
    if todo and info.get("skipped"):  # a cell whose pruning was skipped: nothing to evaluate
        for name, spec in todo.items():
            _write(out_dir, name, _empty(name, spec, skipped=info["skipped"]), [], provenance_of, spec)
        return {}
    if not todo:
        return {}
    entry = info["entry"]
    lm, manager = None, task_manager(data_dir, builtin=allow_hub and not set(todo) <= set(SHIPPED_TASKS))
    for name, spec in todo.items():
        if name not in MIRRORED_TASKS and not allow_hub:
            outcomes[name] = _empty(name, spec, error=f"{name}: not in the local mirror, and the hub is not "
                                                      f"allowed (config allow_hub: true, or --allow-hub)")
            _write(out_dir, name, outcomes[name], [], provenance_of, spec)
            continue
        if lm is None:
            lm = (_vllm_lm(model, entry, batch_size, tensor_parallel, seed) if backend == "vllm" else
                  _hf_lm(model, entry, batch_size, device, loglikelihood_batch_size))
        started = time.monotonic()
        try:
            outcome, records = run_task(lm, manager, name, spec, seed=seed, system_prompt=entry.get("system_prompt"))
        except Exception as err:  # a task that fails records why; the next one still runs
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            if name in SEALED_TASKS:
                reason = type(err).__name__  # a sealed task's message may quote a document
            log.error("%s: failed: %s", name, reason)
            outcome, records = _empty(name, spec, error=f"{type(err).__name__}: {reason}"[:500]), []
        timings[name] = round(time.monotonic() - started, 3)
        _write(out_dir, name, outcome, records, provenance_of, spec)
        outcomes[name] = outcome
        if outcome.get("score") is not None:
            log.info("%s: %s %.1f over %d documents", name, outcome["metric"], outcome["score"], outcome["documents"])
    if measurements:
        write_json(measurements, {"wall_seconds": timings})
    return outcomes


def _hf_lm(model, entry: dict, batch_size: int, device, loglikelihood_batch_size: int | None = None):
    """lm-eval's HF model type around the model as prunebench loads it (the entry's dtype).

    lm-eval pads each batch of log-likelihood requests to its longest (sorted longest first, one
    batch of 64 holds a small task whole), which on a CPU, where a forward pass is compute-bound,
    is work thrown away: those requests get their own, smaller batch. Generation keeps the large
    one, where batching is what makes decoding fast.
    """
    from lm_eval.models.huggingface import HFLM

    from ..models import load_model, load_tokenizer

    class BatchedHFLM(HFLM):
        def _scoring(self, score, requests, disable_tqdm):
            generation_batch, self.batch_size_per_gpu = self.batch_size_per_gpu, loglikelihood_batch_size
            try:
                return score(requests, disable_tqdm=disable_tqdm)
            finally:
                self.batch_size_per_gpu = generation_batch

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return self._scoring(super().loglikelihood, requests, disable_tqdm)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return self._scoring(super().loglikelihood_rolling, requests, disable_tqdm)

    loaded = load_model(model, entry.get("dtype", "bfloat16"), device)
    lm_class = HFLM if loglikelihood_batch_size in (None, batch_size) else BatchedHFLM
    return lm_class(pretrained=loaded, tokenizer=load_tokenizer(model), batch_size=batch_size,
                    max_length=entry.get("max_model_len"), device=str(loaded.device))


def vllm_arguments(model, entry: dict, batch_size: int, tensor_parallel: int, seed: int) -> dict:
    """lm-eval's vLLM model type's arguments: the checkpoint directory (a standard architecture
    vLLM serves), read in place; no second copy of the weights is written."""
    from ..models import model_dir, require_vllm_servable, vllm_cpu_arguments

    require_vllm_servable(model)
    return {"pretrained": str(model_dir(model)), "dtype": entry.get("dtype", "bfloat16"),
            "tensor_parallel_size": tensor_parallel, "batch_size": batch_size,
            "max_model_len": entry.get("max_model_len"), "seed": seed, **vllm_cpu_arguments()}


def _vllm_lm(model, entry: dict, batch_size: int, tensor_parallel: int, seed: int):
    """lm-eval's vLLM model type (the entry's backend: vllm), on GPUs or vLLM's CPU build."""
    from lm_eval.models.vllm_causallms import VLLM

    return VLLM(**vllm_arguments(model, entry, batch_size, tensor_parallel, seed))


def _kept(path: Path, name: str, spec: dict, provenance_of) -> bool:
    """Whether an earlier result at `path` is this task's, for this model and settings, and final."""
    if not path.is_file():
        return False
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(earlier, dict) or earlier.get("error") or earlier.get("task") != name:
        return False
    if provenance_of is None:
        return True
    wanted, recorded = provenance_of(name, spec), earlier.get("provenance") or {}
    return all(recorded.get(key) == wanted.get(key) for key in ("inputs", "model", "seed", "params"))


def _empty(name: str, spec: dict, **why) -> dict:
    return {"task": name, "category": spec.get("category"), "metric": spec.get("metric"), "score": None,
            "stderr": None, "documents": 0, **why}


def _write(out_dir: Path, name: str, outcome: dict, records: list, provenance_of, spec: dict) -> None:
    prov = provenance_of(name, spec) if provenance_of else None
    write_jsonl(out_dir / f"{name}.jsonl", records, provenance=prov)
    write_json(out_dir / f"{name}.json", {**outcome, **({"provenance": prov} if prov else {})})
