"""Snakemake's own CPU time with and without `prunebench.scheduling.apply()`, in one run.

The same generated workflow (`--jobs` jobs that only sleep, `--cores` at a time) runs twice in a
fresh directory: once as Snakemake ships, once with the single-timer fix that rules/common.smk
applies. The jobs use no CPU to speak of, so the CPU time of each `snakemake` process (with its
children) is the scheduler's. Snakemake 9.27's timer chains grow with the jobs finished, so the
saving grows with the length of the run; the default runs about 250 jobs for about 2.5 hours.

    python bench/scheduler_overhead.py --jobs 120 --seconds 1 --cores 2
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKFLOW = """{preamble}
rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))

rule sleep:
    output: "out/{{i}}.txt"
    shell: "sleep {seconds}; touch {{output}}"
"""
FIX = "import prunebench.scheduling\nassert prunebench.scheduling.apply()\n"


def run(workdir: Path, preamble: str, jobs: int, seconds: float, cores: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of snakemake and its children) of one whole run."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(WORKFLOW.format(preamble=preamble, jobs=jobs, seconds=seconds))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet", "all"],
                   cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if len(list((workdir / "out").glob("*.txt"))) != jobs:
        raise SystemExit(f"{workdir}: the run did not make all {jobs} outputs")
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=120, help="jobs in the generated workflow")
    parser.add_argument("--seconds", type=float, default=1.0, help="how long each job sleeps")
    parser.add_argument("--cores", type=int, default=2, help="jobs at a time")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scheduler-overhead.") as tmp:
        shipped = run(Path(tmp, "shipped"), "", args.jobs, args.seconds, args.cores)
        fixed = run(Path(tmp, "fixed"), FIX, args.jobs, args.seconds, args.cores)
    floor = args.jobs * args.seconds / args.cores
    print(f"{args.jobs} jobs of {args.seconds:g} s, {args.cores} at a time (at least {floor:.1f} s of wall time)")
    print("| scheduler | wall s | snakemake CPU s |")
    print("|---|---|---|")
    for name, (wall, cpu) in (("as shipped", shipped), ("prunebench.scheduling", fixed)):
        print(f"| {name} | {wall:.1f} | {cpu:.2f} |")
    print(f"CPU ratio fixed / shipped: {fixed[1] / shipped[1]:.2f}")


if __name__ == "__main__":
    main()
