"""`prunebench <stage>`: the commands the workflow's rules call, one per stage.

Each command reads its inputs, calls the stage's pure core, and writes its outputs atomically with
provenance. Bad input ends the command with one line naming the file, field or line, and no output;
an output path that writing could destroy (the working directory, an input, a directory some other
program wrote) is refused before any work. Every default comes from the workflow schema.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from . import datasets, paths
from .config import check_pruning_options, pruning_options, schema_default, schema_property
from .io import (InputError, JobError, check_output_dir, check_output_file, iter_jsonl, mark_output_dir,
                 require_fields, write_json, write_jsonl)
from .provenance import MEASURED_FIELDS, checkpoint_fingerprint, provenance, sha256_file
from .pruning.spec import METHOD_NAMES

log = logging.getLogger("prunebench")


# ---------------------------------------------------------------- helpers

def _json_arg(text: str, flag: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{flag}: not valid JSON ({err.msg})") from None


def _named_paths(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise InputError(f"{flag} {item!r}: expected NAME=PATH")
        out[name] = path
    return out


def _problems(dataset: str, data_path: str, count: int | None, seed: int, args) -> list[dict]:
    """A seeded subset of a normalized dataset file, with sealed question text restored in memory."""
    records = [r for r in iter_jsonl(data_path)]
    for lineno, record in enumerate(records, 2):
        require_fields(record, ("id", "question", "answer"), f"{data_path}:{lineno}")
    if count is not None:
        records = datasets.subset(records, count, seed, dataset)
    return [dict(r, dataset=dataset) for r in datasets.hydrate(dataset, records, args.data_dir, args.allow_hub)]


def _readable(dataset: str, flag: str) -> None:
    """Calibration and self-generation may read a dataset's text: a sealed one is a benchmark only."""
    if datasets.get(dataset).sealed:
        raise InputError(f"{flag} {dataset}: sealed (its questions never leave their archive in plain text); "
                         f"it can only be a benchmark")


def _generate(args, problems: list[dict], work_dir: str, label: str) -> tuple[list[dict], dict | None]:
    """Samples for every (problem, sample index), one pooled run over problems of any datasets.

    With `--adaptive-tau` the samples come in rounds, each graded before the next, and a problem
    SSGR has dropped gets no more (generation/adaptive.py); returns the samples and what was saved.
    """
    import functools

    from .generation import Request, Sampling, make_backend, request_seed, run_sharded
    from .generation.adaptive import sample_in_rounds
    from .models import load_tokenizer, model_dir, model_info
    from .prompts import build_prompt

    info = model_info(args.model)
    entry = dict(info["entry"], batch_size=args.batch_size, tensor_parallel=args.tensor_parallel)
    tokenizer = load_tokenizer(args.model)
    by_id = {p["id"]: p for p in problems}
    prompts = {p["id"]: build_prompt(tokenizer, entry, p["question"], datasets.instruction_of(p)) for p in problems}
    sampling = Sampling(args.temperature, args.top_p, args.max_new_tokens)
    limits = _token_limits(args)
    backend = functools.cache(lambda: make_backend(args.backend, args.model, entry, args.device))
    model_key = json.dumps([str(model_dir(args.model)), info.get("revision")])

    def generate(pairs: list[tuple[str, int]], work: str | Path) -> list[dict]:
        requests = [Request(pid, s, prompts[pid], request_seed(args.seed, pid, s), limits.get(by_id[pid]["dataset"]))
                    for pid, s in pairs]
        return run_sharded(backend, requests, sampling, work, model_key=model_key,
                           extra=lambda r: {"dataset": by_id[r.id]["dataset"], "meta": by_id[r.id].get("meta", {})},
                           label=label)

    ids = [p["id"] for p in problems]
    if getattr(args, "adaptive_tau", None) is None:
        return generate([(pid, s) for pid in ids for s in range(args.samples)], work_dir), None
    graded = lambda records: [g["correct"] for g in _grade(args, records, problems, args.data)]  # noqa: E731
    samples, saved = sample_in_rounds(ids, args.samples, args.adaptive_tau,
                                      lambda i, pairs: generate(pairs, Path(work_dir) / f"round-{i:03d}"), graded)
    log.info("%s: adaptive sampling drew %d of %d samples (%d skipped, ~%d tokens saved)", label,
             saved["samples_generated"], len(ids) * args.samples, saved["samples_skipped"],
             saved["tokens_saved_estimate"])
    return samples, saved


def _sampling_params(args, benchmark: str | None = None, **extra) -> dict:
    """What shaped a benchmark's samples (its provenance params): the sampling, its token limit."""
    return {**({"benchmark": benchmark} if benchmark else {}), **extra, "samples": args.samples,
            "temperature": args.temperature, "top_p": args.top_p,
            "max_new_tokens": _token_limits(args).get(benchmark, args.max_new_tokens), "backend": args.backend}


def _token_limits(args) -> dict[str, int]:
    """--token-limit BENCHMARK=N as {benchmark: N}, each a positive integer."""
    limits = {}
    for name, value in _named_paths(getattr(args, "token_limit", None), "--token-limit").items():
        if not value.isdigit() or int(value) < 1:
            raise InputError(f"--token-limit {name}={value}: expected a positive number of tokens")
        limits[name] = int(value)
    return limits


def _model_provenance(model: str) -> dict:
    from .models import model_identity, model_info

    return model_identity(model_info(model))


# ---------------------------------------------------------------- commands

def cmd_validate_config(args) -> None:
    from .config import load

    config = load(args.config)
    print(f"{args.config}: valid ({len(config['models'])} model(s))")


def cmd_prepare_model(args) -> None:
    from .models import prepare

    entry = _json_arg(args.entry, "--entry")
    source = entry.get("source") if isinstance(entry, dict) else None
    if not isinstance(source, dict):
        raise InputError("--entry: needs a 'source' object (a model entry of the config)")
    check_output_dir(args.out, args.command, [source["path"]] if "path" in source else [])
    mark_output_dir(args.out, args.command)
    info = prepare(args.name, entry, args.out)
    log.info("model %s ready in %s (%s)", args.name, args.out, info["revision"])


