"""Did a rebuild on another machine reproduce the reference run? The reference record, and the
comparison a user runs after `make report`.

A reference record (`prunebench reference`, kept in the repository's reference/) holds what another
machine needs to judge its own rebuild without the reference's files: every result's sha256 and the
sha256 of its text with the code commit set aside (so a rebuild at another commit still matches
where only the commit differs), each result's inputs as its provenance names them (the DAG, so that
a difference can be traced to the first stage where it appears), every metric with its standard
error, the per-problem verdicts and per-document task scores (ids and scores only: nothing of a
sealed set's text), each pruned checkpoint's tensor digests and weight probes (values at fixed
positions, and norms), and the machine that made it (CPU, the kernels PyTorch chose, threads,
versions).

`prunebench reproduce` compares a run with it: how many results are byte-identical or identical
but the commit, which differ, and of those the first divergences (a differing result whose own
inputs all match: a calibration set, a pruned model's record, an evaluation), for a pruned
checkpoint that differs the tensors that do and the largest weight difference, each metric's
difference in standard errors, paired over the same problems where both sides have them, and a
verdict per table and figure of the registry: identical, within noise (every metric behind it
within Z paired standard errors) or different, with the evidence. Nothing that differs is called
identical: a differing file without metrics behind it makes its outputs "different".
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import re
from pathlib import Path

from . import paths
from .evaluation import mean_and_se
from .io import InputError, iter_jsonl, read_json
from .outputs import OUTPUTS
from .provenance import package_versions
from .verify import DIFFERS, IDENTICAL, SAME_BUT_COMMIT, _commits, _provenance_of, comparable_text, pdfs_as_their_sources, result_files

FORMAT = 1
Z = 2.0   # a metric differs beyond noise at |difference| > Z standard errors of the paired difference
MISSING, EXTRA = "missing in the rebuild", "not in the reference"   # with verify's IDENTICAL, SAME_BUT_COMMIT, DIFFERS
WITHIN_NOISE, DIFFERENT = "within noise", "different"


# ---------------------------------------------------------------------------------------- the machine

def machine(root: str | Path | None = None) -> dict:
    """The machine as far as results can depend on it: CPU model and ISA flags, the kernel set
    PyTorch picked (ATEN_CPU_CAPABILITY forces another), threads, and package versions.

    `threads` is the describing process's own count; the model jobs run with the threads the
    workflow gives them (half the cores), which only they can tell: `job_threads` holds the counts
    that the run's speed measurements recorded inside their jobs (None where `root` has none)."""
    import torch

    flags, model = [], platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.processor()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                flags = sorted(f for f in present if re.match(r"^(avx|amx|fma|f16c|sse4|vnni)", f))
                break
    except OSError:
        pass
    return {"cpu": model, "isa": flags, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY"),
            "threads": torch.get_num_threads(), "job_threads": None if root is None else job_threads(root),
            "job_kernels": None if root is None else job_kernels(root),
            "cores": os.cpu_count(), "cuda": torch.cuda.is_available(), "versions": package_versions()}


def job_threads(root: str | Path) -> list[int] | None:
    """The thread counts the run's model jobs computed with, as its speed measurements recorded them."""
    found = set()
    for path in sorted(Path(root).glob(paths.speed("*", "*", "*"))):
        threads = read_json(path).get("threads")
        if isinstance(threads, int):
            found.add(threads)
    return sorted(found) or None


def job_kernels(root: str | Path) -> list[dict] | None:
    """The kernels the run's results name (provenance.kernels), each set once: more than one where
    jobs ran on other kernels (a run resumed on another machine, or with ATEN_CPU_CAPABILITY set)."""
    beside = functools.cache(lambda record: read_json(record).get("provenance"))
    found = {}
    for path in result_files(root):
        block = (_provenance_of(path, beside) or {}).get("kernels")
        if isinstance(block, dict):
            found.setdefault(json.dumps(block, sort_keys=True), block)
    return [found[key] for key in sorted(found)] or None


