"""The local mirror's task files, as the rows lm-eval's own task reads from the hub.

Each task YAML here names one of these functions as its `custom_dataset`; lm-eval calls it with
the task's metadata, which carries `data_dir` (prunebench passes its config's `data_dir`; with
lm-eval's CLI: `--metadata '{"data_dir": "../shared/data"}'`). The mirror keeps each task as its
authors published it, so a loader only renames fields into the hub dataset's shape (same rows,
same split); docs/README of the mirror says which hub split each file equals.

TruthfulQA is sealed like GPQA Diamond: it is read from its encrypted archive in memory, and the
rows never touch the disk (an in-memory `datasets.Dataset` writes no cache files).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

TRUTHFULQA_PASSWORD = b"mimic-human-falsehoods"  # set by the mirror; see data/README.md
SEALED_TASKS = frozenset({"truthfulqa_mc1", "truthfulqa_mc2", "truthfulqa_gen"})


class MirrorError(ValueError):
    """A task's mirror file is missing or not in the shape its loader expects."""


def _mirror_file(data_dir: str | None, relative: str) -> Path:
    if not data_dir:
        raise MirrorError(f"no data_dir in the task metadata: the mirror file {relative} cannot be found "
                          f"(pass metadata {{\"data_dir\": \"<mirror folder>\"}})")
    path = Path(data_dir) / relative
    if not path.is_file():
        raise MirrorError(f"{path}: not found (the mirror's {relative})")
    return path


def _jsonl(path: Path) -> list[dict]:
    """Rows of a .jsonl or .jsonl.gz mirror file (prunebench's reader: a bad line is named)."""
    from prunebench.datasets import read_rows

    return read_rows(path)


def _labels(path: Path, count: int) -> list[int]:
    labels = [int(line) for line in path.read_text(encoding="utf-8").split()]
    if len(labels) != count:
        raise MirrorError(f"{path}: {len(labels)} labels for {count} rows")
    return labels


def _dataset(split: str, rows: list[dict]):
    import datasets

    return datasets.DatasetDict({split: datasets.Dataset.from_list(rows)})


def boolq(data_dir: str | None = None, **_):
    """aps/super_glue `boolq`, validation: `label` 0/1 in place of the published `answer` bool."""
    rows = _jsonl(_mirror_file(data_dir, "boolq/dev.jsonl"))
    return _dataset("validation", [{"question": r["question"], "passage": r["passage"], "idx": i,
                                    "label": int(r["answer"])} for i, r in enumerate(rows)])


def piqa(data_dir: str | None = None, **_):
    """baber/piqa, validation: the authors' dev rows with their labels file joined in."""
    rows = _jsonl(_mirror_file(data_dir, "piqa/valid.jsonl"))
    labels = _labels(_mirror_file(data_dir, "piqa/valid-labels.lst"), len(rows))
    return _dataset("validation", [{"goal": r["goal"], "sol1": r["sol1"], "sol2": r["sol2"], "label": label}
                                   for r, label in zip(rows, labels)])


def winogrande(data_dir: str | None = None, **_):
    """allenai/winogrande `winogrande_xl`, validation (the 1.1 dev set every size shares)."""
    rows = _jsonl(_mirror_file(data_dir, "winogrande/dev.jsonl"))
    return _dataset("validation", [{k: r[k] for k in ("sentence", "option1", "option2", "answer")} for r in rows])


def _choices(question: dict) -> dict:
    return {"text": [c["text"] for c in question["choices"]], "label": [c["label"] for c in question["choices"]]}


def arc_challenge(data_dir: str | None = None, **_):
    """allenai/ai2_arc `ARC-Challenge`, test: the question's stem and choices lifted to the top level."""
    rows = _jsonl(_mirror_file(data_dir, "arc/ARC-Challenge-Test.jsonl"))
    return _dataset("test", [{"id": r["id"], "question": r["question"]["stem"], "choices": _choices(r["question"]),
                              "answerKey": r["answerKey"]} for r in rows])


def openbookqa(data_dir: str | None = None, **_):
    """allenai/openbookqa `main`, test: `question_stem` and `choices` as the hub names them."""
    rows = _jsonl(_mirror_file(data_dir, "openbookqa/test.jsonl"))
    return _dataset("test", [{"id": r["id"], "question_stem": r["question"]["stem"],
                              "choices": _choices(r["question"]), "answerKey": r["answerKey"]} for r in rows])


def ifeval(data_dir: str | None = None, **_):
    """google/IFEval, train: the 541 prompts of input_data.jsonl as they are."""
    rows = _jsonl(_mirror_file(data_dir, "ifeval/input_data.jsonl"))
    return _dataset("train", [{k: r[k] for k in ("key", "prompt", "instruction_id_list", "kwargs")} for r in rows])


def truthfulqa_mc(data_dir: str | None = None, **_):
    """truthfulqa/truthful_qa `multiple_choice`, validation, read from the sealed archive in memory:
    each target dict {answer: 0/1} becomes {choices, labels} in the file's order, as the hub's
    loading script built it."""
    path = _mirror_file(data_dir, "truthfulqa/truthfulqa.zip")
    try:
        with zipfile.ZipFile(path) as archive, archive.open("data/mc_task.json", pwd=TRUTHFULQA_PASSWORD) as handle:
            rows = json.loads(handle.read().decode("utf-8"))
    except (OSError, KeyError, RuntimeError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise MirrorError(f"{path}: cannot read data/mc_task.json ({type(err).__name__})") from None

    def targets(answers: dict) -> dict:
        return {"choices": list(answers), "labels": [int(v) for v in answers.values()]}

    return _dataset("validation", [{"question": r["question"], "mc1_targets": targets(r["mc1_targets"]),
                                    "mc2_targets": targets(r["mc2_targets"])} for r in rows])



def humaneval(data_dir: str | None = None, **_):
    """openai/openai_humaneval, test: the 164 problems of HumanEval.jsonl.gz as they are."""
    rows = _jsonl(_mirror_file(data_dir, "humaneval/HumanEval.jsonl.gz"))
    return _dataset("test", [{k: r[k] for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")}
                             for r in rows])


def humaneval_plus(data_dir: str | None = None, **_):
    """evalplus/humanevalplus, test: the v0.1.10 OriginFmt file (base and plus inputs inlined in `test`)."""
    rows = _jsonl(_mirror_file(data_dir, "humaneval/HumanEvalPlus-OriginFmt-v0.1.10.jsonl.gz"))
    return _dataset("test", [{k: r[k] for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")}
                             for r in rows])
