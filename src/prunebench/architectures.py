"""prunebench's own model classes, registered with transformers' Auto classes on import.

A width-pruned model that is no longer the standard architecture loads through these, without
remote code: `import prunebench.architectures` and then `AutoModelForCausalLM.from_pretrained`
(prunebench's loaders import this module themselves).

- `prunebench_sliced` (SliceGPT): the base architecture (`base_model_type`, e.g. qwen2 or llama)
  with a narrower residual stream (`hidden_size`, the attention's `head_dim` kept) and, in every
  decoder layer, two shortcut matrices on the residual connections (`attn_shortcut`,
  `mlp_shortcut`). The class is the base architecture's own causal-LM class with those layers, so
  generation, caching and lm-eval work as for the base. vLLM does not know it.
"""

from __future__ import annotations

import functools

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from .models import SLICED_MODEL_TYPE as SLICED
from .pruning.slicegpt import make_sliced


class SlicedConfig(PretrainedConfig):
    """The base architecture's configuration, every field kept, under prunebench's model type."""

    model_type = SLICED

    def __init__(self, base_model_type: str = "llama", **kwargs):
        self.base_model_type = base_model_type
        super().__init__(**kwargs)

    @classmethod
    def from_base(cls, base: PretrainedConfig) -> "SlicedConfig":
        fields = {k: v for k, v in base.to_dict().items() if k not in ("model_type", "architectures")}
        return cls(base_model_type=base.model_type, architectures=["SlicedForCausalLM"], **fields)

    def base_config(self) -> PretrainedConfig:
        fields = {k: v for k, v in self.to_dict().items() if k not in ("model_type", "base_model_type", "architectures")}
        return AutoConfig.for_model(self.base_model_type, **fields)


@functools.lru_cache(maxsize=None)
def sliced_class(base_model_type: str) -> type:
    """The base architecture's causal-LM class, its decoder layers given shortcut matrices."""
    base_cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.for_model(base_model_type))]

    def __init__(self, config):
        base_cls.__init__(self, config)
        width = config.hidden_size
        for layer in self.model.layers:
            make_sliced(layer, torch.eye(width), torch.eye(width))  # the checkpoint's matrices replace these

    return type(f"Sliced{base_cls.__name__}", (base_cls,), {"config_class": SlicedConfig, "__init__": __init__})


class SlicedForCausalLM(PreTrainedModel):
    """The Auto classes' entry for `prunebench_sliced`: builds the base architecture's sliced class."""

    config_class = SlicedConfig

    @classmethod
    def from_pretrained(cls, path, *args, config=None, **kwargs):
        config = config if isinstance(config, SlicedConfig) else SlicedConfig.from_pretrained(path)
        return sliced_class(config.base_model_type).from_pretrained(path, *args, config=config, **kwargs)

    @classmethod
    def _from_config(cls, config, **kwargs):
        return sliced_class(config.base_model_type)._from_config(config, **kwargs)


AutoConfig.register(SLICED, SlicedConfig, exist_ok=True)
AutoModelForCausalLM.register(SlicedConfig, SlicedForCausalLM, exist_ok=True)