def cmd_data(args) -> None:
    records, origins = datasets.load(args.dataset, args.data_dir, args.allow_hub)
    inputs = [o for o in origins if Path(o).exists()]
    prov = provenance(inputs, params={"dataset": args.dataset, "origins": origins})
    count = write_jsonl(args.out, records, provenance=prov)
    log.info("%s: %d records from %s", args.dataset, count, ", ".join(origins))


def cmd_generate(args) -> None:
    _readable(args.dataset, "--dataset")
    problems = _problems(args.dataset, args.data, args.count, args.seed, args)
    work = paths.parts(args.out)
    samples, saved = _generate(args, problems, work, args.label or args.dataset)
    params = _sampling_params(args, dataset=args.dataset, count=args.count)
    if saved is not None:
        params["adaptive"] = saved
    prov = provenance([args.data, args.model], model=_model_provenance(args.model), seed=args.seed, params=params)
    write_jsonl(args.out, samples, provenance=prov)
    shutil.rmtree(work, ignore_errors=True)


def _grade(args, samples: list[dict], problems: list[dict], where: str) -> list[dict]:
    from .grading import grade_records
    from .models import model_info

    entry = model_info(args.model)["entry"]
    gold = {p["id"]: str(p["answer"]) for p in problems}
    kind = {p["id"]: datasets.kind_of(p) for p in problems}
    missing = sorted({s["id"] for s in samples} - set(gold))
    if missing:
        raise InputError(f"{where}: no problem with id {missing[0]!r} (and {len(missing) - 1} more) "
                         f"that the samples refer to")
    return grade_records(samples, gold, kind, think=entry.get("think"),
                         response_prefix=entry.get("response_prefix", ""), timeout=args.timeout,
                         workers=args.workers)


def cmd_grade(args) -> None:
    problems = [dict(r, dataset=args.dataset) for r in iter_jsonl(args.data)]
    samples = list(iter_jsonl(args.generations))
    for lineno, s in enumerate(samples, 2):
        require_fields(s, ("id", "sample", "text", "tokens", "finish"), f"{args.generations}:{lineno}")
    graded = _grade(args, samples, problems, args.data)
    prov = provenance([args.data, args.generations], model=_model_provenance(args.model),
                      params={"timeout_seconds": args.timeout})
    write_jsonl(args.out, graded, provenance=prov)
    log.info("%s: %d of %d samples correct", args.dataset, sum(g["correct"] for g in graded), len(graded))


GRADED_FIELDS = ("id", "sample", "text", "correct", "filters")  # what the recipes read of a graded sample


def _graded_records(path: str) -> list[dict]:
    """A graded file's samples, each refused by its line where a field the recipes read is missing."""
    records = []
    for lineno, record in enumerate(iter_jsonl(path), 1):
        if not isinstance(record, dict):
            raise InputError(f"{path}:{lineno}: not a JSON object")
        require_fields(record, GRADED_FIELDS, f"{path}:{lineno}")
        records.append(record)
    return records


def cmd_calibrate(args) -> None:
    from . import calibration
    from .config import validate_recipe
    from .models import load_tokenizer, model_info

    spec = validate_recipe(_json_arg(args.spec, "--spec"), "--spec")
    data = _named_paths(args.data, "--data")
    graded = _named_paths(args.graded, "--graded")
    for dataset in data:
        _readable(dataset, "--data")
    info = model_info(args.model)
    ctx = calibration.Context(
        tokenizer=load_tokenizer(args.model), entry=info["entry"], sequences=args.sequences,
        max_length=args.max_length, seed=args.seed,
        problems={d: list(iter_jsonl(p)) for d, p in data.items()},
        graded={d: _graded_records(p) for d, p in graded.items()},
        instructions={d: datasets.get(d).instruction for d in data},
    )
    sequences = calibration.build(ctx, args.recipe, spec)
    requested = spec["sequences"] or args.sequences
    summary = calibration.summary(sequences, requested)
    prov = provenance(list(data.values()) + list(graded.values()) + [args.model],
                      model=_model_provenance(args.model), seed=args.seed,
                      params={"recipe": args.recipe, "spec": spec, "max_length": args.max_length, **summary})
    write_jsonl(args.out, (s.record(i, ctx.tokenizer) for i, s in enumerate(sequences)), provenance=prov)
    log.info("%s: %d of %d sequences, %d tokens", args.recipe, summary["selected"], requested, summary["tokens"])
    if not sequences:  # a finding, not a failure: a generator that solved nothing gives SSGR nothing
        log.warning("%s selected no sequences (no eligible problem or document): a method that needs calibration "
                    "data skips this set, and the tables show its cells as '–' with the reason", args.recipe)


def _prune_spec(args):
    """The method from --method alone (sparsegpt-0.5), or a bare method with --sparsity or --pattern."""
    from .pruning import PruneSpec, parse_method

    if args.sparsity is not None and args.pattern is not None:
        raise InputError("--sparsity and --pattern exclude each other")
    n, colon, m = (args.pattern or "").partition(":")
    if args.pattern is not None and not (colon and n.isdigit() and m.isdigit()):
        raise InputError(f"--pattern {args.pattern!r}: expected N:M, e.g. 2:4")
    try:
        if args.sparsity is not None:
            return PruneSpec(args.method, args.sparsity)
        if args.pattern is not None:
            return PruneSpec(args.method, None, int(n), int(m))
        return parse_method(args.method)
    except ValueError as err:
        raise InputError(f"--method: {err}") from None


