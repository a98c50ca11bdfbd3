"""Pruning speed, memory and agreement: prunebench against llm-compressor, same model, same tokens.

Both prune the same checkpoint on the same calibration token ids (equal-length sequences, batch of
one, 128-column blocks, dampening 0.01, lm_head left dense) in separate worker processes run one
after the other, and the script prints each one's wall time and peak memory for the pruning call
alone, their ratio, and how far apart the two pruned models are: the largest weight difference and
the fraction of weights that one pruned and the other kept.

llm-compressor pins an older transformers than prunebench does, so it runs in its own virtual
environment (``--setup-peer`` builds it from ``bench/llmcompressor-requirements.txt``).

    python bench/prune_speed.py --setup-peer
    python bench/prune_speed.py --model results/models/qwen2.5-coder-0.5b-instruct/model.json
    python bench/prune_speed.py --random-shape qwen2-7b --sequences 128 --length 16384 --device cuda

SparseGPT's references prune every score up to and including the (k+1)-th smallest of a block,
one weight more than the exact count k that prunebench prunes by default; ``sparsegpt-ref`` rows
run prunebench with ``mask_selection="reference"`` to compare like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-llmcompressor"
PEER_REQUIREMENTS = HERE / "llmcompressor-requirements.txt"

# Randomly initialised models with the shape of a published checkpoint (for GPU runs, where no
# checkpoint can be downloaded): the config fields that decide every weight matrix's shape.
RANDOM_SHAPES = {
    "qwen2-7b": {  # DeepSeek-R1-Distill-Qwen-7B
        "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "max_position_embeddings": 131072, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
    },
    "qwen2-tiny": {  # a smoke test of the script itself
        "model_type": "qwen2", "hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
        "max_position_embeddings": 4096, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
    "qwen2-0.5b": {  # Qwen2.5-0.5B, the embedded default's shape
        "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
}


# ----------------------------------------------------------------------------------------------
# Workers: each runs in its own process (llm-compressor's in its own environment) and imports only
# what its side needs.

class PeakMemory:
    """Peak memory of the pruning call: CUDA's allocator peak, or the process's RSS sampled every
    20 ms (ru_maxrss would count the model load too)."""

    def __init__(self, device: str):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss())


def _load(model_dir: str, device: str, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), attn_implementation="sdpa")
    return model.to(device).eval()


def _sequences(path: str) -> list[list[int]]:
    with open(path) as handle:
        return [json.loads(line)["input_ids"] for line in handle if line.strip()]


def _save_weights(model, out: Path) -> None:
    """The decoder layers' Linear weights, by name, for the comparison."""
    import torch
    from safetensors.torch import save_file

    weights = {name + ".weight": module.weight.detach().to("cpu", torch.float32).contiguous()
               for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and ".layers." in f".{name}."}
    save_file(weights, str(out / "weights.safetensors"))


def worker_prunebench(args) -> dict:
    import torch

    from prunebench.pruning import parse_method, prune_model

    model = _load(args.model, args.device, args.dtype)
    calibration = [torch.tensor(ids) for ids in _sequences(args.calibration)]
    spec = parse_method(args.method)
    with PeakMemory(args.device) as memory:
        start = time.perf_counter()
        prune_model(model, calibration, spec, mask_selection=args.mask_selection, log=lambda *a: None)
        wall = time.perf_counter() - start
    _save_weights(model, Path(args.out))
    return {"wall_seconds": wall, "peak_memory_bytes": memory.peak}


