"""Router training, timed against the plain loop it adds to: prunebench's router training step
(routers on every routed layer, the routed forward with its attention masks, LoRA through peft,
the sparsity penalty) against a plain transformers + peft LoRA training loop over the same model,
the same batch and the same LoRA targets, in one run. Both run in this process, one after the
other, each on a freshly loaded model; each step's wall time is taken after `--warmup` steps and the
medians are compared.

Goal: prunebench's step within 1.2x of the plain loop's.

    python bench/router_train_speed.py --model results/models/qwen2.5-coder-0.5b-instruct/model.json \\
        --method skipgpt --steps 8 --length 128
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _model(path: str, dtype: str, device: str):
    from prunebench.models import load_model

    return load_model(path, dtype, device).train()


def plain_loop(model, batch: torch.Tensor, targets: tuple[str, ...], steps: int, seed: int) -> list[float]:
    """The peer: peft's LoRA on the same targets, AdamW, forward with labels, backward, step."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=list(targets)))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.0)
    seconds = []
    for _ in range(steps):
        began = time.perf_counter()
        loss = peft_model(input_ids=batch, labels=batch, use_cache=False).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - began)
    return seconds


def prunebench_loop(model, batch: torch.Tensor, method: str, steps: int, seed: int) -> list[float]:
    from prunebench.architectures import routed
    from prunebench.config import pruning_defaults
    from prunebench.pruning import dynamic

    options = pruning_defaults()
    routed.attach_routers(model, method, 0.2, seed=seed)
    seconds: list[float] = []
    dynamic.train_routers(model, [row for row in batch.cpu()], method, 0.2, steps=steps, batch_size=batch.shape[0],
                          learning_rate=options["router_learning_rate"],
                          lora_learning_rate=options["router_lora_learning_rate"], penalty=options["router_penalty"],
                          lora_rank=16, lora_alpha=32, seed=seed, checkpoint_every=0, progress=False,
                          log=lambda *_: None, step_seconds=seconds)
    return seconds


def main() -> int:
    from prunebench.architectures.routed import ROUTINGS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a prepared model.json or a checkpoint directory")
    parser.add_argument("--method", default="skipgpt", choices=sorted(ROUTINGS))
    parser.add_argument("--steps", type=int, default=8, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    first = _model(args.model, args.dtype, args.device)
    vocabulary = first.config.vocab_size
    generator = torch.Generator().manual_seed(args.seed)
    batch = torch.randint(0, vocabulary, (args.batch_size, args.length), generator=generator).to(args.device)
    total = args.warmup + args.steps
    plain = plain_loop(first, batch, ROUTINGS[args.method].lora_targets, total, args.seed)[args.warmup:]
    del first
    routed = prunebench_loop(_model(args.model, args.dtype, args.device), batch, args.method, total,
                             args.seed)[args.warmup:]
    peer, ours = statistics.median(plain), statistics.median(routed)
    print(f"{args.method} router training, batch {args.batch_size} x {args.length} tokens, {args.dtype} on "
          f"{args.device} ({torch.get_num_threads()} threads), median of {args.steps} steps after {args.warmup}:")
    print(f"  plain transformers + peft LoRA step  {peer:8.3f} s")
    print(f"  prunebench router training step      {ours:8.3f} s")
    print(f"  ratio {ours / peer:.2f} (goal <= 1.20)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
