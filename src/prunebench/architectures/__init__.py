"""prunebench's own model classes, registered with transformers' Auto classes on import.

A width-pruned model that is no longer the standard architecture loads through these, without
remote code: `import prunebench.architectures` and then `AutoModelForCausalLM.from_pretrained`
(prunebench's loaders import this module themselves). Each is the base architecture's own
causal-LM class (`base_model_type`, e.g. qwen2 or llama) with its decoder layers reshaped, so
generation, caching and lm-eval work as for the base. vLLM knows neither.

- `prunebench_sliced` (SliceGPT): a narrower residual stream (`hidden_size`, the attention's
  `head_dim` kept) and, in every decoder layer, two shortcut matrices on the residual connections
  (`attn_shortcut`, `mlp_shortcut`).
- `prunebench_layer_widths` (LLM-Pruner): each layer's own number of query and KV heads and MLP
  width (`layer_widths`, one entry per layer), the residual width unchanged.
- `prunebench_routed` (MoD, D-LLM, SkipGPT): the base weights, and in each routed layer its
  routers and routed forward (`routing`: kind, sparsity, routed layers, router temperature and
  MoD's inference thresholds; the routed forward in routed.py, their training in
  prunebench.pruning.dynamic).

This package is below the pruning methods: it imports neither prunebench.pruning nor
prunebench.models, so loading a saved checkpoint imports no pruning code.
"""

from __future__ import annotations

import functools

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from .layer_widths import narrow_layer
from .routed import attach_routers
from .sliced import make_sliced

# Model types that only these classes build; vLLM has none of them.
SLICED_MODEL_TYPE, LAYER_WIDTHS_MODEL_TYPE = "prunebench_sliced", "prunebench_layer_widths"
ROUTED_MODEL_TYPE = "prunebench_routed"
PRUNEBENCH_MODEL_TYPES = (SLICED_MODEL_TYPE, LAYER_WIDTHS_MODEL_TYPE, ROUTED_MODEL_TYPE)


class _DerivedConfig(PretrainedConfig):
    """The base architecture's configuration, every field kept, under one of prunebench's model types."""

    def __init__(self, base_model_type: str = "llama", **kwargs):
        self.base_model_type = base_model_type
        super().__init__(**kwargs)

    @classmethod
    def from_base(cls, base: PretrainedConfig, **extra) -> "_DerivedConfig":
        fields = {k: v for k, v in base.to_dict().items() if k not in ("model_type", "architectures")}
        return cls(base_model_type=base.model_type, architectures=[cls.causal_lm], **{**fields, **extra})


class SlicedConfig(_DerivedConfig):
    model_type = SLICED_MODEL_TYPE
    causal_lm = "SlicedForCausalLM"


class LayerWidthsConfig(_DerivedConfig):
    model_type = LAYER_WIDTHS_MODEL_TYPE
    causal_lm = "LayerWidthsForCausalLM"


class RoutedConfig(_DerivedConfig):
    model_type = ROUTED_MODEL_TYPE
    causal_lm = "RoutedForCausalLM"


def _shortcuts(model, config):
    width = config.hidden_size
    for layer in model.model.layers:
        make_sliced(layer, torch.eye(width), torch.eye(width))  # the checkpoint's matrices replace these


def _layer_widths(model, config):
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if len(config.layer_widths) != len(model.model.layers):
        raise ValueError(f"layer_widths lists {len(config.layer_widths)} layers, the model has {len(model.model.layers)}")
    for layer, width in zip(model.model.layers, config.layer_widths):
        narrow_layer(layer, list(range(width["num_attention_heads"])), list(range(width["num_key_value_heads"])),
                     list(range(width["intermediate_size"])), head_dim)  # the checkpoint's weights replace these


def _routers(model, config):
    routing = config.routing
    attach_routers(model, routing["kind"], routing["sparsity"], layers=routing["layers"],
                   thresholds=routing.get("thresholds"), temperature=routing.get("temperature", 1.0))


_RESHAPE = {SLICED_MODEL_TYPE: _shortcuts, LAYER_WIDTHS_MODEL_TYPE: _layer_widths, ROUTED_MODEL_TYPE: _routers}
_CONFIGS = {SLICED_MODEL_TYPE: SlicedConfig, LAYER_WIDTHS_MODEL_TYPE: LayerWidthsConfig, ROUTED_MODEL_TYPE: RoutedConfig}


@functools.lru_cache(maxsize=None)
def derived_class(model_type: str, base_model_type: str) -> type:
    """The base architecture's causal-LM class with its decoder layers reshaped as `model_type` says."""
    base_cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.for_model(base_model_type))]
    config_cls = _CONFIGS[model_type]

    def __init__(self, config):
        base_cls.__init__(self, config)
        _RESHAPE[model_type](self, config)

    prefix = config_cls.causal_lm.removesuffix("ForCausalLM")
    return type(f"{prefix}{base_cls.__name__}", (base_cls,), {"config_class": config_cls, "__init__": __init__})


class _DerivedForCausalLM(PreTrainedModel):
    """The Auto classes' entry for one of prunebench's model types: builds the base architecture's class."""

    @classmethod
    def from_pretrained(cls, path, *args, config=None, **kwargs):
        config = config if isinstance(config, cls.config_class) else cls.config_class.from_pretrained(path)
        return derived_class(config.model_type, config.base_model_type).from_pretrained(path, *args, config=config, **kwargs)

    @classmethod
    def _from_config(cls, config, **kwargs):
        return derived_class(config.model_type, config.base_model_type)._from_config(config, **kwargs)


class SlicedForCausalLM(_DerivedForCausalLM):
    config_class = SlicedConfig


class LayerWidthsForCausalLM(_DerivedForCausalLM):
    config_class = LayerWidthsConfig


class RoutedForCausalLM(_DerivedForCausalLM):
    config_class = RoutedConfig


for _config, _model in ((SlicedConfig, SlicedForCausalLM), (LayerWidthsConfig, LayerWidthsForCausalLM),
                        (RoutedConfig, RoutedForCausalLM)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModelForCausalLM.register(_config, _model, exist_ok=True)
