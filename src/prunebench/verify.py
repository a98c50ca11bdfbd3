"""Did a rebuild reproduce the numbers? Rerun a slice of jobs in a scratch directory and compare.

Each target's job runs again in `scratch/<n>/`, where every other result of the run is a symbolic
link to the recorded one, so Snakemake reruns that job and nothing upstream. Its output is compared
with the recorded output file by file: byte for byte first; failing that, with the fields that
measure the machine rather than the result (wall time, peak memory) set aside; failing that,
number by number against a tolerance (for GPU kernels, which need not be bitwise deterministic).
The manifest lists every result file with its sha256 and where it came from.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

import yaml

from . import paths
from .grid import evaluated_models
from .io import InputError, JobError, is_temporary, iter_jsonl, mark_output_dir, read_json, write_json
from .provenance import MEASURED_FIELDS, sha256_file

VOLATILE_FIELDS = frozenset(MEASURED_FIELDS)  # set aside when compared, should a result hold them

IDENTICAL, EQUAL_BUT_TIMING, WITHIN_TOLERANCE, DIFFERS, MISSING = (
    "identical", "identical but timing", "within tolerance", "differs", "missing")


def expand_targets(config: dict) -> list[str]:
    """verify.targets with the run's names in: `{model}` is its first model, `{recipe}` its first
    SSGR recipe (else its first recipe), `{method}` its first Wanda method (else its first method):
    the cheapest slice that still covers self-generation, selection and pruning."""
    recipes, definitions = config["calibration"]["recipes"], config["calibration"]["recipe_definitions"]
    methods = config["pruning"]["methods"]
    names = {
        "{model}": evaluated_models(config)[0],
        "{recipe}": next((r for r in recipes if definitions.get(r, {}).get("type") == "ssgr"), recipes[0]),
        "{method}": next((m for m in methods if m.startswith("wanda")), methods[0]),
    }
    targets = []
    for target in config["verify"]["targets"]:
        for placeholder, name in names.items():
            target = target.replace(placeholder, name)
        targets.append(target)
    return targets


def mirror(root: Path, scratch: Path, products: str | Iterable[str]) -> None:
    """`scratch` as a copy of `root`'s results made of symbolic links, without `products` (the
    rerun job's outputs and log).

    Every folder on the way to a product is a real folder of links, so that the rerun writes none of
    its files into the recorded results. Only what lies under the products' top folder (results/) is
    linked: Snakemake's own state and the config of the recorded run are never shared with the rerun.
    Called again with more products (once the rerun's job is known), it unlinks what they now cover.
    """
    products = [Path(products)] if isinstance(products, (str, os.PathLike)) else [Path(p) for p in products]
    on_the_way = {Path(*product.parts[:depth]) for product in products for depth in range(1, len(product.parts) + 1)}
    scratch = scratch.resolve()
    for product in products:
        if (scratch / product).is_symlink():
            (scratch / product).unlink()
        for depth in range(len(product.parts)):
            here = Path(*product.parts[:depth])
            folder = scratch / here
            if folder.is_symlink():     # linked whole before: now a folder of links
                folder.unlink()
            folder.mkdir(parents=True, exist_ok=True)
            source = root / here
            # results only: the working directory's .snakemake (metadata, locks) and config stay apart
            if depth == 0 or not source.is_dir():
                continue
            for entry in source.iterdir():
                if here / entry.name in on_the_way or is_temporary(Path(entry.name)) \
                        or scratch.is_relative_to(entry.resolve()):
                    continue
                link = folder / entry.name
                if not link.exists() and not link.is_symlink():
                    link.symlink_to(entry.resolve())
                    # the link's own time is the recorded one, so Snakemake sees the recorded order
                    stat = entry.stat()
                    os.utime(link, ns=(stat.st_atime_ns, stat.st_mtime_ns), follow_symlinks=False)


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _largest_difference(a, b) -> float:
    """The largest absolute difference between two JSON values of the same shape (inf if the shape,
    a string or a key differs)."""
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        return 0.0 if a == b else math.inf
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b))
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((_largest_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf
        return max((_largest_difference(x, y) for x, y in zip(a, b)), default=0.0)
    return 0.0 if a == b else math.inf


def _load(path: Path):
    if path.suffix == ".json":
        return read_json(path)
    if path.suffix == ".jsonl":
        return list(iter_jsonl(path))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return None


def compare_file(recorded: Path, rerun: Path, tolerance: float) -> tuple[str, float]:
    """(status, largest difference) of one file against its rerun."""
    if not rerun.exists():
        return MISSING, math.inf
    if sha256_file(recorded) == sha256_file(rerun):
        return IDENTICAL, 0.0
    a, b = _load(recorded), _load(rerun)
    if a is None:
        return DIFFERS, math.inf
    if recorded.suffix == ".safetensors":
        if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
            return DIFFERS, math.inf
        worst = max(((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel()), default=0.0)
    else:
        a, b = _strip(a), _strip(b)
        if a == b:
            return EQUAL_BUT_TIMING, 0.0
        worst = _largest_difference(a, b)
    return (WITHIN_TOLERANCE if worst <= tolerance else DIFFERS), worst


def compare(recorded: Path, rerun: Path, tolerance: float) -> dict:
    """A file or a directory against its rerun: the worst status of its files."""
    order = [IDENTICAL, EQUAL_BUT_TIMING, WITHIN_TOLERANCE, DIFFERS, MISSING]
    files = [recorded] if recorded.is_file() else sorted(p for p in recorded.rglob("*") if p.is_file())
    statuses, worst, differing = [], 0.0, []
    for path in files:
        relative = path.relative_to(recorded) if recorded.is_dir() else Path()
        status, difference = compare_file(path, rerun / relative if recorded.is_dir() else rerun, tolerance)
        statuses.append(status)
        worst = max(worst, difference)
        if status in (DIFFERS, MISSING):
            differing.append(str(relative) if recorded.is_dir() else path.name)
    extra = sorted(str(p.relative_to(rerun)) for p in rerun.rglob("*")
                   if p.is_file() and not (recorded / p.relative_to(rerun)).exists()) if rerun.is_dir() else []
    status = max(statuses, key=order.index) if statuses else MISSING
    if extra:
        status, differing = DIFFERS, differing + [f"{name} (only in the rerun)" for name in extra]
    return {"status": status, "files": len(files), "largest_difference": worst if math.isfinite(worst) else None,
            "differing_files": differing}


def verify(targets: list[str], *, snakefile: str, config: dict, scratch: str | Path, tolerance: float,
           cores: int = 1, root: str | Path = ".", log=print) -> list[dict]:
    """Rerun each target's job in its own scratch directory and compare it with the recorded one.

    A rerun that matched is removed (a pruned checkpoint is a full model); one that did not is
    kept for inspection, with Snakemake's output in `snakemake.log` beside it.
    """
    root, scratch = Path(root).resolve(), Path(scratch).resolve()
    shutil.rmtree(scratch, ignore_errors=True)
    mark_output_dir(scratch, "verify")
    rows = []
    for number, target in enumerate(targets):
        recorded = root / target
        if not recorded.exists():
            raise InputError(f"verify: {target} is not in the recorded results; build it first")
        work = scratch / str(number)
        mirror(root, work, target)
        configfile = work / "config.yaml"
        configfile.write_text(yaml.safe_dump(anchored(config, root)))
        command = [sys.executable, "-m", "snakemake", "-s", snakefile, "--directory", str(work),
                   "--configfile", str(configfile), "--cores", str(cores), "--rerun-triggers", "mtime",
                   "--nocolor", target]
        job = _the_one_job(snakefile, work, target, configfile)
        # the job's other outputs and its log are the rerun's own, not links to the recorded ones
        mirror(root, work, job["products"])
        rule = job["rule"]
        log(f"verify: rerunning {target} ({rule}) in {work}")
        start = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True)
        (work / "snakemake.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise JobError(f"verify: the rerun of {target} failed (Snakemake's output: {work / 'snakemake.log'})")
        row = {"target": target, "rule": rule, "tolerance": tolerance, **compare(recorded, work / target, tolerance)}
        log(f"verify: {target}: {row['status']} (rerun in {time.monotonic() - start:.1f} s)")
        if row["status"] in (IDENTICAL, EQUAL_BUT_TIMING, WITHIN_TOLERANCE):
            shutil.rmtree(work, ignore_errors=True)
        rows.append(row)
    return rows


def _the_one_job(snakefile: str, work: Path, target: str, configfile: Path) -> dict:
    """The job a rerun of `target` in `work` runs; an error if it would run any other."""
    try:
        jobs = planned(snakefile, work, [target], configfiles=[configfile], rerun_triggers=["mtime"])
    except Exception as err:  # noqa: BLE001 - Snakemake's own errors, said in one line
        raise JobError(f"verify: Snakemake cannot plan the rerun of {target}: {err}") from None
    if len(jobs) != 1:
        counted = dict(Counter(job["rule"] for job in jobs))
        raise JobError(f"verify: rerunning {target} would run {counted or 'nothing'} instead of its own job alone")
    return jobs[0]


def planned_jobs(snakefile: str | Path, workdir: str | Path, targets: list[str], **options) -> Counter:
    """How many jobs of each rule Snakemake would run for `targets` ({rule: count})."""
    return Counter(job["rule"] for job in planned(snakefile, workdir, targets, **options))


def planned(snakefile: str | Path, workdir: str | Path, targets: list[str], *,
            configfiles: list[str | Path] = (), config: dict | None = None,
            rerun_triggers: list[str] | None = None) -> list[dict]:
    """The jobs Snakemake would run for `targets`, each {rule, wildcards, priority, products (its
    outputs, log and benchmark files), shell (its command)}, from a dry run through its Python API:
    the job events it logs, not the text it prints."""
    from snakemake.api import SnakemakeApi
    from snakemake.logging import logger
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings
    from snakemake_interface_logger_plugins.common import LogEvent

    jobs: list[dict] = []

    class JobEvents(logging.Handler):
        def emit(self, record):
            if getattr(record, "event", None) == LogEvent.JOB_INFO:
                files = [*record.output, *record.log, *([record.benchmark] if record.benchmark else [])]
                jobs.append({"rule": record.rule_name, "wildcards": dict(record.wildcards or {}),
                             "priority": record.priority, "shell": getattr(record, "shellcmd", None),
                             # the paths as Snakemake prints them, less the flags it adds: "x (temporary)"
                             "products": [re.sub(r" \([^()]*\)$", "", str(f)) for f in files]})

    dag_settings = DAGSettings(targets=list(targets))
    if rerun_triggers is not None:
        from snakemake.settings.enums import RerunTrigger

        dag_settings = DAGSettings(targets=list(targets), rerun_triggers=frozenset(
            RerunTrigger.parse_choices_set(rerun_triggers)))
    handler, cwd = JobEvents(), os.getcwd()  # the API moves into the working directory
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[Path(c) for c in configfiles],
                                                               config=config or {}),
                                snakefile=Path(snakefile), workdir=Path(workdir))
        dag = workflow.dag(dag_settings)
        logger.addHandler(handler)
        try:
            dag.execute_workflow(executor="dryrun")
        finally:
            logger.removeHandler(handler)
            os.chdir(cwd)
    return jobs


def anchored(config: dict, root: Path) -> dict:
    """The config with its paths relative to the recorded run's directory made absolute, so that a
    rerun in a scratch directory reads the same mirror, reference record and local models."""
    config = json.loads(json.dumps(config))
    if config.get("data_dir") and not Path(config["data_dir"]).is_absolute():   # the mirror
        config["data_dir"] = str((root / config["data_dir"]).resolve())
    # the reference record, where the run read it from its directory (else the rerun reads it from
    # the workflow's directory, as the run did)
    if config.get("reference") and not Path(config["reference"]).is_absolute() and (root / config["reference"]).is_file():
        config["reference"] = str((root / config["reference"]).resolve())
    for entry in config.get("models", {}).values():
        source = entry.get("source", {})
        if "path" in source and not Path(source["path"]).expanduser().is_absolute():
            source["path"] = str((root / source["path"]).resolve())
    return config


def _provenance_of(path: Path, beside) -> dict | None:
    """The provenance recorded in a result file, or beside it (a checkpoint's sparsity.json)."""
    try:
        if path.suffix == ".json":
            return read_json(path).get("provenance")
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as handle:
                return json.loads(handle.readline() or "{}").get("_provenance")
    except (OSError, ValueError, AttributeError):
        return None
    for parent in path.parents:
        if (parent / paths.SPARSITY_FILE).exists():
            return beside(parent / paths.SPARSITY_FILE)
        if parent.name == paths.RESULTS.name:
            break
    return None


def manifest(root: str | Path = ".", out: str | Path = paths.MANIFEST) -> int:
    """Every result file with its size, sha256, and the commit and inputs it was made from.

    Work in progress (temporaries, `.parts` folders) and what describes the run rather than the
    results (logs, verify's scratch, machine measurements: paths.UNHASHED) are not listed, so two
    runs of the same inputs write the same manifest.
    """
    root = Path(root)
    out = Path(out).resolve()
    beside = functools.cache(lambda record: read_json(record).get("provenance"))  # one read per checkpoint
    entries = []
    for path in result_files(root, leave_out=out):
        prov = _provenance_of(path, beside) or {}
        entries.append({"path": str(path.relative_to(root)), "bytes": path.stat().st_size,
                        "sha256": sha256_file(path), "code_commit": prov.get("code_commit"),
                        "inputs": prov.get("inputs", {})})
    write_json(out, {"files": entries})
    return len(entries)


def result_files(root: str | Path, leave_out: Path | None = None) -> list[Path]:
    """The results of the run in `root` that the manifest lists, sorted: no work in progress
    (temporaries, `.parts` folders), nothing that describes the run rather than the results
    (paths.UNHASHED), not `leave_out`."""
    root = Path(root)
    results = root / paths.RESULTS
    skipped = [root / folder for folder in paths.UNHASHED]
    return [path for path in sorted(p for p in results.rglob("*") if p.is_file())
            if path.resolve() != leave_out and not is_temporary(path.relative_to(results))
            and not any(path.is_relative_to(s) for s in skipped)]


SAME_BUT_COMMIT = "identical but the code commit and kernels recorded"
COMMIT_MARK = "<code commit>"


def _commits(root: Path, files: list[Path]) -> set[str]:
    """Every code commit the run's results record (with and without -dirty)."""
    beside = functools.cache(lambda record: read_json(record).get("provenance"))
    found = {(_provenance_of(path, beside) or {}).get("code_commit") for path in files}
    full = {commit for commit in found if commit and commit != "unknown"}
    return full | {commit[:length] for commit in full for length in (12, 7)}  # the report shows it short


# A provenance block's input hashes, and a manifest entry's file hash: set aside with the commit,
# since a file that records the commit hashes differently in each run, and so does every file that
# names it as an input. Each input is itself one of the files compared.
_INPUT_HASHES = re.compile(r'("inputs": \{)[^{}]*(\})')
_FILE_HASH = re.compile(r'("sha256": ")[0-9a-f]{64}(")')
_FILE_SIZE = re.compile(r'("bytes": )[0-9]+()')
# A provenance block's kernels (provenance.kernels): what the machine computed with, set aside whole
# so that a result the same on two kernel sets counts as the same, and records made before results
# named their kernels still compare. The block is flat and always followed by the inputs.
_KERNELS = re.compile(r'\s*"kernels": \{[^{}]*\},')


def comparable_text(path: Path, commits: list[str]) -> bytes | None:
    """A text file's bytes with every recorded commit replaced by one mark, the hashes that follow
    from it and the kernels it records set aside (None for binary files)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for commit in commits:  # longest first: a -dirty commit before the commit it extends
        text = text.replace(commit, COMMIT_MARK)
    text = _KERNELS.sub("", _INPUT_HASHES.sub(r"\1" + COMMIT_MARK + r"\2", text))
    if path.name == Path(paths.MANIFEST).name:  # a PDF's size too: its compressed text holds the commit
        text = _FILE_SIZE.sub(r"\1" + COMMIT_MARK + r"\2", _FILE_HASH.sub(r"\1" + COMMIT_MARK + r"\2", text))
    return text.encode("utf-8")


def compare_runs(first: str | Path, second: str | Path) -> dict[str, str]:
    """Every result of two runs (working directories), as the manifest lists them, compared with the
    code commit and the kernels each records set aside: {relative path: status}. A refactor changes
    no result, so between the runs of two commits of the code every status is IDENTICAL or
    SAME_BUT_COMMIT.

    Bytes first; then text with every commit either run records (in provenance blocks, table
    headers, the manifest, the report's pages) replaced by one mark, and with the hashes that follow
    from it set aside: the input hashes of provenance blocks (an input that records the commit
    hashes differently, and each input is compared in its own right) and the manifest's file
    hashes and sizes. The kernels a provenance block names are set aside whole: where they differ,
    so do the bytes of any result they changed. A PDF, whose text is compressed, counts as the same
    where its source beside it does (the LaTeX of the paper, the SVG of a figure drawn with it)."""
    first, second = Path(first), Path(second)
    listed = {root: {str(p.relative_to(root)): p for p in result_files(root)} for root in (first, second)}
    commits = sorted(_commits(first, list(listed[first].values())) | _commits(second, list(listed[second].values())),
                     key=len, reverse=True)
    statuses: dict[str, str] = {}
    for name in sorted(set(listed[first]) | set(listed[second])):
        a, b = listed[first].get(name), listed[second].get(name)
        if a is None or b is None:
            statuses[name] = MISSING
        elif a.read_bytes() == b.read_bytes():
            statuses[name] = IDENTICAL
        else:
            plain_a, plain_b = comparable_text(a, commits), comparable_text(b, commits)
            statuses[name] = SAME_BUT_COMMIT if plain_a is not None and plain_a == plain_b else DIFFERS
    return pdfs_as_their_sources(statuses, DIFFERS)


def pdfs_as_their_sources(statuses: dict[str, str], differs: str) -> dict[str, str]:
    """A PDF whose text is compressed (so it holds the commit unreadably) counts as the same where
    its source beside it does (the LaTeX of the paper, the SVG of a figure drawn with it)."""
    for name, status in list(statuses.items()):
        sources = [statuses.get(str(Path(name).with_suffix(suffix))) for suffix in (".tex", ".svg")]
        if status == differs and name.endswith(".pdf") and any(s in (IDENTICAL, SAME_BUT_COMMIT) for s in sources):
            statuses[name] = SAME_BUT_COMMIT
    return statuses
