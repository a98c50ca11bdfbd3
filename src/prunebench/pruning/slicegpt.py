"""SliceGPT (Ashkboos et al. 2024): rotate the residual stream by the principal components of the
calibration activations, then slice the least-used directions off.

An RMSNorm'd transformer computes the same function when its residual stream x is replaced by xQ
for an orthogonal Q, once the norms' scales are folded into the linears that read them: the norm
divides by ||x||, which Q keeps. Every block may use its own basis, so SliceGPT takes three per
block from the calibration activations (its input, between attention and MLP, its output) and
carries the residual from one basis to the next by a shortcut matrix Q_a^T Q_b. Slicing keeps the
first d' columns of each Q: the embedding, every linear and every shortcut lose the dimensions that
carry the least of the calibration signal's energy.

Per block, with Q_in the basis its input arrives in (d x d' after slicing):
    q, k, v  <- W Q_in                      (they read the normed residual)
    h_mid    =  x Q_in^T + attention(x)     (in the model's own coordinates)  -> PCA -> Q_mid
    shortcut_attn = Q_in^T Q_mid,  o <- Q_mid^T W
    gate, up <- W Q_mid
    h_out    =  h_mid Q_mid^T + mlp(h_mid)  -> PCA -> Q_out
    shortcut_mlp = Q_mid^T Q_out,  down <- Q_out^T W;   the next block's Q_in is Q_out.
The head reads the last basis. An RMSNorm over d' dimensions divides by the mean over d'; scaling
its weight by sqrt(d/d') and its epsilon by d/d' makes it the norm over the original d exactly.
Rotations are computed in float64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..architectures.layout import ATTENTION_IN, ATTENTION_OUT, MLP_IN, MLP_OUT, NORMS
from ..architectures.layout import submodule as _get
from ..architectures.sliced import make_sliced
from ..io import InputError
from .passes import begin_pass, capture_inputs, pass_fields, require_llama_layers, run_layer


def _fold(norm: nn.Module, readers: list[nn.Linear]) -> None:
    """Move an RMSNorm's scale into the linears that read its output: W <- W diag(g), g <- 1."""
    scale = norm.weight.data.double()
    for linear in readers:
        linear.weight.data = (linear.weight.data.double() * scale).to(linear.weight.dtype)
    norm.weight.data.fill_(1.0)


def _resize_norm(norm: nn.Module, original: int, kept: int, eps: float) -> None:
    """An RMSNorm over `kept` dimensions that computes the norm over `original` ones (scale 1)."""
    norm.weight = nn.Parameter(torch.full((kept,), math.sqrt(original / kept), dtype=norm.weight.dtype,
                                          device=norm.weight.device))
    norm.variance_epsilon = eps * original / kept


def _rotate_in(linear: nn.Linear, basis: torch.Tensor) -> None:
    """A linear that reads the residual, now given in `basis` coordinates: W <- W Q."""
    linear.weight.data = (linear.weight.data.double() @ basis).to(linear.weight.dtype)
    linear.in_features = basis.shape[1]


def _rotate_out(linear: nn.Linear, basis: torch.Tensor) -> None:
    """A linear that writes the residual, now kept in `basis` coordinates: W <- Q^T W, b <- b Q."""
    linear.weight.data = (basis.T @ linear.weight.data.double()).to(linear.weight.dtype)
    if linear.bias is not None:
        linear.bias.data = (linear.bias.data.double() @ basis).to(linear.bias.dtype)
    linear.out_features = basis.shape[1]


