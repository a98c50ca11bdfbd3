"""What a result does not depend on, on a real model: the variations of tests/test_invariance.py
(which runs them on the tiny model in every test run) against the run's own settings, each a fresh
`prunebench` process, and whether each output stayed byte-identical or by how much it moved.

- prune (SparseGPT and Wanda, 50%): threads 1 vs 2; each narrower kernel set vs the machine's;
- generate (sampled, seeded per request): batch 1 vs the model's; threads 1; each narrower kernel set;
- tasks (lm-eval, log-likelihood): log-likelihood batch 1 vs 8; threads 1; each narrower kernel set.

The narrower kernel sets are those ATEN_CPU_CAPABILITY can force below the one PyTorch picks
(reference.narrower_kernel_sets): on an AVX-512 machine AVX2 and ATen's scalar set, on an AVX2 one
the scalar set.

    python bench/invariance.py --model results/models/qwen2.5-coder-0.5b-instruct/model.json \\
        --calibration results/calibration/qwen2.5-coder-0.5b-instruct/c4.jsonl \\
        --data results/data/gsm8k.jsonl --data-dir ../shared/data --out /tmp/invariance
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from prunebench.provenance import code_commit
from prunebench.reference import machine, narrower_kernel_sets

# Each variation of the kernels: its name in the output folders and the environment that forces it.
KERNELS = {kernels: {"ATEN_CPU_CAPABILITY": kernels} for kernels in narrower_kernel_sets()}


def run(args: list[str], env: dict) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "prunebench", *args], env={**os.environ, **env},
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"prunebench {' '.join(args)} ({env}) failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if '"_provenance"' not in line]


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def record(checkpoint: Path) -> Path:
    return checkpoint.parent / f"{checkpoint.name}.json"


def compare_weights(a: Path, b: Path) -> str:
    if json.loads(record(a).read_text())["weights_sha256"] == json.loads(record(b).read_text())["weights_sha256"]:
        return "byte-identical"
    ours, theirs = weights(a), weights(b)
    largest = max(float((ours[k].double() - theirs[k].double()).abs().max()) for k in ours)
    flipped = sum(int(((ours[k] == 0) != (theirs[k] == 0)).sum()) for k in ours)
    return f"differ: largest weight difference {largest:.3g}, {flipped} weights pruned on one side only"


def compare_responses(a: Path, b: Path) -> str:
    ours, theirs = rows_of(a), rows_of(b)
    if ours == theirs:
        return f"byte-identical ({len(ours)} responses)"
    same = sum(x["text"] == y["text"] for x, y in zip(ours, theirs))
    return f"differ: {same} of {len(ours)} responses identical"


def compare_tasks(a: Path, b: Path, tasks: list[str]) -> str:
    largest, docs, same, flips = 0.0, 0, 0, 0
    for task in tasks:
        ours = {r["doc_id"]: r for r in rows_of(a / f"{task}.jsonl") if "doc_id" in r}
        theirs = {r["doc_id"]: r for r in rows_of(b / f"{task}.jsonl") if "doc_id" in r}
        for doc, row in ours.items():
            docs += 1
            same += row == theirs[doc]
            flips += any(row[k] != theirs[doc][k] for k in row if k.startswith("acc"))
            largest = max([largest] + [abs(x[0] - y[0]) for x, y in zip(row["filtered_resps"], theirs[doc]["filtered_resps"])])
    if same == docs:
        return f"byte-identical ({docs} documents)"
    return f"{same} of {docs} documents identical, {flips} scores changed, log-likelihoods within {largest:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--calibration", required=True)
    parser.add_argument("--data", required=True, help="GSM8K's normalized JSONL (prunebench data --dataset gsm8k)")
    parser.add_argument("--data-dir", required=True, help="the local mirror (for lm-eval's tasks)")
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    two = {"OMP_NUM_THREADS": "2"}
    picked = machine()["torch_cpu_capability"]
    kernels = [(name, {**two, **env}, f"{name} kernels vs {picked}") for name, env in KERNELS.items()]
    lines = []

    for method in ("wanda-0.5", "sparsegpt-0.5"):
        for name, env, _ in (("base", two, ""), ("1thread", {"OMP_NUM_THREADS": "1"}, ""), *kernels):
            if record(out / f"{method}-{name}").exists():   # a rerun keeps what an earlier one made
                continue
            seconds = run(["prune", "--model", args.model, "--calibration", args.calibration, "--method", method,
                           "--out", str(out / f"{method}-{name}"), "--record", str(record(out / f"{method}-{name}"))], env)
            print(f"prune {method} {name}: {seconds:.0f} s", flush=True)
        for name, _, what in (("1thread", None, "threads 1 vs 2"), *kernels):
            lines.append(f"| prune {method} | {what} | {compare_weights(out / f'{method}-{name}', out / f'{method}-base')} |")

    generate = ["generate", "--model", args.model, "--dataset", "gsm8k", "--data", args.data, "--count", str(args.problems),
                "--samples", "2", "--temperature", "0.6", "--max-new-tokens", str(args.tokens)]
    for name, flags, env in (("base", [], two), ("batch1", ["--batch-size", "1"], two),
                             ("1thread", [], {"OMP_NUM_THREADS": "1"}), *((n, [], e) for n, e, _ in kernels)):
        seconds = run([*generate, *flags, "--out", str(out / f"generate-{name}.jsonl")], env)
        print(f"generate {name}: {seconds:.0f} s", flush=True)
    for name, what in (("batch1", "batch 1 vs the model's"), ("1thread", "threads 1 vs 2"),
                       *((n, w) for n, _, w in kernels)):
        lines.append(f"| generate | {what} | {compare_responses(out / f'generate-{name}.jsonl', out / 'generate-base.jsonl')} |")

    suite = {"boolq": {"limit": 8}, "arc_challenge": {"limit": 8}, "winogrande": {"limit": 16}}
    tasks = ["tasks", "--model", args.model, "--suite-json", json.dumps(suite), "--data-dir", args.data_dir,
             "--batch-size", "8"]
    for name, flags, env in (("base", ["--loglikelihood-batch-size", "8"], two),
                             ("batch1", ["--loglikelihood-batch-size", "1"], two),
                             ("1thread", ["--loglikelihood-batch-size", "8"], {"OMP_NUM_THREADS": "1"}),
                             *((n, ["--loglikelihood-batch-size", "8"], e) for n, e, _ in kernels)):
        seconds = run([*tasks, *flags, "--out-dir", str(out / f"tasks-{name}")], env)
        print(f"tasks {name}: {seconds:.0f} s", flush=True)
    for name, what in (("batch1", "log-likelihood batch 1 vs 8"), ("1thread", "threads 1 vs 2"),
                       *((n, w) for n, _, w in kernels)):
        lines.append(f"| tasks | {what} | {compare_tasks(out / f'tasks-{name}', out / 'tasks-base', list(suite))} |")

    print(f"\n{machine()['cpu']}, {picked}; prunebench at {code_commit()}")
    print("\n| stage | change | result |\n|---|---|---|\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