def worker_llmcompressor(args) -> dict:
    import torch
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier

    method, _, level = args.method.partition("-")
    if "of" in level:
        n, m = level.split("of")
        target = {"sparsity": (int(m) - int(n)) / int(m), "mask_structure": f"{n}:{m}"}
    else:
        target = {"sparsity": float(level)}
    if method == "sparsegpt":
        modifier = SparseGPTModifier(**target, block_size=128, dampening_frac=0.01, targets=["Linear"],
                                     ignore=["re:.*lm_head"])
    elif method == "wanda":
        modifier = WandaPruningModifier(**target, targets=["Linear"], ignore=["re:.*lm_head"])
    else:
        raise SystemExit(f"llm-compressor has no one-shot {method}")
    model = _load(args.model, args.device, args.dtype)
    batches = [{"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
               for ids in _sequences(args.calibration)]
    with PeakMemory(args.device) as memory:
        start = time.perf_counter()
        oneshot(model=model, dataset=torch.utils.data.DataLoader(batches, batch_size=None), recipe=[modifier],
                num_calibration_samples=len(batches), pipeline="sequential",
                sequential_offload_device=args.device)
        wall = time.perf_counter() - start
    _save_weights(model, Path(args.out))
    return {"wall_seconds": wall, "peak_memory_bytes": memory.peak}


WORKERS = {"prunebench": worker_prunebench, "llmcompressor": worker_llmcompressor}


# ----------------------------------------------------------------------------------------------
# The driver: prepares the model and tokens, runs the workers, compares.

def setup_peer() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "--quiet", "-r", str(PEER_REQUIREMENTS)], check=True)