def cmd_prune(args) -> None:
    from .calibration import read_calibration
    from .models import empty_model, load_model, load_tokenizer, model_dir, model_identity, model_info, model_limits
    from .pruning import METHODS, check_model, prune_model

    spec = _prune_spec(args)
    options = {name: getattr(args, name) for name in pruning_options(spec.method)}
    check_pruning_options(options)
    info = model_info(args.model)
    entry = info["entry"]
    dtype, layers = args.dtype or entry["dtype"], args.layers or entry["layers"]
    # A whole-model method's check needs the model's layout: built without weights, before any
    # work (an unstructured method's needs only the layers path, which the driver checks at once).
    layout = empty_model(args.model) if METHODS[spec.method].whole is not None else None
    if layout is not None:
        check_model(layout, spec, layers)
    calibration = read_calibration(args.calibration, load_tokenizer(args.model), *model_limits(args.model),
                                   allow_empty=True)
    if not calibration and METHODS[spec.method].needs is not None:
        _skip_pruning(args, spec, info, options)
        return
    extra, traces = {}, None
    if METHODS[spec.method].needs == "traces":   # refused before the model loads where a trace has no problem
        calibration, extra["regenerate"], traces = _traces(args, info["entry"])
    model = load_model(args.model, dtype, args.device)
    # finished layers live beside the output until it is written: a killed job resumes there
    checkpoints = Path(paths.parts(args.out))
    key = json.dumps({"method": spec.name, "layers": layers, "dtype": dtype, **options,
                      "model": [str(model_dir(args.model)), info.get("revision")],
                      "calibration": sha256_file(args.calibration), "traces": traces}, sort_keys=True)
    with _parts_of_this_run(checkpoints):
        report = prune_model(model, calibration, spec, layers_path=layers,
                             skip_modules=entry.get("skip_modules", []), offload_activations=args.offload_activations,
                             device=args.device, checkpoint_dir=checkpoints, checkpoint_key=key, log=log.info,
                             **options, **extra)
    measured = {field: report.pop(field) for field in MEASURED_FIELDS}
    identity = model_identity(info)
    record = {**report, "method": spec.name, "model": {**identity, "entry": entry},
              "calibration_file": args.calibration,
              "provenance": provenance([args.calibration, args.model, *args.problems], model=identity,
                                       params={**options, **({"traces": traces} if traces else {})})}
    _save_checkpoint(args, record, model)
    if args.measurements:
        write_json(args.measurements, {"method": spec.name, **measured})
    shutil.rmtree(checkpoints, ignore_errors=True)
    log.info("%s: overall sparsity %.4f in %.1f s (peak memory %.2f GB)", spec.name, report["overall_sparsity"],
             measured["wall_seconds"], measured["peak_memory_bytes"] / 1e9)


def _traces(args, entry: dict) -> tuple[list, Callable, dict]:
    """A self-generated calibration set as RESP's traces (pruning.resp.Trace): each sequence split
    where its problem's prompt, rebuilt as self-generation built it, ends; a way to regenerate them
    with the model being pruned (the self-generation sampling, a seed per problem, sample and round,
    each trace cut to --trace-tokens as the recipe cut it); and the settings that shape both."""
    from .generation import Request, Sampling, request_seed
    from .generation.hf import HFBackend
    from .models import load_tokenizer
    from .prompts import build_prompt, conversation
    from .pruning.resp import Trace

    tokenizer = load_tokenizer(args.model)
    problems = {}
    for path in args.problems:
        for lineno, problem in enumerate(iter_jsonl(path), 2):
            require_fields(problem, ("id", "question"), f"{path}:{lineno}")
            problems[problem["id"]] = problem
    traces, texts = [], {}
    for lineno, record in enumerate(iter_jsonl(args.calibration), 1):
        where = f"{args.calibration}: sequence {lineno}"
        problem = problems.get(record.get("problem_id"))
        if problem is None or record.get("source") not in datasets.DATASETS:
            raise InputError(f"{where}: not a self-generated trace of a problem in --problems "
                             f"({record.get('problem_id')!r}); {args.method} prunes on the model's own responses "
                             "(a self-generated recipe: sgr, ssgr, ...)")
        instruction = datasets.get(record["source"]).instruction
        text = build_prompt(tokenizer, entry, problem["question"], instruction)
        prompt, ids = tokenizer(text, add_special_tokens=False)["input_ids"], record["input_ids"]
        if ids[:len(prompt)] != prompt or len(ids) <= len(prompt):
            raise InputError(f"{where}: does not begin with its problem's prompt followed by a response "
                             f"({record['problem_id']}, {len(prompt)} prompt tokens, {len(ids)} in all)")
        texts[len(traces)] = (problem["question"], instruction, text)
        traces.append(Trace(prompt, ids[len(prompt):], record["problem_id"], {"sample": record.get("sample") or 0}))
    settings = {"temperature": args.temperature, "top_p": args.top_p, "seed": args.seed,
                "trace_tokens": args.trace_tokens}

    def regenerate(model, current: list, round_: int) -> list[list[int]]:
        backend = HFBackend.over(model, tokenizer, dict(entry, batch_size=len(current)))   # one batch of all traces
        sampling = Sampling(args.temperature, args.top_p, max(1, args.trace_tokens - min(len(t.prompt) for t in current)))
        completions = backend.generate([Request(t.problem_id, t.meta["sample"], texts[i][2],
                                                request_seed(args.seed, f"{t.problem_id}@resp{round_}", t.meta["sample"]))
                                        for i, t in enumerate(current)], sampling)
        responses = []
        for i, (trace, completion) in enumerate(zip(current, completions)):
            question, instruction, _ = texts[i]
            ids = tokenizer(conversation(tokenizer, entry, question, instruction, completion.text),
                            add_special_tokens=False)["input_ids"][:args.trace_tokens]
            responses.append(ids[len(trace.prompt):] or trace.response)
        return responses

    return traces, regenerate, settings


@contextlib.contextmanager
def _checkpoint(args, record: dict, model=None):
    """The one way a job writes a checkpoint folder (prune, recover, a skipped cell): yields the
    staging folder for what the job writes there itself (an adapter), then saves the model with its
    tokenizer files, records every weight's digest and probes, and writes the record (sparsity.json, and
    --record beside it) into the folder, renamed onto --out only when all of it is written."""
    from .io import atomic_dir
    from .models import copy_tokenizer_files, model_dir

    with atomic_dir(args.out, mark=args.command) as staging:
        yield staging
        if model is not None:
            model.save_pretrained(staging)
            copy_tokenizer_files(model_dir(args.model), staging)
            record["weights_sha256"], record["weight_probes"] = checkpoint_fingerprint(
                staging, leave_out=[paths.SPARSITY_FILE])
        write_json(staging / paths.SPARSITY_FILE, record)
    if args.record:
        write_json(args.record, record)


def _save_checkpoint(args, record: dict, model=None) -> None:
    with _checkpoint(args, record, model):
        pass


