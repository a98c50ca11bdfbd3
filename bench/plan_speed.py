"""How long Snakemake takes to plan each shipped config, against planning the embedded default, in
one run.

Planning happens before any job: `snakemake -n` on the papers' grids is what a user waits for before
a cluster run starts, and a no-op rerun of a finished run costs the same. Each config is planned
through Snakemake's API (prunebench.verify.planned, a dry run in a fresh directory) `--repeats`
times; the script prints the median time, the jobs planned, the time per job, and the ratio of that
time per job to the default's (the peer: the same code planning the smallest grid).

    python bench/plan_speed.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from prunebench.verify import planned

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("config.yaml", "paper.yaml", "paper-b.yaml")


def _plan(configfile: Path, data_dir: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        jobs = planned(ROOT / "Snakefile", work, ["report"], configfiles=[configfile], config={"data_dir": data_dir})
        return time.perf_counter() - start, len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    rows = {}
    for name in CONFIGS:
        runs = [_plan(ROOT / "config" / name, args.data_dir) for _ in range(args.repeats)]
        rows[name] = (statistics.median(t for t, _ in runs), runs[0][1])
    base = rows[CONFIGS[0]][0] / rows[CONFIGS[0]][1]
    print(f"{'config':14} {'jobs':>6} {'plan s':>8} {'ms/job':>8} {'vs default':>11}")
    for name, (seconds, jobs) in rows.items():
        print(f"{name:14} {jobs:6d} {seconds:8.2f} {seconds / jobs * 1e3:8.2f} {seconds / jobs / base:11.2f}")


if __name__ == "__main__":
    main()
