"""Shared fixtures: a tiny randomly initialised chat model built here, and paths to the data mirror;
and the suite's three kinds of test.

Every test is one of: `unit` (in this process, on crafted inputs or a tiny model: the suite's fast
part, `pytest -m unit`), `integration` (a real external program or a real run of something larger:
lm-eval, the sandbox, Snakemake on a small workflow, LaTeX, a browser, a model's speed) or `e2e`
(the whole workflow, or a cluster run of it). A test marked `integration` or `e2e` is that; any
other test in a module of INTEGRATION_MODULES is integration, and the rest are unit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "data"
# Modules whose every test runs an external program or a larger real run (see the module docstring).
INTEGRATION_MODULES = {
    "test_adaptive", "test_cli", "test_depth", "test_dynamic", "test_faults", "test_generation", "test_livecodebench",
    "test_llm_pruner", "test_lmeval", "test_recovery", "test_report", "test_sandbox", "test_scheduling",
    "test_slicegpt", "test_slurm", "test_speed", "test_verify", "test_vllm", "test_vllm_cpu", "test_workflow",
    "test_invariance",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("e2e") or item.get_closest_marker("integration"):
            continue
        module = item.module.__name__.rpartition(".")[2]
        item.add_marker(pytest.mark.integration if module in INTEGRATION_MODULES else pytest.mark.unit)

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(out: Path, *, arch: str = "qwen2", seed: int = 0, layers: int = 2) -> Path:
    """A real transformers checkpoint with random weights and a BPE tokenizer trained on math text."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    from prunebench import wordproblems

    text = [p.question + "\n" + p.solution for p in wordproblems.generate(300, 7)]
    text += ["The answer is \\boxed{42}. Let's think step by step.", "0 1 2 3 4 5 6 7 8 9 + - = x /"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(text, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        bos_token=None)
    tokenizer.chat_template = CHATML
    kwargs = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                  pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), tie_word_embeddings=False)
    config = AutoConfig.for_model(arch, **kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not MIRROR.is_dir():
        pytest.skip(f"the data mirror {MIRROR} is not present")
    return MIRROR


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never reach the network: the hub is offline unless a test builds its own cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_NUM_THREADS", "2")


def reload_and_generate(model, path: Path, ids: list[list[int]], new_tokens: int = 6) -> list:
    """Reload the checkpoint at `path` (saved from `model`) with AutoModelForCausalLM in a fresh Python
    (prunebench.architectures imported, no remote code) and check that it generates what `model`
    generates in this process and gives the same logit. Returns the reloaded model's class name."""
    import json
    import subprocess
    import sys

    import torch

    with torch.no_grad():
        expected = model.generate(torch.tensor(ids), max_new_tokens=new_tokens, do_sample=False)[0].tolist()
        logit = float(model(torch.tensor(ids)).logits[0, -1, 3])
    code = ("import sys, json, torch\nimport prunebench.architectures\nfrom transformers import AutoModelForCausalLM\n"
            "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)\n"
            f"ids = torch.tensor({ids})\n"
            f"out = m.generate(ids, max_new_tokens={new_tokens}, do_sample=False)[0].tolist()\n"
            "print(json.dumps([type(m).__name__, out, float(m(ids).logits[0, -1, 3])]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    name, tokens, reloaded_logit = json.loads(done.stdout.strip().splitlines()[-1])
    assert tokens == expected and len(tokens) == len(ids[0]) + new_tokens
    assert reloaded_logit == pytest.approx(logit, abs=1e-5)
    return name


def load_fp32(path):
    """A checkpoint loaded in float32 and eval mode, as the pruning and training tests compare it."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def random_sequences(count: int = 3, length: int = 24, seed: int = 0, vocab: int = 300) -> list:
    """Seeded random token sequences: calibration or training data for a tiny model."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (length,), generator=generator) for _ in range(count)]