def random_model(shape: str, out: Path, seed: int) -> Path:
    """A randomly initialised checkpoint of a known shape, written once."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (out / "config.json").exists():
        return out
    fields = dict(RANDOM_SHAPES[shape])
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    torch.manual_seed(seed)
    with torch.device("cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    return out


def calibration_tokens(model_dir: Path, sequences: int, length: int, seed: int, data_dir: str | None) -> list[list[int]]:
    """Windows of C4 tokenized by the model's tokenizer when the model has one and the mirror is
    there; seeded random token ids otherwise (a random model has nothing to learn from text)."""
    import random

    rng = random.Random(seed)
    if (model_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        from prunebench import datasets

        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        records, _ = datasets.load("c4", data_dir)
        windows = []
        for record in rng.sample(records, len(records)):
            ids = tokenizer(record["text"])["input_ids"]
            if len(ids) > length:
                start = rng.randrange(len(ids) - length)
                windows.append(ids[start:start + length])
                if len(windows) == sequences:
                    return windows
        raise SystemExit(f"C4 has fewer than {sequences} documents longer than {length} tokens")
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    return [[rng.randrange(vocab) for _ in range(length)] for _ in range(sequences)]


def run_worker(python: str, side: str, model: Path, calibration: Path, method: str, out: Path, device: str,
               dtype: str, mask_selection: str = "exact") -> dict:
    out.mkdir(parents=True, exist_ok=True)
    command = [python, __file__, "--worker", side, "--model", str(model), "--calibration", str(calibration),
               "--method", method, "--out", str(out), "--device", device, "--dtype", dtype,
               "--mask-selection", mask_selection]
    with open(out / "worker.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = (out / "worker.log").read_text()[-3000:]
        raise SystemExit(f"{side} worker failed on {method} (log {out / 'worker.log'}):\n{tail}")
    return json.loads((out / "result.json").read_text())


def compare(ours: Path, theirs: Path) -> dict:
    """Largest weight difference and mask disagreement over all pruned matrices."""
    import torch
    from safetensors.torch import load_file

    a, b = load_file(str(ours / "weights.safetensors")), load_file(str(theirs / "weights.safetensors"))
    if a.keys() != b.keys():
        raise SystemExit(f"the two pruned models have different modules: {sorted(a.keys() ^ b.keys())[:5]}")
    largest, disagree, total, zeros_a, zeros_b = 0.0, 0, 0, 0, 0
    for name in a:
        x, y = a[name], b[name]
        largest = max(largest, float((x - y).abs().max()))
        disagree += int(((x == 0) != (y == 0)).sum())
        total += x.numel()
        zeros_a += int((x == 0).sum())
        zeros_b += int((y == 0).sum())
    return {"max_abs_diff": largest, "mask_disagreement": disagree / total,
            "sparsity_prunebench": zeros_a / total, "sparsity_llmcompressor": zeros_b / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a prepared model.json or a checkpoint directory")
    parser.add_argument("--random-shape", choices=sorted(RANDOM_SHAPES), help="a random model of this shape instead")
    parser.add_argument("--methods", default="sparsegpt-0.5,sparsegpt-ref-0.5,wanda-0.5,sparsegpt-2of4,wanda-2of4")
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                        help="weights and activations; float32 shows whether the two compute the same math")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="local dataset mirror (default: ../shared/data if present)")
    parser.add_argument("--peer-python", default=str(PEER_VENV / "bin" / "python"))
    parser.add_argument("--workdir", default="results/bench/prune_speed")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--setup-peer", action="store_true", help="build llm-compressor's environment and exit")
    # worker mode (internal)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--calibration", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--mask-selection", default="exact", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = WORKERS[args.worker](args)
        Path(args.out, "result.json").write_text(json.dumps(result))
        return
    if args.setup_peer:
        setup_peer()
        return
    if not Path(args.peer_python).exists():
        raise SystemExit(f"no llm-compressor environment at {args.peer_python}: run with --setup-peer first")
    if bool(args.model) == bool(args.random_shape):
        raise SystemExit("give exactly one of --model and --random-shape")

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if args.random_shape:
        model = random_model(args.random_shape, work / f"model-{args.random_shape}", args.seed)
    else:
        from prunebench.models import model_dir

        model = model_dir(args.model).resolve()
    data_dir = args.data_dir or (str(Path("../shared/data").resolve()) if Path("../shared/data").is_dir() else None)
    calibration = work / f"calibration-{args.sequences}x{args.length}.jsonl"
    if not calibration.exists():
        windows = calibration_tokens(model, args.sequences, args.length, args.seed, data_dir)
        calibration.write_text("".join(json.dumps({"input_ids": ids}) + "\n" for ids in windows))

    rows = []
    print(f"model {model} | {args.sequences} x {args.length} tokens | {args.device} {args.dtype}")
    print(f"{'method':18} {'prunebench s':>12} {'llm-comp s':>10} {'time ratio':>10} {'pb peak GB':>10} "
          f"{'lc peak GB':>10} {'max |dW|':>10} {'mask diff':>10}")
    peer_runs: dict[str, dict] = {}
    for name in args.methods.split(","):
        method, mask_selection = name, "exact"
        if name.startswith("sparsegpt-ref-"):
            method, mask_selection = "sparsegpt-" + name.removeprefix("sparsegpt-ref-"), "reference"
        ours = run_worker(sys.executable, "prunebench", model, calibration, method, work / name / "prunebench",
                          args.device, args.dtype, mask_selection)
        if method not in peer_runs:
            peer_runs[method] = run_worker(args.peer_python, "llmcompressor", model, calibration, method,
                                           work / method / "llmcompressor", args.device, args.dtype)
        theirs = peer_runs[method]
        diff = compare(work / name / "prunebench", work / method / "llmcompressor")
        row = {"method": name, "prunebench": ours, "llmcompressor": theirs,
               "time_ratio": ours["wall_seconds"] / theirs["wall_seconds"], **diff}
        rows.append(row)
        print(f"{name:18} {ours['wall_seconds']:12.1f} {theirs['wall_seconds']:10.1f} {row['time_ratio']:10.2f} "
              f"{ours['peak_memory_bytes'] / 2**30:10.2f} {theirs['peak_memory_bytes'] / 2**30:10.2f} "
              f"{diff['max_abs_diff']:10.2e} {diff['mask_disagreement']:10.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": str(model), "sequences": args.sequences,
                                               "length": args.length, "device": args.device,
                                               "dtype": args.dtype, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
