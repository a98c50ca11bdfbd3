"""Structured pruning's payoff, measured: each method prunes the model, then the dense model and
every pruned one run `prunebench speed` in the same run (one process each, same prompts, same
backend and threads), and the script prints pruning time, the parameters removed and prefill and
decode throughput relative to the dense model.

Goal: a 20% depth-pruned model decodes at least 1.2x faster than the dense one on the CPU here.

    python bench/structured_speed.py --model results/models/qwen2.5-coder-0.5b-instruct/model.json \\
        --calibration results/calibration/qwen2.5-coder-0.5b-instruct/c4.jsonl --sequences 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ["shortgpt-0.2", "sleb-0.2", "shortened_ppl-0.2", "shortened_taylor-0.2", "slicegpt-0.2", "llm_pruner-0.2"]


def what_went(record: dict) -> str:
    """A few words on what a method removed: blocks, the residual width, or the per-block fraction."""
    if "removed_blocks" in record:
        return "blocks " + ",".join(map(str, record["removed_blocks"]))
    if "hidden_size" in record:
        return f"width {record['hidden_size']['before']}->{record['hidden_size']['after']}"
    if "layer_fraction" in record:
        return f"{record['layer_fraction']:.0%} heads+MLP"
    return ""


def run(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "prunebench", *command], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:3])}: failed\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a prepared model.json or a checkpoint directory")
    parser.add_argument("--calibration", required=True, help="a calibration set (JSONL of text or input_ids)")
    parser.add_argument("--sequences", type=int, default=8, help="calibration sequences used (the first N)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--semi-structured", action="store_true",
                        help="time 2:4 methods (e.g. sparsegpt-2of4 in --methods) through PyTorch's semi-structured "
                             "sparse kernels (CUDA): the first paper's question, is the pruned model faster end to end")
    args = parser.parse_args()
    speed_args = ["--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens),
                  "--repeats", str(args.repeats), "--device", args.device]
    rows = []
    with tempfile.TemporaryDirectory(prefix="structured-speed-") as tmp:
        tmp = Path(tmp)
        lines = Path(args.calibration).read_text(encoding="utf-8").splitlines()
        calibration = tmp / "calibration.jsonl"
        calibration.write_text("\n".join(lines[:args.sequences]) + "\n", encoding="utf-8")
        run(["speed", "--model", args.model, "--out", str(tmp / "dense.json"), *speed_args])
        dense = json.loads((tmp / "dense.json").read_text())
        for method in args.methods.split(","):
            out = tmp / method
            seconds = run(["prune", "--model", args.model, "--calibration", str(calibration), "--method", method,
                           "--out", str(out), "--device", args.device])
            sparse = ["--semi-structured"] if args.semi_structured and method.endswith("-2of4") else []
            run(["speed", "--model", str(out), "--out", str(tmp / f"{method}.json"), *speed_args, *sparse])
            measured = json.loads((tmp / f"{method}.json").read_text())
            record = json.loads((out / "sparsity.json").read_text())
            rows.append((method, seconds, record, measured))
    print(f"dense: {dense['parameters']:,} parameters, prefill {dense['prefill_tokens_per_second']:.1f} tokens/s, "
          f"decode {dense['decode_tokens_per_second']:.2f} tokens/s ({dense['threads']} threads, {dense['dtype']})")
    print(f"{'method':<22} {'prune s':>8} {'removed':>8} {'what went':>22} {'prefill x':>10} {'decode x':>9} {'size x':>7}")
    for method, seconds, record, measured in rows:
        removed = 1 - measured["parameters"] / dense["parameters"]
        print(f"{method:<22} {seconds:>8.1f} {removed:>8.1%} {what_went(record):>22} "
              f"{measured['prefill_tokens_per_second'] / dense['prefill_tokens_per_second']:>10.2f} "
              f"{measured['decode_tokens_per_second'] / dense['decode_tokens_per_second']:>9.2f} "
              f"{measured['checkpoint_bytes'] / dense['checkpoint_bytes']:>7.2f}")
    stored = {dense["checkpoint_dtype"], *(m["checkpoint_dtype"] for *_, m in rows)}
    if len(stored) > 1:
        print(f"checkpoints stored in {', '.join(sorted(map(str, stored)))}: size x compares different dtypes")
    print("(removed: of all parameters, embeddings included; x: pruned / dense, measured in this run; "
          "goal: decode x >= 1.2 at 20% depth)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