def kernels_described(described: dict) -> str:
    """A machine's kernels as the comparison prints them: those its results name, else (records
    older than `job_kernels`) the kernel set PyTorch picked for the describing process."""
    blocks = described.get("job_kernels")
    if not blocks:
        return f"{described.get('torch_cpu_capability')} kernels"
    return " and ".join(", ".join([f"{b.get('aten')} kernels", str(b.get("blas"))]
                                  + [f"{k}={v}" for k, v in b.items() if k not in ("aten", "blas")])
                        for b in blocks)


def threads_described(described: dict) -> str:
    """A machine's threads as the comparison prints them: its model jobs' where the run measured
    them (records older than `job_threads` hold only the describing process's count)."""
    counts = described.get("job_threads")
    if counts:
        return f"model jobs on {'/'.join(map(str, counts))} thread{'s' if counts != [1] else ''}"
    return "model jobs' threads not recorded"


# ATen's x86 kernel sets, widest first, as torch.backends.cpu.get_cpu_capability() names them; the
# ATEN_CPU_CAPABILITY value that forces each is its name in lower case.
X86_KERNEL_SETS = ("AVX512", "AVX2", "DEFAULT")


def narrower_kernel_sets(picked: str | None = None) -> list[str]:
    """The ATEN_CPU_CAPABILITY values this machine can run besides the kernel set PyTorch picked:
    each narrower vectorized set and ATen's scalar one ("default"). An invariance across CPUs is
    measured against each, so that an AVX-512 machine also shows what an AVX2 one would compute."""
    if picked is None:
        import torch

        picked = torch.backends.cpu.get_cpu_capability()
    if picked not in X86_KERNEL_SETS:
        return ["default"] if picked != "DEFAULT" else []
    return [name.lower() for name in X86_KERNEL_SETS[X86_KERNEL_SETS.index(picked) + 1:]]


# ---------------------------------------------------------------------------------------- recording

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _metrics(path: Path) -> dict | None:
    """A metrics file's numbers: an evaluation's pass@1 (or a task's score), its standard error and n."""
    if path.suffix != ".json" or path.parent.parts[-4:-3] not in (("eval",), ("tasks",)):
        return None
    data = read_json(path)
    if "pass@1" in data:
        return {"value": data["pass@1"], "se": data["stderr"], "n": data.get("problems")}
    if "score" in data:
        return {"value": data["score"], "se": data.get("stderr"), "n": data.get("documents"),
                "metric": data.get("metric")}
    return None


def _units(path: Path, metric: str | None) -> dict[str, float] | None:
    """The per-problem scores behind a metric (mean correctness over each problem's samples), or the
    per-document task scores: ids and numbers only, so a sealed set's text never leaves the run."""
    samples = path.with_suffix(".jsonl")
    if not samples.exists():
        return None
    per: dict[str, list[float]] = {}
    for record in iter_jsonl(samples):
        if "correct" in record:                       # an evaluation's sample
            per.setdefault(str(record["id"]), []).append(float(bool(record["correct"])))
        elif "doc_id" in record and isinstance(record.get(metric), (bool, int, float)):   # a task's document
            per.setdefault(str(record["doc_id"]), []).append(float(record[metric]))
    return {key: sum(values) / len(values) for key, values in per.items()} or None


def _weights(path: Path) -> dict | None:
    """A pruned or recovered checkpoint's record: its tensors' digests and probes (the checkpoint itself
    is gone once evaluated; its record stays beside where it was)."""
    if path.suffix != ".json" or path.parent.parent.parent.name != "pruned":
        return None
    data = read_json(path)
    if "weights_sha256" not in data:
        return None
    probes = data.get("weight_probes", {})
    return {tensor: {"sha256": digest, **probes.get(tensor, {})} for tensor, digest in data["weights_sha256"].items()}


