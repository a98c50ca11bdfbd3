"""Recovery fine-tuning: LoRA on a pruned model (static or dynamic), data from a calibration-style
recipe (aligned: the model's own responses or its named training data; generic: Alpaca, C4).

A held-out share of the recipe's sequences measures the loss before and after and, where
`patience` is set, stops the training early and keeps the best adapter. The adapter is saved in
peft's format and merged into the weights, so the recovered model has the pruned model's
architecture and is evaluated like any other checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .io import InputError
from .training import LoraRun, held_out_loss, train_lora


def held_out_split(sequences: list[torch.Tensor], fraction: float, seed: int) -> tuple[list, list]:
    """(train, held out): a seeded `fraction` of the sequences (at least one, where there are two or
    more and the fraction is positive) is held out."""
    if fraction <= 0 or len(sequences) < 2:
        return list(sequences), []
    count = min(len(sequences) - 1, max(1, round(fraction * len(sequences))))
    order = torch.randperm(len(sequences), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:count])
    return [s for i, s in enumerate(sequences) if i not in held], [s for i, s in enumerate(sequences) if i in held]


def recover(model: nn.Module, sequences: list[torch.Tensor], settings: dict, *, checkpoint: Path | None = None,
            adapter_dir: Path | None = None, log=print, progress: bool = True) -> dict:
    """Fine-tune `model` in place with LoRA as `settings` (a config `recovery.definitions` entry) say;
    return what was done: the held-out loss before and after, and the training history."""
    sequences = [torch.as_tensor(ids).reshape(-1) for ids in sequences]
    if not sequences or any(len(ids) < 2 for ids in sequences):
        raise InputError("recovery needs sequences of at least 2 tokens")
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    missing = [t for t in settings["targets"] if t not in names]
    if missing:
        raise InputError(f"recovery targets {missing}: {type(model).__name__} has no linear layer of that name")
    train, held = held_out_split(sequences, settings["held_out"], settings["seed"])
    before = held_out_loss(model, held) if held else None
    run = LoraRun(targets=tuple(settings["targets"]), steps=settings["steps"], batch_size=settings["batch_size"],
                  learning_rate=settings["learning_rate"], rank=settings["lora_rank"], alpha=settings["lora_alpha"],
                  seed=settings["seed"], checkpoint_every=settings["checkpoint_every"],
                  evaluate_every=settings["evaluate_every"] if held else 0, patience=settings["patience"])
    routed = [m for m in model.modules() if hasattr(m, "routers")]

    def route_as_at_inference(step: int) -> None:
        """A dynamic model's routers stay frozen and decide as they will at inference (no Gumbel
        noise, MoD's thresholds), so the LoRA learns the model that will be evaluated."""
        for layer in routed:
            layer.eval()

    history = train_lora(model, train, run, checkpoint=checkpoint, validation=held, adapter_dir=adapter_dir,
                         before_step=route_as_at_inference if routed else None, name="recovery", log=log,
                         progress=progress)
    after = held_out_loss(model, held) if held else None
    if held:
        log(f"recovery: held-out loss {before:.4f} -> {after:.4f} after {history['steps']} steps"
            f"{' (stopped early)' if history['stopped_early'] else ''}")
    return {"sequences": {"train": len(train), "held_out": len(held)}, "held_out_loss": {"before": before, "after": after},
            "training": history}
