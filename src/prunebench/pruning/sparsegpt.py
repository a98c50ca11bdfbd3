"""SparseGPT (Frantar & Alistarh 2023, IST-DASLab/sparsegpt ``sparsegpt.py``) for one weight matrix.

Minimises ||W X - W' X|| given the Hessian H = (2/T) X X^T of the layer input: columns are pruned
left to right in blocks, and each pruned weight's error is pushed onto the not-yet-processed
columns through the upper Cholesky factor of H^-1 (the optimal brain surgeon update).
"""

from __future__ import annotations

import torch

from ..config import pruning_defaults, schema_property
from ..io import JobError
from .magnitude import check_nm, lowest_mask

MAX_DAMPING_RAISES = 3
DEFAULTS = pruning_defaults()  # blocksize, percdamp, mask_selection: the workflow schema's defaults


INVERSE_BLOCK = 512  # column block of the triangular inverse; smaller factors are inverted whole


def lower_triangular_inverse(lower: torch.Tensor, eye: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """L^-1 for a lower-triangular L, one block of columns at a time.

    Column block j of L^-1 is zero above its diagonal block, so it solves only L[j:, j:] X = I[j:, j:k]:
    about n^3/3 multiply-adds in all, against n^3 for one solve with the whole identity as its
    right-hand side (4864 columns, Qwen2.5-0.5B's down_proj: 1.0 s instead of 2.2 s on one core).
    Each column is the same forward substitution either way: the two agree to rounding (on this
    CPU, bit for bit).
    """
    n, block = lower.shape[0], block or INVERSE_BLOCK
    if n <= 2 * block:
        return torch.linalg.solve_triangular(lower, eye, upper=False)
    inverse = torch.zeros_like(lower)
    for j in range(0, n, block):
        k = min(j + block, n)
        inverse[j:, j:k] = torch.linalg.solve_triangular(lower[j:, j:], eye[j:, j:k], upper=False)
    return inverse


def inverse_cholesky(hessian: torch.Tensor, percdamp: float, *, log=print, max_raises: int = MAX_DAMPING_RAISES,
                     name: str = "") -> tuple[torch.Tensor, float, int]:
    """Upper Cholesky factor of (H + damp I)^-1, damp = percdamp * mean(diag H).

    An indefinite H (fp rounding, few tokens) makes a Cholesky fail: the dampening is raised
    tenfold and retried, loudly, up to ``max_raises`` times; returns (factor, fraction used, raises).
    """
    mean_diag = torch.mean(torch.diag(hessian))
    eye = torch.eye(hessian.shape[0], dtype=hessian.dtype, device=hessian.device)
    fraction = percdamp
    for raises in range(max_raises + 1):
        try:
            # H = R R^T with R upper (Cholesky of H reversed), so H^-1 = R^-T R^-1 and R^-1 is the
            # wanted factor: one factorisation and one triangular solve instead of the references'
            # Cholesky, inverse and second Cholesky; faster, and nearer the fp64 result.
            lower = torch.linalg.cholesky((hessian + fraction * mean_diag * eye).flip(0, 1))
            factor = lower_triangular_inverse(lower, eye).flip(0, 1)
            if not torch.isnan(factor).any():
                return factor, fraction, raises
        except torch.linalg.LinAlgError:
            pass
        if raises < max_raises:
            log(f"sparsegpt{' ' + name if name else ''}: Cholesky failed at dampening {fraction:g} x mean(diag H); "
                f"raising it to {fraction * 10:g}")
            fraction *= 10
    raise JobError(f"sparsegpt{' ' + name if name else ''}: Cholesky still fails at dampening {fraction:g} x "
                       f"mean(diag H) after {max_raises} raises; the Hessian is not usable")


MASK_SELECTIONS = tuple(schema_property("pruning", "mask_selection")["enum"])


def one_thread(function):
    """Run `function` on one CPU thread: SparseGPT's sums (the Hessian's X^T X, its Cholesky factor and
    inverse, the blocked updates) run in BLAS and LAPACK, whose summation order follows the thread
    count, and a last-bit change moves a weight across its row's threshold and every correction after
    it (measured on the embedded model: 1 against 2 threads left 5% of the weights pruned on one side
    only). The model's forward passes, whose results did not change with the threads, keep them all."""
    import functools

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return wrapped


@one_thread
def prepare(hessian: torch.Tensor, *, percdamp: float = DEFAULTS["percdamp"], log=print, name: str = "",
            max_damping_raises: int = MAX_DAMPING_RAISES, device=None, **options) -> dict:
    """The inverse-Hessian factor once per Hessian: {"factor": (Hinv factor, dead columns, damping, raises)}.

    Dead input channels (diag H = 0) get H_jj = 1, so the factor exists; their weights are zeroed.
    """
    H = hessian.detach().to(device=device if device is not None else hessian.device, dtype=torch.float32).clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    Hinv, damping, raised = inverse_cholesky(H, percdamp, log=log, max_raises=max_damping_raises, name=name)
    return {"factor": (Hinv, dead, damping, raised)}


@one_thread
def prune(weight: torch.Tensor, hessian: torch.Tensor, spec, *, blocksize: int = DEFAULTS["blocksize"],
          percdamp: float = DEFAULTS["percdamp"], log=print, info: dict | None = None, name: str = "",
          max_damping_raises: int = MAX_DAMPING_RAISES, mask_selection: str = DEFAULTS["mask_selection"],
          factor: tuple | None = None, **options) -> torch.Tensor:
    """Prune ``weight`` (rows x cols) with the SparseGPT OBS update; fills ``info`` with the dampening used.

    ``mask_selection`` decides an unstructured block's mask: "exact" prunes the int(numel * s) lowest
    scores; "reference" prunes every score <= the one at that index of the sorted block, as
    IST-DASLab/sparsegpt and llm-compressor do (one weight per block more, and all ties).
    ``factor`` is what ``prepare`` returned for this Hessian, shared by the modules that read one input.
    """
    if mask_selection not in MASK_SELECTIONS:
        raise ValueError(f"sparsegpt: mask_selection must be one of {', '.join(MASK_SELECTIONS)}, got {mask_selection!r}")
    rows, cols = weight.shape
    if hessian.shape != (cols, cols):
        raise ValueError(f"sparsegpt: Hessian of shape {tuple(hessian.shape)} for a weight of {cols} columns")
    if spec.sparsity is None:
        check_nm(cols, spec.n, spec.m)
        if blocksize % spec.m:
            raise ValueError(f"sparsegpt: blocksize {blocksize} must be a multiple of M={spec.m} for {spec.pattern}")
    W = weight.detach().float().clone()
    if factor is None:
        factor = prepare(hessian, percdamp=percdamp, log=log, name=name, max_damping_raises=max_damping_raises,
                         device=W.device)["factor"]
    Hinv, dead, damping, raised = factor
    W[:, dead] = 0
    if info is not None:
        info.update(damping=damping, damping_raised=raised)

    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        Hinv1 = Hinv[i1:i2, i1:i2]
        diag = torch.diag(Hinv1)
        # The block transposed, so that column i is the contiguous row W1[i]; it is final after step
        # i: unchanged where kept, ~0 where pruned (set to exactly 0 at the end of the block).
        W1 = W[:, i1:i2].T.contiguous()
        ErrT = torch.empty_like(W1)
        if spec.sparsity is not None:
            scores = W[:, i1:i2] ** 2 / diag.reshape(1, -1) ** 2
            k = int(scores.numel() * spec.sparsity)
            if mask_selection == "exact":
                mask1 = lowest_mask(scores, k).T.contiguous()
            else:
                kth = torch.kthvalue(scores.flatten(), min(k, scores.numel() - 1) + 1).values  # sorted[k]
                mask1 = (scores <= kth).T.contiguous()
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        pruned = mask1.to(W.dtype)
        for i in range(i2 - i1):
            if spec.sparsity is None and i % spec.m == 0:
                # Chosen on the already-updated weights, as the reference does.
                scores = W1[i:i + spec.m].T ** 2 / diag[i:i + spec.m].reshape(1, -1) ** 2
                lowest = torch.topk(scores, spec.m - spec.n, dim=1, largest=False)[1]
                mask1[i:i + spec.m].T.scatter_(1, lowest, True)
                pruned[i:i + spec.m] = mask1[i:i + spec.m]
            err = torch.mul(W1[i], pruned[i], out=ErrT[i]).div_(diag[i])   # (w - q) / d
            W1[i:].addr_(Hinv1[i, i:], err, alpha=-1)
        W[:, i1:i2] = W1.masked_fill_(mask1, 0).T
        W[:, i2:].addmm_(ErrT.T, Hinv[i1:i2, i2:], alpha=-1)
    return W.to(weight.dtype)
