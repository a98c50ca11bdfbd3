"""Generation and grading speed, each against a plain peer in the same run.

Generation: prunebench's HF backend against a plain `model.generate` loop. Both decode the same
prompts (word problems in the model's chat format) in the same batches with the same sampling
settings; the script prints tokens per second of each and their ratio.

Grading: `grading.grade_answers` (a process pool with a hard timeout per item) against calling
math-verify's parse and verify in a plain loop in one process, over the same MATH500 answer pairs
(each gold answer against itself and against another problem's). The peer has no timeout and no
isolation; the ratio says what they cost, or gain with more cores.

Run it on an idle machine; the ratios, not the absolute speeds, are the result.

    python bench/generate_speed.py --model results/models/qwen2.5-coder-0.5b-instruct/model.json
    python bench/generate_speed.py --grading-only --data-dir ../shared/data --workers 2
"""

from __future__ import annotations

import argparse
import time

import torch

from prunebench import datasets, grading
from prunebench.generation import Request, Sampling, request_seed
from prunebench.generation.hf import HFBackend
from prunebench.models import model_info
from prunebench.prompts import build_prompt


def plain_generate(backend: HFBackend, requests: list[Request], sampling: Sampling) -> int:
    """The peer: transformers' own generate, left-padded batches of the same size, same order."""
    tokenizer, model = backend.tokenizer, backend.model
    tokenizer.padding_side = "left"
    order = sorted(requests, key=lambda r: len(tokenizer(r.prompt, add_special_tokens=False)["input_ids"]))
    produced = 0
    for start in range(0, len(order), backend.batch_size):
        batch = order[start:start + backend.batch_size]
        enc = tokenizer([r.prompt for r in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(batch[0].seed)
        with torch.inference_mode():
            out = model.generate(**enc.to(model.device), do_sample=sampling.temperature > 0,
                                 temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_new_tokens=sampling.max_new_tokens, pad_token_id=backend.pad_id)
        new = out[:, enc.input_ids.shape[1]:]
        produced += int(sum(((row != backend.pad_id) & ~torch.isin(row, torch.tensor(sorted(backend.eos)))).sum()
                            for row in new))
    return produced


def grading_speed(data_dir: str | None, items: int, workers: int) -> None:
    records, _ = datasets.load("math500", data_dir)
    golds = [r["answer"] for r in records[: items // 2]]
    jobs = [(g, g, "math") for g in golds] + [(g, golds[(i + 1) % len(golds)], "math") for i, g in enumerate(golds)]
    start = time.perf_counter()
    ours = grading.grade_answers(jobs, timeout=10.0, workers=workers)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = [grading.check_answer(g, p, k, timeout=10.0) for g, p, k in jobs]
    theirs_s = time.perf_counter() - start
    agree = sum((v == "correct") == t for v, t in zip(ours, theirs))
    print(f"prunebench grader ({workers} workers): {len(jobs):5d} answers in {ours_s:6.1f} s = "
          f"{len(jobs) / ours_s:7.1f} answers/s")
    print(f"math-verify in one process  : {len(jobs):5d} answers in {theirs_s:6.1f} s = "
          f"{len(jobs) / theirs_s:7.1f} answers/s")
    print(f"ratio (ours / peer)         : {theirs_s / ours_s:.2f}x answers/s; verdicts agree on {agree}/{len(jobs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a prepared model.json or a model directory")
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--data-dir", help="the local data mirror (default: the Hugging Face cache)")
    parser.add_argument("--grading-items", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="grader processes")
    parser.add_argument("--grading-only", action="store_true")
    args = parser.parse_args()
    if not args.grading_only and not args.model:
        parser.error("--model is required unless --grading-only")

    grading_speed(args.data_dir, args.grading_items, args.workers)
    if args.grading_only:
        return
    entry = dict(model_info(args.model)["entry"], batch_size=args.batch_size)
    backend = HFBackend(args.model, entry)
    records, _ = datasets.load("wordproblems", None)
    problems = datasets.subset(records, args.problems, 0, "wordproblems")
    instruction = datasets.get("wordproblems").instruction
    requests = [Request(p["id"], 0, build_prompt(backend.tokenizer, entry, p["question"], instruction),
                        request_seed(0, p["id"], 0)) for p in problems]
    sampling = Sampling(0.6, 0.95, args.max_new_tokens)
    backend.generate(requests[: args.batch_size], Sampling(0.6, 0.95, 8))  # warm-up

    start = time.perf_counter()
    ours = sum(c.tokens for c in backend.generate(requests, sampling))
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = plain_generate(backend, requests, sampling)
    theirs_s = time.perf_counter() - start
    print(f"prunebench hf backend : {ours:6d} tokens in {ours_s:6.1f} s = {ours / ours_s:6.1f} tokens/s")
    print(f"transformers generate : {theirs:6d} tokens in {theirs_s:6.1f} s = {theirs / theirs_s:6.1f} tokens/s")
    print(f"ratio (ours / peer)   : {(ours / ours_s) / (theirs / theirs_s):.2f}x tokens/s")


if __name__ == "__main__":
    main()