def principal_basis(signals: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues descending, eigenvectors as columns) of sum x^T x over every token, in float64."""
    dim = signals[0].shape[-1]
    gram = torch.zeros(dim, dim, dtype=torch.float64)
    for x in signals:
        x = x.reshape(-1, dim).double().cpu()
        gram += x.T @ x
    values, vectors = torch.linalg.eigh(gram)
    return values.flip(0), vectors.flip(1)


def kept_dimension(hidden: int, ratio: float, multiple: int = 8) -> int:
    """The residual width SliceGPT keeps when slicing `ratio` of it, rounded down to `multiple`."""
    kept = int(hidden * (1 - ratio)) // multiple * multiple
    return max(multiple, min(hidden, kept))


@torch.no_grad()
def rotate_and_slice(model: nn.Module, calibration: list[torch.Tensor], kept: int, *,
                     layers_path: str = "model.layers", final_norm: str = "model.norm", log=print) -> dict:
    """Rotate `model` in place by its calibration activations and slice its residual width to `kept`."""
    layers = _get(model, layers_path)
    config = model.config
    original = config.hidden_size
    eps = getattr(config, "rms_norm_eps", None)
    if eps is None or any(not hasattr(_get(layers[0], name), "variance_epsilon") for name in NORMS):
        raise ValueError(f"{type(model).__name__}: SliceGPT here needs RMSNorm decoder layers of the Llama family")
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head.weight is embedding.weight:  # the head is rotated apart from the embedding: untie them
        head.weight = nn.Parameter(embedding.weight.detach().clone())
        config.tie_word_embeddings = False
    for layer in layers:
        _fold(layer.input_layernorm, [_get(layer, p) for p in ATTENTION_IN])
        _fold(layer.post_attention_layernorm, [_get(layer, p) for p in MLP_IN])
    _fold(_get(model, final_norm), [head])
    device = embedding.weight.device
    hidden, calls = capture_inputs(model, layers, calibration, device)
    hidden = [h.clone() for h in hidden]
    basis = principal_basis(hidden)[1][:, :kept].to(device)
    embedding.weight.data = (embedding.weight.data.double() @ basis).to(embedding.weight.dtype)
    embedding.embedding_dim = kept
    hidden = [(h.double() @ basis).to(h.dtype) for h in hidden]
    identity = torch.eye(original, dtype=torch.float64, device=device)
    for index, layer in enumerate(layers):
        for path in ATTENTION_IN:
            _rotate_in(_get(layer, path), basis)
        _resize_norm(layer.input_layernorm, original, kept, eps)
        # Attention's output and the MLP still in the model's own coordinates: read what reaches the MLP.
        make_sliced(layer, basis.T, identity)
        mid = []
        handle = layer.post_attention_layernorm.register_forward_pre_hook(lambda m, args: mid.append(args[0].clone()))
        outputs = [run_layer(layer, h, call[index], device) for h, call in zip(hidden, calls)]
        handle.remove()
        mid_basis = principal_basis(mid)[1][:, :kept].to(device)
        _rotate_out(_get(layer, ATTENTION_OUT), mid_basis)
        for path in MLP_IN:
            _rotate_in(_get(layer, path), mid_basis)
        _resize_norm(layer.post_attention_layernorm, original, kept, eps)
        make_sliced(layer, basis.T @ mid_basis, mid_basis.T)
        outputs = [run_layer(layer, h, call[index], device) for h, call in zip(hidden, calls)]
        out_basis = principal_basis(outputs)[1][:, :kept].to(device)
        _rotate_out(_get(layer, MLP_OUT), out_basis)
        make_sliced(layer, basis.T @ mid_basis, mid_basis.T @ out_basis)
        hidden = [(o.double() @ out_basis).to(o.dtype) for o in outputs]
        basis = out_basis
        log(f"slicegpt: layer {index + 1}/{len(layers)} rotated, residual {original} -> {kept}")
    _rotate_in(head, basis)
    _resize_norm(_get(model, final_norm), original, kept, eps)
    if getattr(config, "head_dim", None) is None:
        config.head_dim = original // config.num_attention_heads
    config.hidden_size = kept
    config.rms_norm_eps = eps * original / kept
    return {"hidden_size": {"before": original, "after": kept}}


def block_parameters(layer: nn.Module, width: int, shortcuts: bool) -> int:
    """A decoder block's parameters with its residual width set to `width` (the heads' and the
    MLP's inner widths unchanged), with or without shortcut matrices."""
    total = 0
    for path in (*ATTENTION_IN, *MLP_IN):
        linear = _get(layer, path)
        total += linear.out_features * width + (linear.bias.numel() if linear.bias is not None else 0)
    for path in (ATTENTION_OUT, MLP_OUT):
        linear = _get(layer, path)
        total += linear.in_features * width + (width if linear.bias is not None else 0)
    return total + len(NORMS) * width + (2 * width * width if shortcuts else 0)


def kept_for_ratio(layers, hidden: int, ratio: float, multiple: int = 8) -> int:
    """The residual width (a multiple of `multiple`) whose sliced blocks, shortcuts included, hold
    the fraction 1 - ratio of the dense blocks' parameters most nearly."""
    dense = sum(block_parameters(layer, hidden, False) for layer in layers)

    def removed(width):
        return 1 - sum(block_parameters(layer, width, True) for layer in layers) / dense

    return min(range(multiple, hidden + 1, multiple), key=lambda width: (abs(removed(width) - ratio), -width))


def check(model: nn.Module, spec, layers_path: str) -> None:
    """Refuse a model SliceGPT cannot rotate (RMSNorm Llama-family layers only; the model may sit on
    the meta device)."""
    require_llama_layers(model, layers_path, spec)
    if getattr(model.config, "rms_norm_eps", None) is None:
        raise InputError(f"{spec.name} needs a config with rms_norm_eps (Llama-family RMSNorm)")


def prune(model: nn.Module, calibration: list[torch.Tensor], spec, *, layers_path: str, device=None,
          log=print, checkpoints=None, **_options) -> dict:
    """SliceGPT at a ratio of decoder-block parameters removed; the model is left as prunebench's
    `prunebench_sliced` architecture, ready to save."""
    import time

    from ..architectures import SlicedConfig
    start = time.perf_counter()
    calibration = begin_pass(model, calibration, spec, device, min_tokens=1)
    layers = _get(model, layers_path)
    hidden = model.config.hidden_size
    dense = sum(p.numel() for layer in layers for p in layer.parameters())
    kept = kept_for_ratio(layers, hidden, spec.sparsity)
    record = rotate_and_slice(model, calibration, kept, layers_path=layers_path, log=log)
    after = sum(p.numel() for layer in _get(model, layers_path) for p in layer.parameters())
    model.config = SlicedConfig.from_base(model.config)
    log(f"{spec.name}: residual width {hidden} -> {kept}, {1 - after / dense:.1%} of decoder-block parameters removed")
    return {"method": spec.name, "family": "width", "sparsity_target": spec.sparsity, "pattern": None,
            "overall_sparsity": 1 - after / dense, **record, "sliced_fraction": 1 - kept / hidden,
            **pass_fields(model, calibration, start)}
