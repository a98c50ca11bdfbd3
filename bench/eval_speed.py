"""The task suite through prunebench against lm-eval's own CLI, in the same run.

Both evaluate the same model on the same mirrored classification tasks, the same documents (the
seeded subset prunebench picks, handed to lm-eval as `--samples`), the same batch size and seed:
prunebench through `prunebench tasks`, the peer through `lm-eval run --model hf` with prunebench's
task YAMLs on its include path. Each side runs as its own process, one after the other, so both
pay for importing and loading the model. The script prints each task's metrics from both (they
must be equal) and the wall-time ratio (goal: prunebench no more than 1.1x lm-eval).

    python bench/eval_speed.py --model results/models/qwen2.5-coder-0.5b-instruct/model.json \\
        --data-dir ../shared/data --limit 40
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prunebench import lmeval
from prunebench.models import model_dir, model_info

TASKS = ["boolq", "piqa", "winogrande", "arc_challenge", "openbookqa"]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def peer_results(output: Path) -> dict:
    """lm-eval's results file (it names it by date under a folder per model)."""
    files = sorted(output.rglob("results_*.json"))
    return json.loads(files[-1].read_text())["results"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a prepared model.json or a checkpoint directory")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    dtype = model_info(args.model)["entry"]["dtype"]
    with tempfile.TemporaryDirectory(prefix="eval-speed-") as tmp:
        ours_dir, peer_dir = Path(tmp) / "ours", Path(tmp) / "peer"
        ours_s = timed([sys.executable, "-m", "prunebench", "tasks", "--model", args.model, "--data-dir", args.data_dir,
                        "--limit", str(args.limit), "--seed", str(args.seed), "--batch-size", str(args.batch_size),
                        "--device", "cpu", "--out-dir", str(ours_dir)] + [a for t in tasks for a in ("--task", t)])
        ours = {t: json.loads((ours_dir / f"{t}.json").read_text()) for t in tasks}
        samples = {t: [json.loads(line)["doc_id"] for line in (ours_dir / f"{t}.jsonl").read_text().splitlines()
                       if '"doc_id"' in line] for t in tasks}
        peer_s = timed([sys.executable, "-m", "lm_eval", "run", "--model", "hf",
                        "--model_args", f"pretrained={model_dir(args.model)},dtype={dtype}",
                        "--tasks", ",".join(tasks), "--include_path", str(lmeval.TASK_DIR),
                        "--metadata", json.dumps({"data_dir": args.data_dir}), "--samples", json.dumps(samples),
                        "--batch_size", str(args.batch_size), "--device", "cpu", "--seed", str(args.seed),
                        "--output_path", str(peer_dir)])
        peer = peer_results(peer_dir)
    print(f"{'task':<14} {'metric':<10} {'prunebench':>10} {'lm-eval':>10}  equal")
    all_equal = True
    for task in tasks:
        mine = ours[task]["lm_eval"]["results"][task]
        for key in sorted(k for k in mine if "," in k and "stderr" not in k):
            a, b = mine[key], peer[task].get(key)
            equal = b is not None and math.isclose(a, b, abs_tol=1e-9)
            all_equal &= equal
            print(f"{task:<14} {key.split(',')[0]:<10} {a:>10.4f} {b if b is None else format(b, '>10.4f')}  {equal}")
    print(f"\nwall seconds: prunebench {ours_s:.1f}, lm-eval {peer_s:.1f}, ratio {ours_s / peer_s:.2f} "
          f"(goal <= 1.10); metrics equal: {all_equal}")
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())