@contextlib.contextmanager
def _parts_of_this_run(folder: Path):
    """A job's resume folder (`.parts`) is removed when the job refuses its input: a refusal leaves
    nothing behind that it did not find. A folder an earlier run left is kept (it holds work), and
    so is this run's when it fails otherwise (a later run resumes there)."""
    existed = folder.exists()
    try:
        yield
    except InputError:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _skip_pruning(args, spec, info, options) -> None:
    """An empty calibration set (a recipe that found nothing to select) leaves the cell unpruned:
    the output holds only a sparsity record that says so, and evaluation passes that on."""
    from .models import model_identity

    identity = model_identity(info)
    reason = f"{spec.name} needs calibration data, and {args.calibration} selected no sequences"
    record = {"method": spec.name, "skipped": reason, "model": {**identity, "entry": info["entry"]},
              "calibration_file": args.calibration,
              "provenance": provenance([args.calibration, args.model], model=identity, params=options)}
    _save_checkpoint(args, record)
    if args.measurements:
        write_json(args.measurements, {"method": spec.name, "skipped": reason})
    log.warning("%s: skipped: %s", spec.name, reason)


def cmd_recover(args) -> None:
    """LoRA recovery of a pruned checkpoint: the recovered checkpoint (adapter merged, and saved in
    its adapter/ folder) whose sparsity record is the pruned one's with the recovery added."""
    import resource

    from .config import validate_definition
    from .io import read_json
    from .models import load_model, load_tokenizer, model_dir, model_identity, model_info, model_limits
    from .calibration import read_calibration
    from .pruning.driver import RunCheckpoints
    from .pruning.spec import RECOVERY_PATTERN
    from .recovery import recover

    if not re.fullmatch(RECOVERY_PATTERN, args.recovery):
        raise InputError(f"--recovery {args.recovery!r}: a recovery name is lower-case letters, digits and _")
    settings = validate_definition("recovery", _json_arg(args.settings_json, "--settings-json"), "--settings-json",
                                   args.recovery)
    info = model_info(args.model)
    if "pruned" not in info:
        raise InputError(f"--model {args.model}: recovery starts from a pruned checkpoint (one with {paths.SPARSITY_FILE})")
    pruned = read_json(model_dir(args.model) / paths.SPARSITY_FILE)
    method = f"{pruned['method']}+{args.recovery}"
    identity = model_identity(info)
    base = {**pruned, "method": method, "provenance": provenance([args.data, args.model], model=identity,
                                                                  params={"recovery": settings})}
    start = time.perf_counter()
    if "skipped" in info:   # an unpruned (skipped) cell stays what it is
        record = {**base, "recovery": {"name": args.recovery, "skipped": info["skipped"]}}
        _save_checkpoint(args, record)
    else:
        sequences = read_calibration(args.data, load_tokenizer(args.model), *model_limits(args.model))
        model = load_model(args.model, args.dtype or info["entry"]["dtype"], args.device)
        # the training state lives beside the output until it is written: a killed job resumes there
        checkpoint = Path(paths.parts(args.out))
        key = json.dumps({"settings": settings, "model": sha256_file(model_dir(args.model) / paths.SPARSITY_FILE),
                          "data": sha256_file(args.data)}, sort_keys=True)
        with _parts_of_this_run(checkpoint):
            RunCheckpoints(checkpoint, key, log.info)   # discards another run's state, refuses a foreign folder
            record = dict(base)
            with _checkpoint(args, record, model) as staging:
                result = recover(model, sequences, settings, checkpoint=checkpoint / "training.pt",
                                 adapter_dir=staging / "adapter", log=log.info)
                record["recovery"] = {"name": args.recovery, "recipe": settings["recipe"], "data_file": args.data,
                                      **result}
        shutil.rmtree(checkpoint, ignore_errors=True)
    if args.measurements:
        write_json(args.measurements, {"method": method, "wall_seconds": time.perf_counter() - start,
                                       "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
    log.info("%s: recovered in %.1f s", method, time.perf_counter() - start)


def cmd_evaluate(args) -> None:
    """All benchmarks of one model in one pooled run; samples and metrics written per benchmark."""
    from .evaluation import metrics

    from .models import model_info

    data, counts = _named_paths(args.data, "--data"), _named_paths(args.count, "--count")
    for bench in _token_limits(args):
        if bench not in data:
            raise InputError(f"--token-limit {bench}: not a benchmark of this run (--data)")
    out_dir = Path(args.out_dir)
    mark_output_dir(out_dir, args.command)
    skipped = model_info(args.model).get("skipped")
    if skipped:  # a cell whose pruning was skipped: nothing to evaluate, and the metrics say why
        for bench, path in data.items():
            prov = provenance([path, args.model], model=_model_provenance(args.model), seed=args.seed,
                              params=_sampling_params(args, benchmark=bench, count=counts.get(bench)))
            write_jsonl(out_dir / f"{bench}.jsonl", [], provenance=prov)
            write_json(out_dir / f"{bench}.json", {"benchmark": bench, **metrics([]), "skipped": skipped,
                                                   "provenance": prov})
        log.warning("not evaluated: %s", skipped)
        return
    problems = [p for bench, path in data.items()
                for p in _problems(bench, path, int(counts[bench]) if bench in counts else None, args.seed, args)]
    work = paths.parts(out_dir)
    samples, _ = _generate(args, problems, work, args.label or str(out_dir))
    graded = _grade(args, samples, problems, ", ".join(data.values()))
    identity = _model_provenance(args.model)
    for bench, path in data.items():
        bench_samples = [g for g in graded if g["dataset"] == bench]
        prov = provenance([path, args.model], model=identity, seed=args.seed,
                          params=_sampling_params(args, benchmark=bench, count=counts.get(bench)))
        write_jsonl(out_dir / f"{bench}.jsonl", bench_samples, provenance=prov)
        result = metrics(bench_samples, group_by=datasets.get(bench).group_by)
        write_json(out_dir / f"{bench}.json", {"benchmark": bench, **result, "provenance": prov})
        log.info("%s: pass@1 %.1f%% over %d problems", bench, result["pass@1"], result["problems"])
    shutil.rmtree(work, ignore_errors=True)


def cmd_tasks(args) -> None:
    """lm-eval tasks on one model, each written as soon as it is scored (a rerun resumes)."""
    from . import lmeval
    from .config import validate_definition
    from .taskfiles import CODE_TASKS, SHIPPED_TASKS, check_task

    entries = _json_arg(args.suite_json, "--suite-json") if args.suite_json else {}
    if not isinstance(entries, dict):
        raise InputError("--suite-json: expected an object of task entries (the config's task_suite.tasks)")
    for name in args.task or []:
        entries.setdefault(name, {})
    if not entries:
        raise InputError("name at least one task (--task NAME, or --suite-json)")
    for name in entries:  # every name must be a name; only the tasks that run need the hub allowed
        runs = not args.task or name in args.task
        check_task(name, args.allow_hub or not runs, where="--task" if name in (args.task or []) else "--suite-json",
                   entry=name, how="--allow-hub")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit: documents per task, at least 1 (leave it out for all); got {args.limit}")
    # The entries as the config's schema reads them (defaults filled, a bad value named).
    suite = {name: validate_definition("suite_task", spec, "--suite-json", name) for name, spec in entries.items()}
    if args.limit is not None:
        suite = {n: {**s, "limit": args.limit} for n, s in suite.items()}
    if args.task:
        suite = {n: suite[n] for n in args.task}
    foreign = [name for name in suite if name not in SHIPPED_TASKS]
    if foreign:
        known = lmeval.task_manager(args.data_dir, builtin=True).all_tasks
        unknown = [name for name in foreign if name not in known]
        if unknown:
            raise InputError(f"{', '.join(unknown)}: neither a task prunebench ships nor one of lm-eval's")
    code_tasks = sorted(set(suite) & set(CODE_TASKS))
    if code_tasks:
        from .sandbox import unavailable

        reason = unavailable()
        if reason:
            raise InputError(f"{', '.join(code_tasks)} run model-written code, which is never run unprotected: {reason}")
    out_dir = Path(args.out_dir)
    mark_output_dir(out_dir, args.command)
    identity = _model_provenance(args.model)

    def provenance_of(name: str, spec: dict) -> dict:
        return provenance([args.model], model=identity, seed=args.seed,
                          params={"task": name, **spec, "backend": args.backend})

    outcomes = lmeval.run_suite(args.model, suite, out_dir, data_dir=args.data_dir, seed=args.seed,
                                batch_size=args.batch_size, allow_hub=args.allow_hub, device=args.device,
                                backend=args.backend, tensor_parallel=args.tensor_parallel,
                                provenance_of=provenance_of, measurements=args.measurements,
                                loglikelihood_batch_size=args.loglikelihood_batch_size)
    for name, outcome in outcomes.items():
        shown = "–" if outcome["score"] is None else f"{outcome['score']:.1f}"
        print(f"{name}\t{outcome['metric']}\t{shown}\t{outcome.get('error') or outcome.get('skipped') or ''}")


def cmd_speed(args) -> None:
    """Size, prefill and decode throughput and peak memory of one model (run one model per process)."""
    from .models import load_model, model_dir, model_identity, model_info
    from .speed import checkpoint_size, measure, to_semi_structured

    for name in ("prompt_tokens", "new_tokens", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(args, name)}")
    info = model_info(args.model)
    if info.get("skipped"):
        raise InputError(f"{args.model}: its pruning was skipped ({info['skipped']}); there is no model to measure")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    dtype = args.dtype or info["entry"]["dtype"]
    model = load_model(args.model, dtype, args.device).eval()
    sparse = to_semi_structured(model) if args.semi_structured else {}
    measured = measure(model, prompt_tokens=args.prompt_tokens, new_tokens=args.new_tokens,
                       batch_size=args.batch_size, repeats=args.repeats, seed=args.seed)
    result = {"model": model_identity(info), "method": info.get("pruned", "dense"),
              **checkpoint_size(model_dir(args.model)), **measured, **sparse}
    write_json(args.out, result)
    log.info("%s: %d parameters, prefill %.1f tokens/s, decode %.1f tokens/s, peak memory %.2f GB", args.model,
             result["parameters"], result["prefill_tokens_per_second"], result["decode_tokens_per_second"],
             result["peak_memory_bytes"] / 1e9)


def cmd_output(args) -> None:
    """`prunebench table` and `prunebench figure`: one output of the registry, by name."""
    from .outputs import OUTPUTS

    files = {ext: getattr(args, f"out_{ext}") for ext in ("csv", "svg", "pdf", "json") if hasattr(args, f"out_{ext}")}
    OUTPUTS[args.name].write(_json_arg(args.config_json, "--config-json"), files, Path("."))


def cmd_report(args) -> None:
    from .report import render

    render(_json_arg(args.config_json, "--config-json"), ".", args.templates, args.paper, args.out_html,
           args.out_tex, args.out_speed_html)


def cmd_verify(args) -> None:
    from .verify import verify

    rows = verify(args.target, snakefile=args.snakefile, config=_json_arg(args.config_json, "--config-json"),
                  scratch=args.scratch, tolerance=args.tolerance, cores=args.cores, log=log.info)
    write_json(args.out, {"rows": rows})


def cmd_manifest(args) -> None:
    from .verify import manifest

    log.info("manifest: %d files", manifest(".", args.out))


def cmd_reference(args) -> None:
    """The reference record of a finished run (reference/ in the repository holds the default's)."""
    from .reference import write

    if not (Path(args.run) / paths.RESULTS).is_dir():
        raise InputError(f"{args.run}: holds no {paths.RESULTS}/ folder (name a run's working directory)")
    data = write(args.run, args.out)
    log.info("%s: %d results, %d metrics recorded from %s", args.out, len(data["files"]), len(data["metrics"]),
             args.run)


def cmd_reproduce(args) -> None:
    """A run against a reference record: what matches, the first divergences, each metric's
    difference in standard errors, and a verdict per table and figure. Fails if anything differs
    beyond noise."""
    from .io import read_json
    from .reference import compare, failures, summary_lines

    try:
        reference = read_json(args.reference)
    except (OSError, ValueError) as err:
        raise InputError(f"--reference {args.reference}: not a readable JSON record ({err})") from None
    if not (Path(args.run) / paths.RESULTS).is_dir():
        raise InputError(f"{args.run}: holds no {paths.RESULTS}/ folder (name a run's working directory)")
    result = compare(reference, args.run)
    print("\n".join(summary_lines(result)))
    if args.out:
        write_json(args.out, result)
    failed = failures(result)
    if failed and not args.report_only:
        raise JobError(f"{len(failed)} result(s) did not reproduce {args.reference}: {', '.join(failed[:5])} "
                       "(evidence above)")


def cmd_compare(args) -> None:
    """Two runs' results side by side, the code commit set aside (a refactor changes no result)."""
    from .verify import IDENTICAL, SAME_BUT_COMMIT, compare_runs

    for run in (args.first, args.second):
        if not (Path(run) / paths.RESULTS).is_dir():
            raise InputError(f"{run}: holds no {paths.RESULTS}/ folder (name a run's working directory)")
    statuses = compare_runs(args.first, args.second)
    counts = {status: sum(s == status for s in statuses.values()) for status in dict.fromkeys(statuses.values())}
    for name, status in statuses.items():
        if status not in (IDENTICAL, SAME_BUT_COMMIT):
            print(f"{status}\t{name}")
    print("; ".join(f"{count} {status}" for status, count in counts.items()) or "no results in either run")
    if args.out:
        write_json(args.out, {"first": args.first, "second": args.second, "counts": counts, "files": statuses})
    if set(statuses.values()) - {IDENTICAL, SAME_BUT_COMMIT} or not statuses:
        raise JobError(f"the results of {args.first} and {args.second} differ (listed above)")


def cmd_paper_pdf(args) -> None:
    from .latex import compile_pdf

    compile_pdf(args.tex, args.out)


# ---------------------------------------------------------------- parser

def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="the local mirror of the datasets")
    p.add_argument("--allow-hub", action="store_true", help="read datasets missing from the mirror from the hub")


def _add_grading(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=schema_default("grading", "timeout_seconds"),
                   help="wall-clock limit for grading one answer (seconds)")
    p.add_argument("--workers", type=int, default=schema_default("grading", "workers"),
                   help="grading processes (0: one per core)")


def _add_sampling(p: argparse.ArgumentParser, section: str) -> None:
    """Flags of a command that samples from a model; defaults are those of the config `section`."""
    p.add_argument("--model", required=True, help="a prepared model.json or a model/checkpoint directory")
    _add_data_dir(p)
    p.add_argument("--samples", type=int, default=schema_default(section, "samples"))
    p.add_argument("--temperature", type=float, default=schema_default(section, "temperature"))
    p.add_argument("--top-p", type=float, default=schema_default(section, "top_p"))
    p.add_argument("--max-new-tokens", type=int, default=schema_default(section, "max_new_tokens"))
    _add_model_runtime(p, "generation backend (registry name)")
    p.add_argument("--label", default=None, help="name shown in progress lines")
    _add_grading(p)


def _add_model_runtime(p: argparse.ArgumentParser, backend: str) -> None:
    """How a command that runs a model runs it: seed, backend, batch, tensor parallelism, device;
    the defaults are a model entry's."""
    p.add_argument("--seed", type=int, default=schema_default("seed"))
    p.add_argument("--backend", choices=schema_property("models", "*", "backend")["enum"],
                   default=schema_default("models", "*", "backend"), help=backend)
    p.add_argument("--batch-size", type=int, default=schema_default("models", "*", "batch_size"))
    p.add_argument("--tensor-parallel", type=int, default=schema_default("models", "*", "tensor_parallel"))
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")


def _add_pruning_options(p: argparse.ArgumentParser) -> None:
    """One flag per pruning option of the schema (`pruning.blocksize` is --blocksize), with its default."""
    types = {"integer": int, "number": float, "string": str}
    for name, prop in pruning_options().items():
        flag = "--" + name.replace("_", "-")
        if prop.get("type") == "boolean":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=prop["default"],
                           help=prop.get("description"))
        elif prop.get("type") == "array":
            p.add_argument(flag, type=types[prop["items"]["type"]], nargs="+", default=prop["default"],
                           help=prop.get("description"))
        else:
            p.add_argument(flag, type=types.get(prop.get("type"), str), choices=prop.get("enum"),
                           default=prop["default"], help=prop.get("description"))