def _inputs(path: Path, name: str, beside, outputs: list[str]) -> list[str]:
    """The results a result was made from: its provenance's inputs; a table's CSV or a figure's
    SVG and PDF, those of the JSON written beside it."""
    prov = _provenance_of(path, beside)
    if prov is None and name in outputs and path.with_suffix(".json").exists():
        prov = _provenance_of(path.with_suffix(".json"), beside)
    return sorted((prov or {}).get("inputs", {}))


def record(root: str | Path = ".") -> dict:
    """The reference record of the finished run in `root` (a working directory holding results/)."""
    root = Path(root)
    files = result_files(root)
    if not files:
        raise InputError(f"{root / paths.RESULTS}: no results to record (run `snakemake report` first)")
    commits = sorted(_commits(root, files), key=len, reverse=True)
    entries, metrics, units, weights = {}, {}, {}, {}
    beside = functools.cache(lambda record: read_json(record).get("provenance"))
    outputs = [f for output in OUTPUTS.values() for f in output.files().values()]
    for path in files:
        name = str(path.relative_to(root))
        if name == paths.MANIFEST or name.startswith(paths.report("")):
            continue   # the report renders the tables and figures compared one by one, and holds this comparison
        plain = comparable_text(path, commits)
        entries[name] = {"sha256": _sha(path.read_bytes()), "plain": _sha(plain) if plain is not None else None,
                         "inputs": _inputs(path, name, beside, outputs)}
        found = _metrics(path)
        if found is not None:
            metrics[name] = found
            per = _units(path, found.get("metric"))
            if per is not None:
                units[name] = per
        tensors = _weights(path)
        if tensors is not None:
            weights[name] = tensors
    return {"format": FORMAT, "commit": next((c for c in commits if len(c) >= 40), None), "machine": machine(root),
            "files": entries, "metrics": metrics, "units": units, "weights": weights}


def write(root: str | Path, out: str | Path) -> dict:
    data = record(root)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # compact: the default's record holds every result and metric, and lives in the repository
    out.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
    return data


# ---------------------------------------------------------------------------------------- comparing

def _paired(reference: dict[str, float], ours: dict[str, float]) -> tuple[float, float, int]:
    """Mean difference (ours - reference) over the units both have, its standard error, and n."""
    keys = sorted(set(reference) & set(ours))
    return (*mean_and_se([ours[k] - reference[k] for k in keys]), len(keys))


def _metric_change(name: str, ref: dict, ours_metrics: dict | None, ref_units: dict | None,
                   our_units: dict | None) -> dict:
    """One metric's difference: paired over the same problems where both sides list them, else
    against the two standard errors combined."""
    if ours_metrics is None:
        return {"metric": name, "status": MISSING}
    ours_value, ref_value = ours_metrics["value"], ref["value"]
    if ours_value is None or ref_value is None:
        same = ours_value == ref_value
        return {"metric": name, "reference": ref_value, "rebuild": ours_value, "difference": None,
                "se": None, "z": None, "status": WITHIN_NOISE if same else DIFFERENT}
    difference = ours_value - ref_value
    if ref_units and our_units:
        _, se, n = _paired(ref_units, our_units)
        se, how = se * 100, f"paired over {n} shared problems"   # metrics in %, each problem's score in [0, 1]
    else:
        se = math.hypot(ref.get("se") or 0.0, ours_metrics.get("se") or 0.0)
        how = "the two standard errors combined"
    # z is None where a difference has no standard error to be judged by (every paired problem moved
    # alike, or neither side has one): then any difference is beyond noise. JSON holds no infinity.
    if difference == 0:
        z = 0.0
    elif se is None or math.isnan(se) or se == 0:
        z = None
    else:
        z = abs(difference) / se
    return {"metric": name, "reference": ref_value, "rebuild": ours_value, "difference": difference,
            "se": None if se is None or math.isnan(se) else se, "z": z, "how": how,
            "status": WITHIN_NOISE if z is not None and z <= Z else DIFFERENT}


