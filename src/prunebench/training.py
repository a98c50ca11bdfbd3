"""LoRA training through peft, one loop for router training (dynamic pruning) and recovery
fine-tuning: seeded batches fixed by the step, optional extra trainable parameters and loss term,
early stopping on held-out sequences, a progress bar, and checkpoints that let a killed run end with
the weights an unkilled one would.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .io import atomic_path


@dataclass
class LoraRun:
    """How to train: LoRA on `targets` (module-name suffixes), AdamW, `steps` batches of `batch_size`."""

    targets: tuple[str, ...]
    steps: int
    batch_size: int
    learning_rate: float
    rank: int = 16
    alpha: int = 32
    seed: int = 0
    checkpoint_every: int = 25
    evaluate_every: int = 0         # 0: no held-out evaluation, no early stopping
    patience: int = 0               # evaluations without a better held-out loss before stopping (0: never)
    extra: list = field(default_factory=list)   # further trainable parameters (routers) ...
    extra_learning_rate: float = 0.0            # ... and their learning rate


def batch_at(sequences: list[torch.Tensor], step: int, size: int, seed: int) -> list[torch.Tensor]:
    """The sequences of a training step: epochs of seeded permutations, fixed by the step alone (so a
    resumed run draws what an unkilled one would)."""
    order = []
    for position in range(step * size, (step + 1) * size):
        epoch, offset = divmod(position, len(sequences))
        permutation = torch.randperm(len(sequences), generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        order.append(sequences[int(permutation[offset])])
    return order


def padded(sequences: list[torch.Tensor], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids right-padded with 0, and the attention mask."""
    width = max(len(ids) for ids in sequences)
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    mask = torch.zeros(len(sequences), width, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)], mask[row, :len(seq)] = seq, 1
    return ids.to(device), mask.to(device)


def lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the real (unpadded) tokens."""
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    return nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def held_out_loss(model: nn.Module, sequences: list[torch.Tensor]) -> float:
    """Mean next-token loss over every predicted token of `sequences`, one at a time, without gradients."""
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    with torch.no_grad():
        for ids in sequences:
            ids = ids.reshape(1, -1).to(device)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            total += float(nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            tokens += ids.shape[1] - 1
    return total / max(tokens, 1)


def _stable_adapter_config(path: Path) -> None:
    """peft writes `target_modules` from a Python set, in an order that changes with the process's
    hash seed: sorted, the same adapter gives the same bytes (and the checkpoint the same hash)."""
    import json

    config = json.loads(path.read_text(encoding="utf-8"))
    for key, value in config.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            config[key] = sorted(value)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _saved_state(checkpoint: Path, name: str, log) -> dict | None:
    """A resumable training's saved state, or None. It is always written whole (atomic_path), so an
    unreadable one was damaged after the fact: it is set aside with a warning, and training starts
    over rather than stopping on a traceback. Loaded with weights_only (tensors and plain data), so
    that a file planted in the folder cannot run code."""
    if not checkpoint.exists():
        return None
    try:
        saved = torch.load(checkpoint, weights_only=True)
        if not isinstance(saved, dict) or not {"state", "optimizer", "step", "history", "best", "waited"} <= set(saved):
            raise ValueError("not a training state")
        return saved
    except (RuntimeError, ValueError, EOFError, OSError, KeyError, pickle.UnpicklingError) as err:
        damaged = checkpoint.with_name(checkpoint.name + ".damaged")
        checkpoint.replace(damaged)
        log(f"{name}: the saved training state {checkpoint} cannot be read ({type(err).__name__}); "
            f"it is kept as {damaged.name}, and training starts over")
        return None


def train_lora(model: nn.Module, sequences: list[torch.Tensor], run: LoraRun, *, checkpoint: Path | None = None,
               validation: list[torch.Tensor] = (), adapter_dir: Path | None = None,
               before_step: Callable[[int], None] | None = None,
               extra_loss: Callable[[torch.Tensor], tuple[torch.Tensor | None, dict]] | None = None,
               name: str = "lora", log=print, progress: bool = True, step_seconds: list | None = None) -> dict:
    """Train LoRA (and `run.extra`) on `sequences` with the LM loss plus `extra_loss(mask)`, the base
    frozen; keep the best held-out state where early stopping is on; save the adapter to
    `adapter_dir` (peft's format) if given; merge it into the weights. Returns the history.

    `checkpoint` (a file) receives adapter, extra parameters, optimiser and best state every
    `run.checkpoint_every` steps; an existing one is resumed. `step_seconds`, where given, receives
    each step's wall time (kept out of the history, which records results only).
    """
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
    from tqdm import tqdm

    device = next(model.parameters()).device
    config = LoraConfig(r=run.rank, lora_alpha=run.alpha, lora_dropout=0.0, bias="none", target_modules=list(run.targets))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)
        peft_model = get_peft_model(model, config)
    for parameter in run.extra:
        parameter.requires_grad_(True)
    adapter = [p for n, p in peft_model.named_parameters() if "lora_" in n]
    groups = [{"params": adapter, "lr": run.learning_rate}]
    if run.extra:
        groups.append({"params": list(run.extra), "lr": run.extra_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)

    def state() -> dict:
        return {"adapter": {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()},
                "extra": [p.detach().clone() for p in run.extra]}   # copies: the live tensors go on training

    def restore(saved: dict) -> None:
        set_peft_model_state_dict(peft_model, saved["adapter"])
        with torch.no_grad():
            for parameter, value in zip(run.extra, saved["extra"]):
                parameter.copy_(value)

    history, start, best, waited, stopped = [], 0, None, 0, False
    saved = _saved_state(Path(checkpoint), name, log) if checkpoint is not None else None
    if saved is not None:
        restore(saved["state"])
        optimizer.load_state_dict(saved["optimizer"])
        start, history, best, waited = saved["step"], saved["history"], saved["best"], saved["waited"]
        stopped = saved.get("stopped", False)
        log(f"{name}: resuming at step {start} of {run.steps}")
    peft_model.train()
    bar = tqdm(range(start, run.steps), initial=start, total=run.steps, desc=name, disable=not progress or stopped,
               mininterval=5)
    for step in bar:
        if stopped:
            break
        began = time.perf_counter()
        ids, mask = padded(batch_at(sequences, step, run.batch_size, run.seed), device)
        if before_step is not None:
            before_step(step)
        language = lm_loss(peft_model(input_ids=ids, attention_mask=mask, use_cache=False).logits, ids, mask)
        extra, fields = extra_loss(mask) if extra_loss is not None else (None, {})
        loss = language if extra is None else language + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        entry = {"step": step + 1, "loss": loss.item(), "lm_loss": language.item(), **fields}
        if step_seconds is not None:
            step_seconds.append(time.perf_counter() - began)
        if run.evaluate_every and validation and ((step + 1) % run.evaluate_every == 0 or step + 1 == run.steps):
            peft_model.eval()
            entry["held_out_loss"] = held_out_loss(peft_model, list(validation))
            peft_model.train()
            if best is None or entry["held_out_loss"] < best["loss"]:
                best, waited = {"loss": entry["held_out_loss"], "step": step + 1, "state": state()}, 0
            else:
                waited += 1
                stopped = bool(run.patience) and waited >= run.patience
        history.append(entry)
        bar.set_postfix({k: f"{v:.3f}" for k, v in entry.items() if k != "step"})
        if checkpoint is not None and run.checkpoint_every and (
                (step + 1) % run.checkpoint_every == 0 or step + 1 == run.steps or stopped):
            with atomic_path(Path(checkpoint)) as tmp:
                torch.save({"state": state(), "optimizer": optimizer.state_dict(), "step": step + 1,
                            "history": history, "best": best, "waited": waited, "stopped": stopped}, tmp)
    bar.close()
    if best is not None:
        restore(best["state"])
    if adapter_dir is not None:
        peft_model.save_pretrained(adapter_dir)
        _stable_adapter_config(Path(adapter_dir) / "adapter_config.json")
    peft_model.merge_and_unload()   # the LoRA deltas into the target weights in place: the model is the base again
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return {"steps": len(history), "planned_steps": run.steps, "resumed_at": start, "stopped_early": stopped,
            "best_step": best["step"] if best else None, "best_held_out_loss": best["loss"] if best else None,
            "history": history}