def _checkpoint_job(p: argparse.ArgumentParser, out: str, device: str) -> None:
    """The flags of a job that writes a checkpoint (prune, recover): where, its record, its
    measurements, and the device and dtype it runs at."""
    p.add_argument("--out", required=True, help=out)
    p.add_argument("--record", default=None, help="also write the sparsity record here (it outlives the checkpoint)")
    p.add_argument("--measurements", default=None, help="write wall time and peak memory here (JSON)")
    p.add_argument("--device", default=None, help=f"{device} (cpu, cuda, cuda:1; default: auto)")
    p.add_argument("--dtype", default=None, help="bfloat16 | float16 | float32 (default: the model entry's)")


def _outputs(p: argparse.ArgumentParser, *, files=(), dirs=(), inputs=()) -> None:
    """Declare which arguments are output files, output directories and inputs: `main` checks
    them before the command does any work."""
    p.set_defaults(output_files=files, output_dirs=dirs, input_args=inputs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunebench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate-config", help="check a workflow config against the schema")
    p.add_argument("config")
    p.set_defaults(func=cmd_validate_config)

    p = sub.add_parser("prepare-model", help="resolve a model entry to a loadable checkpoint (model.json)")
    p.add_argument("--name", required=True)
    p.add_argument("--entry", required=True, help="the model's config entry as JSON")
    p.add_argument("--out", required=True, help="output directory (receives model.json)")
    p.set_defaults(func=cmd_prepare_model)  # checks its output against the entry's source itself

    p = sub.add_parser("data", help="normalize a dataset from the local mirror or the hub")
    p.add_argument("--dataset", required=True)
    _add_data_dir(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_data)
    _outputs(p, files=("out",))

    p = sub.add_parser("generate", help="sample responses of the dense model (resumable)")
    _add_sampling(p, "self_generation")
    p.add_argument("--dataset", required=True, help="registry name of the dataset")
    p.add_argument("--data", required=True, help="the dataset's normalized JSONL")
    p.add_argument("--count", type=int, default=None, help="problems to take (a seeded subset)")
    p.add_argument("--adaptive-tau", type=float, default=schema_default("self_generation", "adaptive_tau"),
                   help="sample in rounds; stop sampling a problem once more than tau x samples are correct")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_generate)
    _outputs(p, files=("out",), inputs=("model", "data"))

    p = sub.add_parser("grade", help="grade generated responses and apply the quality filters")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--generations", required=True)
    _add_grading(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_grade)
    _outputs(p, files=("out",), inputs=("model", "data", "generations"))

    p = sub.add_parser("calibrate", help="build a calibration set with a recipe")
    p.add_argument("--model", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--spec", required=True, help="the recipe's config entry as JSON")
    p.add_argument("--sequences", type=int, default=schema_default("calibration", "sequences"))
    p.add_argument("--max-length", type=int, default=schema_default("calibration", "max_length"))
    p.add_argument("--seed", type=int, default=schema_default("seed"))
    p.add_argument("--data", action="append", help="DATASET=normalized.jsonl (repeatable)")
    p.add_argument("--graded", action="append", help="DATASET=graded.jsonl (repeatable)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_calibrate)
    _outputs(p, files=("out",), inputs=("model", "data", "graded"))

    p = sub.add_parser("prune", help="prune a model layer by layer on calibration data")
    p.add_argument("--model", required=True)
    p.add_argument("--calibration", required=True, help="JSONL with input_ids or text per line")
    p.add_argument("--method", required=True, help=f"a method ({', '.join(METHOD_NAMES)}) with --sparsity or "
                   "--pattern, or a full name like sparsegpt-0.5 or shortgpt-0.2")
    p.add_argument("--sparsity", type=float, default=None)
    p.add_argument("--pattern", default=None, help="N:M, e.g. 2:4")
    _checkpoint_job(p, "the pruned checkpoint's directory", "where each layer is pruned")
    p.add_argument("--layers", default=None, help="attribute path of the decoder layers (default: the entry's)")
    _add_pruning_options(p)
    p.add_argument("--offload-activations", action="store_true",
                   help="hold the calibration activations in pinned CPU memory between layers (GPU runs)")
    traces = p.add_argument_group("a method that prunes on its own traces and regenerates them (RESP)")
    traces.add_argument("--problems", nargs="+", default=[],
                        help="the self-generation pools' normalized problem JSONLs: each trace's prompt is rebuilt "
                             "from its problem and must begin the calibration sequence")
    traces.add_argument("--temperature", type=float, default=schema_default("self_generation", "temperature"))
    traces.add_argument("--top-p", type=float, default=schema_default("self_generation", "top_p"))
    traces.add_argument("--seed", type=int, default=schema_default("seed"))
    traces.add_argument("--trace-tokens", type=int, default=schema_default("calibration", "max_length"),
                        help="a regenerated trace's length limit, prompt included (its recipe's max_length)")
    p.set_defaults(func=cmd_prune)
    _outputs(p, files=("record", "measurements"), dirs=("out",), inputs=("model", "calibration"))

    p = sub.add_parser("recover", help="LoRA recovery fine-tuning of a pruned checkpoint (resumable)")
    p.add_argument("--model", required=True, help="the pruned checkpoint's directory")
    p.add_argument("--data", required=True, help="JSONL with input_ids or text per line (a calibration set)")
    p.add_argument("--recovery", required=True, help="the recovery's name: the result is METHOD+NAME")
    p.add_argument("--settings-json", required=True, help="the recovery's settings as JSON (a config recovery entry)")
    _checkpoint_job(p, "the recovered checkpoint's directory", "where the model trains")
    p.set_defaults(func=cmd_recover)
    _outputs(p, files=("record", "measurements"), dirs=("out",), inputs=("model", "data"))

    p = sub.add_parser("evaluate", help="generate, grade and score benchmarks (resumable)")
    _add_sampling(p, "evaluation")
    p.add_argument("--data", action="append", required=True, help="BENCHMARK=normalized.jsonl (repeatable)")
    p.add_argument("--count", action="append", help="BENCHMARK=N problems, a seeded subset (default: all)")
    p.add_argument("--token-limit", action="append",
                   help="BENCHMARK=N: that benchmark's own max new tokens (repeatable; others take --max-new-tokens)")
    p.add_argument("--out-dir", required=True, help="receives BENCHMARK.jsonl (samples) and BENCHMARK.json (metrics)")
    p.set_defaults(func=cmd_evaluate)
    _outputs(p, dirs=("out_dir",), inputs=("model", "data"))

    p = sub.add_parser("tasks", help="run lm-eval tasks (the second paper's suite) on a model, resumable per task")
    p.add_argument("--model", required=True, help="a prepared model.json or a (pruned) checkpoint directory")
    p.add_argument("--task", action="append", help="an lm-eval task name (repeatable); its entry from --suite-json if there")
    p.add_argument("--suite-json", default=None, help="task entries as JSON, as the config's task_suite.tasks")
    p.add_argument("--limit", type=int, default=None, help="documents per task, a seeded subset (overrides the entries)")
    _add_data_dir(p)
    _add_model_runtime(p, "lm-eval's model type: hf (CPU or GPU), or vllm (GPUs)")
    p.add_argument("--loglikelihood-batch-size", type=int,
                   default=schema_default("models", "*", "loglikelihood_batch_size"),
                   help="log-likelihood requests scored together by the hf backend (default: --batch-size)")
    p.add_argument("--measurements", default=None, help="write each task's wall time here (JSON)")
    p.add_argument("--out-dir", required=True, help="receives TASK.json (result) and TASK.jsonl (per document)")
    p.set_defaults(func=cmd_tasks)
    _outputs(p, files=("measurements",), dirs=("out_dir",), inputs=("model",))

    p = sub.add_parser("speed", help="measure a model's size, prefill and decode throughput and peak memory")
    p.add_argument("--model", required=True, help="a prepared model.json or a (pruned) checkpoint directory")
    p.add_argument("--dtype", default=None, help="bfloat16 | float16 | float32 (default: the model entry's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    p.add_argument("--prompt-tokens", type=int, default=schema_default("study", "speed", "prompt_tokens"),
                   help="tokens per prompt (prefill)")
    p.add_argument("--new-tokens", type=int, default=schema_default("study", "speed", "new_tokens"),
                   help="decode steps after the prompt")
    p.add_argument("--batch-size", type=int, default=schema_default("study", "speed", "batch_size"))
    p.add_argument("--repeats", type=int, default=schema_default("study", "speed", "repeats"),
                   help="timed repetitions after a warm-up; the median is kept")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--semi-structured", action="store_true",
                   help="run 2:4 linears through PyTorch's semi-structured sparse kernels (CUDA, fp16/bf16)")
    p.add_argument("--seed", type=int, default=schema_default("seed"))
    p.add_argument("--out", required=True, help="the measurements (JSON)")
    p.set_defaults(func=cmd_speed)
    _outputs(p, files=("out",), inputs=("model",))

    from .outputs import EXTENSIONS, names

    for kind, what in (("table", "a table (CSV and JSON)"), ("figure", "a figure (SVG, PDF and JSON)")):
        p = sub.add_parser(kind, help=f"assemble {what} of either paper from results, by its name")
        p.add_argument("--name", required=True, choices=names(kind),
                       help="the output's name in the registry (prunebench.outputs): its target and file stem")
        p.add_argument("--config-json", required=True, help="the part of the config it reads (its rule's params)")
        for ext in EXTENSIONS[kind]:
            p.add_argument(f"--out-{ext}", required=True)
        p.set_defaults(func=cmd_output)
        _outputs(p, files=tuple(f"out_{ext}" for ext in EXTENSIONS[kind]))

    p = sub.add_parser("report", help="render the HTML page and the LaTeX paper")
    p.add_argument("--config-json", required=True)
    p.add_argument("--templates", default="report/templates")
    p.add_argument("--paper", default="report/paper.yaml")
    p.add_argument("--out-html", default=paths.report("index.html"))
    p.add_argument("--out-tex", default=paths.report("paper.tex"))
    p.add_argument("--out-speed-html", default=paths.report(paths.SPEED_PAGE),
                   help="the speed page (measurements of the machine, apart from the reproducible report)")
    p.set_defaults(func=cmd_report)
    _outputs(p, files=("out_html", "out_tex", "out_speed_html"), inputs=("templates", "paper"))

    p = sub.add_parser("verify", help="rerun jobs in a scratch directory and compare them with the results")
    p.add_argument("--target", action="append", required=True, help="a result file or directory (repeatable)")
    p.add_argument("--snakefile", required=True)
    p.add_argument("--config-json", required=True)
    p.add_argument("--scratch", default=paths.verify("scratch"))
    p.add_argument("--tolerance", type=float, default=schema_default("verify", "tolerance"),
                   help="largest difference accepted for a number")
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--out", default=paths.verify("reproducibility.json"))
    p.set_defaults(func=cmd_verify)
    _outputs(p, files=("out",), dirs=("scratch",), inputs=("target",))

    p = sub.add_parser("manifest", help="list every result with its sha256 and provenance")
    p.add_argument("--out", default=paths.MANIFEST)
    p.set_defaults(func=cmd_manifest)
    _outputs(p, files=("out",))

    p = sub.add_parser("compare", help="compare two runs' results file by file, the code commit set aside")
    p.add_argument("first", help="a run's working directory (holding results/)")
    p.add_argument("second", help="another run's working directory")
    p.add_argument("--out", default=None, help="also write every file's status here (JSON)")
    p.set_defaults(func=cmd_compare)
    _outputs(p, files=("out",))

    p = sub.add_parser("reference", help="record a finished run as the reference other machines compare with")
    p.add_argument("--run", default=".", help="the run's working directory (holding results/)")
    p.add_argument("--out", required=True, help="the record (JSON), e.g. reference/default.json")
    p.set_defaults(func=cmd_reference)
    _outputs(p, files=("out",))

    p = sub.add_parser("reproduce", help="did this run reproduce a reference record? (verdict per table and figure)")
    p.add_argument("--reference", required=True, help="a reference record (prunebench reference)")
    p.add_argument("--run", default=".", help="the run's working directory (holding results/)")
    p.add_argument("--out", default=None, help="also write the whole comparison here (JSON)")
    p.add_argument("--report-only", action="store_true",
                   help="write the comparison and exit 0 even where something differs (the workflow's report job)")
    p.set_defaults(func=cmd_reproduce)
    _outputs(p, files=("out",), inputs=("reference",))

    p = sub.add_parser("paper-pdf", help="compile the LaTeX paper to PDF (needs pdflatex)")
    p.add_argument("--tex", default=paths.report("paper.tex"))
    p.add_argument("--out", default=paths.report("paper.pdf"))
    p.set_defaults(func=cmd_paper_pdf)
    _outputs(p, files=("out",), inputs=("tex",))
    return parser


def _declared_inputs(args):
    """(flag name, path) of every value of the command's declared input arguments; a NAME=PATH item
    gives its PATH (where the whole value is not itself a path)."""
    for name in getattr(args, "input_args", ()):
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if value is not None:
                yield name, value.partition("=")[2] if not Path(value).exists() and "=" in value else value


def _input_paths(args) -> list[str]:
    """Every path the command reads, from its declared input arguments (NAME=PATH items included),
    the directory behind --model and the data mirror."""
    found = [path for _, path in _declared_inputs(args)]
    if getattr(args, "model", None) and "model" in getattr(args, "input_args", ()):
        from .models import model_dir

        found.append(str(model_dir(args.model)))
    if getattr(args, "data_dir", None) and Path(args.data_dir).is_dir():
        found.append(args.data_dir)  # the data mirror
    return found


def check_inputs(args) -> None:
    """Refuse, before any work and naming the flag, a declared input file that does not exist."""
    for name, path in _declared_inputs(args):
        if name != "model" and not Path(path).exists():  # models.model_dir says what a --model must be
            raise InputError(f"--{name.replace('_', '-')} {path}: no such file or directory")


def check_outputs(args) -> None:
    """Refuse, before any work, an output that writing would turn into data loss (io.check_output_*)."""
    inputs = _input_paths(args)
    for name in getattr(args, "output_dirs", ()):
        check_output_dir(getattr(args, name), args.command, inputs)
    for name in getattr(args, "output_files", ()):
        if getattr(args, name, None) is not None:
            check_output_file(getattr(args, name), inputs)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        check_inputs(args)
        check_outputs(args)
        args.func(args)
    except (InputError, JobError) as err:
        print(f"prunebench {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