def compare(reference: dict, root: str | Path = ".") -> dict:
    """The run in `root` against a reference record (see the module's docstring)."""
    if reference.get("format") != FORMAT:
        raise InputError(f"the reference record has format {reference.get('format')!r}; this prunebench reads {FORMAT}")
    root = Path(root)
    ours = record(root)
    statuses = {}
    for name in sorted(set(reference["files"]) | set(ours["files"])):
        ref, mine = reference["files"].get(name), ours["files"].get(name)
        if ref is None:
            statuses[name] = EXTRA
        elif mine is None:
            statuses[name] = MISSING
        elif ref["sha256"] == mine["sha256"]:
            statuses[name] = IDENTICAL
        elif ref["plain"] is not None and ref["plain"] == mine["plain"]:
            statuses[name] = SAME_BUT_COMMIT
        else:
            statuses[name] = DIFFERS
    pdfs_as_their_sources(statuses, DIFFERS)
    differing = {name for name, status in statuses.items() if status in (DIFFERS, MISSING)}
    first = sorted(name for name in differing if name in reference["files"]
                   and not any(i in differing for i in reference["files"][name]["inputs"]))
    changes = {name: _metric_change(name, ref, ours["metrics"].get(name), reference["units"].get(name),
                                    ours["units"].get(name))
               for name, ref in reference["metrics"].items() if statuses.get(name) in (DIFFERS, MISSING)}
    return {"reference_commit": reference.get("commit"), "rebuild_commit": ours["commit"],
            "reference_machine": reference.get("machine"), "machine": ours["machine"],
            "counts": {status: sum(s == status for s in statuses.values())
                       for status in (IDENTICAL, SAME_BUT_COMMIT, DIFFERS, MISSING, EXTRA)},
            "first_divergences": [{"path": name, "status": statuses[name], "stage": _stage(name)} for name in first],
            "metrics": list(changes.values()), "outputs": _output_verdicts(reference, statuses, changes),
            "weights": [_weight_change(name, tensors, ours["weights"].get(name, {}))
                        for name, tensors in sorted(reference.get("weights", {}).items())
                        if statuses.get(name) == DIFFERS and name in ours["weights"]],
            "files": statuses}


def _weight_change(name: str, reference: dict, ours: dict) -> dict:
    """How far a checkpoint's weights moved, from its record alone: the tensors whose digests differ,
    the largest difference at their probes (same positions on both sides), and the largest relative
    difference of their L2 norms."""
    differing = sorted(t for t in reference if t in ours and reference[t]["sha256"] != ours[t]["sha256"])
    largest, where, norm = 0.0, None, 0.0
    for tensor in differing:
        ref, mine = reference[tensor], ours[tensor]
        if ref.get("at") is not None and ref.get("at") == mine.get("at"):
            gap = max((abs(a - b) for a, b in zip(ref["values"], mine["values"])), default=0.0)
            if gap > largest or where is None:
                largest, where = gap, tensor
        if ref.get("l2") and mine.get("l2") is not None:
            norm = max(norm, abs(mine["l2"] - ref["l2"]) / ref["l2"])
    return {"record": name, "tensors": len(reference), "differing": len(differing),
            "only_one_side": sorted(set(reference) ^ set(ours)),
            "largest_probe_difference": largest if differing else 0.0, "at": where, "largest_relative_l2": norm}


def _stage(name: str) -> str:
    """The stage a result belongs to: its folder under results/."""
    parts = Path(name).parts
    return parts[1] if len(parts) > 1 and parts[0] == paths.RESULTS.name else parts[0]


