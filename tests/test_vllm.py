"""The vLLM backend against the installed vLLM, without a GPU.

vLLM imports on a machine without one, so every call the backend makes is checked against the
installed package: the LLM constructor's keywords (its own or its engine arguments'), SamplingParams
with a per-request seed, TokensPrompt, LLM.generate's signature, and the output's token_ids and
finish_reason, built as vLLM's own RequestOutput and CompletionOutput. Only the engine itself (the
GPU kernels) is replaced. This runs in the GPU lock's environment (or the GPU image); the CPU lock
has no vLLM and skips it.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

vllm = pytest.importorskip("vllm", reason="vLLM is not installed (locks/gpu.txt's environment has it)")


def test_every_call_of_the_backend_exists_in_the_installed_vllm(tiny_model, monkeypatch):
    from vllm import EngineArgs, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.outputs import CompletionOutput, RequestOutput

    from prunebench.generation import PROMPT_TOO_LONG, Request, Sampling
    from prunebench.generation.vllm import VLLMBackend

    real = vllm.LLM
    accepted = set(inspect.signature(real.__init__).parameters) | {f.name for f in dataclasses.fields(EngineArgs)}
    prompt_keys = set(TokensPrompt.__annotations__)
    seen = {}

    class EngineFree:
        """vLLM's LLM without its engine: the same constructor and generate signatures, checked."""

        def __init__(self, *args, **kwargs):
            inspect.signature(real.__init__).bind(None, *args, **kwargs)
            unknown = set(kwargs) - accepted
            assert not unknown, f"LLM() keywords vLLM {vllm.__version__} does not take: {unknown}"
            seen["init"] = kwargs

        def generate(self, prompts, sampling_params=None, **kwargs):
            inspect.signature(real.generate).bind(None, prompts, sampling_params, **kwargs)
            assert len(prompts) == len(sampling_params)
            outputs = []
            for number, (prompt, params) in enumerate(zip(prompts, sampling_params)):
                assert isinstance(params, SamplingParams) and params.seed is not None
                assert set(prompt) <= prompt_keys and all(isinstance(t, int) for t in prompt["prompt_token_ids"])
                tokens = list(range(min(3, params.max_tokens)))
                finish = "length" if len(tokens) == params.max_tokens else "stop"
                completion = CompletionOutput(index=0, text=f"answer {number}", token_ids=tokens,
                                              cumulative_logprob=None, logprobs=None, finish_reason=finish)
                outputs.append(RequestOutput(request_id=str(number), prompt=None,
                                             prompt_token_ids=prompt["prompt_token_ids"], prompt_logprobs=None,
                                             outputs=[completion], finished=True))
            seen.setdefault("params", []).extend(sampling_params)
            return outputs

    monkeypatch.setattr(vllm, "LLM", EngineFree)
    entry = {"dtype": "bfloat16", "max_model_len": 64, "tensor_parallel": 1}
    backend = VLLMBackend(tiny_model, entry)
    long_prompt = "word " * 200
    requests = [Request("a", 0, "What is 2 + 3?", 11), Request("a", 1, "What is 2 + 3?", 12),
                Request("b", 0, long_prompt, 13)]
    completions = backend.generate(requests, Sampling(temperature=0.6, top_p=0.95, max_new_tokens=2))
    assert seen["init"]["model"] == str(tiny_model) and seen["init"]["max_model_len"] == 64
    assert [p.seed for p in seen["params"]] == [11, 12]  # each request its own seed; the long one never sent
    assert [c.finish for c in completions] == ["length", "length", PROMPT_TOO_LONG]
    assert completions[0].text == "answer 0" and completions[0].tokens == 2
    assert completions[2].tokens == 0 and completions[2].text == ""


def test_vllm_model_type_takes_our_arguments(tiny_model):
    """On GPUs the suite runs through lm-eval's vLLM model type: every argument is one it names
    (it also takes **kwargs, which would hide a misspelt one), and the weights are read in place."""
    from lm_eval.models.vllm_causallms import VLLM

    from prunebench import lmeval

    arguments = lmeval.vllm_arguments(str(tiny_model), {"dtype": "bfloat16", "max_model_len": 512}, 8, 1, 0)
    named = set(inspect.signature(VLLM.__init__).parameters) - {"self", "kwargs"}
    assert set(arguments) <= named
    assert arguments["pretrained"] == str(tiny_model)
