"""The tasks of the second paper's suite by name: their label and category (TASKS), and the task
YAMLs prunebench ships for lm-eval: which read the local mirror, which read the hub, which run
model-written code. Standard library only, so that config checks can name a task that does not
exist without importing lm-eval."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .io import InputError

TASK_DIR = Path(__file__).resolve().parent / "lmeval" / "tasks"
# A task name is a file name in an out-dir (`{task}.json`): never a path.
TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _tagged(tag: str) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in TASK_DIR.glob("*.yaml") if tag in p.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Task:
    """A task as the suite's table shows it: its column's label, and the category it averages into
    (a config's task entry may name another category)."""

    label: str
    category: str


CATEGORIES = ("classification", "generation", "reasoning")
# The study's 17 tasks: these 13 through lm-eval, and prunebench's own AIME, MATH500, GPQA Diamond
# and JEEBench (datasets.DATASETS) in the reasoning category.
TASKS: dict[str, Task] = {
    "boolq": Task("BoolQ", "classification"),
    "piqa": Task("PIQA", "classification"),
    "hellaswag": Task("HellaSwag", "classification"),
    "winogrande": Task("WinoGrande", "classification"),
    "arc_easy": Task("ARC-e", "classification"),
    "arc_challenge": Task("ARC-c", "classification"),
    "openbookqa": Task("OBQA", "classification"),
    "ifeval": Task("IFEval", "generation"),
    "truthfulqa_mc2": Task("TruthfulQA", "generation"),
    "popqa": Task("PopQA", "generation"),
    "humaneval": Task("HumanEval", "generation"),
    "humaneval_plus": Task("HumanEval+", "generation"),
    "livecodebench": Task("LiveCodeBench", "reasoning"),
}

SHIPPED_TASKS = tuple(sorted(p.stem for p in TASK_DIR.glob("*.yaml")))
MIRRORED_TASKS = _tagged("prunebench_mirror")
CODE_TASKS = _tagged("prunebench_code")


def check_task(name: str, allow_hub: bool, *, where: str, entry: str, how: str) -> None:
    """Refuse a task that cannot run: a name that could not be a file name of its own (a path, '..',
    empty; said of `where`), or one that reads the hub where the hub is not allowed (said of
    `entry`; `how` says how to allow it)."""
    if not isinstance(name, str) or not TASK_NAME.match(name):
        raise InputError(f"{where}: {name!r} is not a task name (letters, digits, '_', '.', '-'; no path)")
    if allow_hub or name in MIRRORED_TASKS:
        return
    if name in SHIPPED_TASKS:
        raise InputError(f"{entry}: reads the hub, which is not allowed ({how}; a copy of its files in the "
                         f"data mirror is read instead)")
    raise InputError(f"{entry}: not a task prunebench ships ({', '.join(SHIPPED_TASKS)}), so lm-eval's own, "
                     f"which reads the hub ({how}); a misspelt name?")