def _output_verdicts(reference: dict, statuses: dict, changes: dict) -> list[dict]:
    """Per table and figure of the registry, in its order: identical where its files are; else within
    noise where every differing input it reads directly is a metric within noise (or a table judged
    within noise above it), and different otherwise, with the evidence: a metric beyond noise, an
    input that differs and has no standard error (a calibration set, a record), or, where its inputs
    all match, the output itself (the code that writes it changed)."""
    judged: dict[str, str] = {}
    verdicts = []
    for output in OUTPUTS.values():
        files = [f for f in output.files().values() if f in statuses]
        if not files:
            continue
        verdict, evidence = IDENTICAL, []
        if any(statuses[f] not in (IDENTICAL, SAME_BUT_COMMIT) for f in files):
            direct = set().union(*(reference["files"].get(f, {}).get("inputs", []) for f in files))
            differing = sorted(d for d in direct if statuses.get(d) in (DIFFERS, MISSING))
            verdict = WITHIN_NOISE
            for name in differing:
                if name in changes:
                    verdict = DIFFERENT if changes[name]["status"] != WITHIN_NOISE else verdict
                    evidence.append(f"{name}: {_describe(changes[name])}")
                elif name in judged:
                    verdict = DIFFERENT if judged[name] == DIFFERENT else verdict
                    evidence.append(f"{name}: {judged[name]}")
                else:
                    verdict = DIFFERENT
                    evidence.append(f"{name}: {statuses[name]}")
            if not differing or any(statuses[f] == MISSING for f in files):
                verdict = DIFFERENT
                evidence += [f"{f}: {statuses[f]}" + ("" if statuses[f] == MISSING else
                             " while every input it reads matches (the code that writes it changed)")
                             for f in files if statuses[f] not in (IDENTICAL, SAME_BUT_COMMIT)]
        judged.update({f: verdict for f in files})
        verdicts.append({"output": output.name, "verdict": verdict, "evidence": evidence})
    return verdicts


def _describe(change: dict) -> str:
    if change["status"] == MISSING:
        return "missing in the rebuild"
    if change["difference"] is None:
        return f"{change['reference']} in the reference, {change['rebuild']} here"
    se = "–" if change["se"] is None else f"{change['se']:.2f}"
    z = "no standard error to judge it by" if change["z"] is None else f"{change['z']:.1f} SE"
    return (f"{change['reference']:.2f} → {change['rebuild']:.2f} ({change['difference']:+.2f}, SE {se}, "
            f"{z}; {change['how']})")


def failures(result: dict) -> list[str]:
    """What did not reproduce: outputs judged different, metrics beyond noise, results missing."""
    return ([v["output"] for v in result["outputs"] if v["verdict"] == DIFFERENT]
            + [c["metric"] for c in result["metrics"] if c["status"] != WITHIN_NOISE]
            + [name for name, status in result["files"].items() if status == MISSING])


def summary_lines(result: dict) -> list[str]:
    """What `prunebench reproduce` prints."""
    counts = result["counts"]
    lines = [f"reference: commit {(result['reference_commit'] or '?')[:12]} on {result['reference_machine']['cpu']} "
             f"({kernels_described(result['reference_machine'])}; {threads_described(result['reference_machine'])})",
             f"this run:  commit {(result['rebuild_commit'] or '?')[:12]} on {result['machine']['cpu']} "
             f"({kernels_described(result['machine'])}; {threads_described(result['machine'])})",
             "; ".join(f"{n} {status}" for status, n in counts.items() if n)]
    for item in result["first_divergences"]:
        lines.append(f"first divergence: {item['path']} ({item['stage']}: {item['status']})")
    for change in result.get("weights", []):
        lines.append(f"{change['record']}: {change['differing']} of {change['tensors']} tensors differ; largest "
                     f"difference at the probes {change['largest_probe_difference']:.3g} ({change['at']}), largest "
                     f"relative L2 difference {change['largest_relative_l2']:.3g}"
                     + (f"; {len(change['only_one_side'])} tensors on one side only" if change["only_one_side"] else ""))
    for change in result["metrics"]:
        lines.append(f"{change['metric']}: {change['status']}: {_describe(change)}")
    for verdict in result["outputs"]:
        lines.append(f"{verdict['output']}: {verdict['verdict']}"
                     + (f" ({'; '.join(verdict['evidence'][:3])})" if verdict["evidence"] else ""))
    return lines
