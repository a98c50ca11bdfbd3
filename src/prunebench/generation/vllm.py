"""The vLLM backend (GPUs, and vLLM's CPU build): the same requests and seeds, with prefix caching
across a prompt's samples.

Prompts go in as token ids tokenized here, so vLLM adds no second BOS to a prompt whose chat
template already wrote one.
"""

from __future__ import annotations

from ..models import load_tokenizer, model_dir, require_vllm_servable, vllm_cpu_arguments
from ..prompts import PROMPT_TOO_LONG
from . import Completion, Request, Sampling, fits


class VLLMBackend:
    shard_size = 1024

    def __init__(self, model, entry: dict, device: str | None = None):
        require_vllm_servable(model)
        from vllm import LLM

        self.tokenizer = load_tokenizer(model)
        self.max_model_len = entry["max_model_len"]
        self.llm = LLM(model=str(model_dir(model)), dtype=entry["dtype"], max_model_len=entry["max_model_len"],
                       tensor_parallel_size=entry["tensor_parallel"], enable_prefix_caching=True, seed=0,
                       **vllm_cpu_arguments())

    def generate(self, requests: list[Request], sampling: Sampling) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = [self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
        runnable = [i for i, prompt in enumerate(ids) if fits(len(prompt), self.max_model_len)]
        prompts = [TokensPrompt(prompt_token_ids=ids[i]) for i in runnable]
        params = [SamplingParams(n=1, temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_tokens=min(requests[i].limit(sampling), self.max_model_len - len(ids[i])),
                                 seed=requests[i].seed) for i in runnable]
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if runnable else []
        completions = [Completion("", 0, PROMPT_TOO_LONG)] * len(requests)
        for i, output in zip(runnable, outputs, strict=True):
            best = output.outputs[0]
            finish = "length" if best.finish_reason == "length" else "stop"
            completions[i] = Completion(best.text, len(best.token_ids), finish)
        return completions
