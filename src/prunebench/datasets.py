"""Dataset registry: each entry reads a local mirror file or the Hugging Face hub into one record shape.

Problems become ``{id, question, answer, solution, meta}``; corpora become ``{id, text, meta}``.
GPQA Diamond is *sealed*: its normalized file keeps ids, answers and option orders only, and the
question text is read from the encrypted archive in memory whenever a prompt is built.
"""

from __future__ import annotations

import gzip
import io as _io
import json
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from . import wordproblems
from .io import InputError
from .prompts import last_boxed

GPQA_PASSWORD = b"deserted-untie-orchid"  # published with the archive by its authors; see data/README.md
LETTERS = "ABCD"


@dataclass(frozen=True)
class HubFile:
    repo: str
    files: tuple[str, ...]
    revision: str = "main"


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "math" (free-form answer), "choice" (a letter), "corpus" (plain text)
    normalize: Callable[[list[dict]], list[dict]]
    mirror: tuple[str, ...] = ()
    hub: HubFile | None = None
    benchmark: bool = False
    sealed: bool = False
    generated: Callable[[], list[dict]] | None = None
    description: str = ""
    instruction: str = "Let's think step by step and output the final answer within \\boxed{}."
    license: str = ""
    meta: dict = field(default_factory=dict)
    group_by: str | None = None  # a meta field the metrics also break pass@1 down by (e.g. "level")
    label: str = ""  # how tables and figures name it (a benchmark's column); empty = its name

    @property
    def shown(self) -> str:
        return self.label or self.name


# ---------------------------------------------------------------- raw file reading (mirror and hub)

def read_rows(path: Path, name_in_archive: str | None = None) -> list[dict]:
    """Rows of a .jsonl, .json (array), .json.gz, .parquet, .csv, .txt or password-protected .zip file."""
    suffixes = "".join(path.suffixes[-2:])
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                inner = name_in_archive or next(n for n in archive.namelist() if n.endswith((".jsonl", ".csv")))
                with archive.open(inner, pwd=GPQA_PASSWORD) as handle:
                    data = handle.read().decode("utf-8")
            return _parse_text(data, inner, path)
        if suffixes.endswith(".json.gz") or suffixes.endswith(".jsonl.gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return _parse_text(handle.read(), ".jsonl", path)
        if path.suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(path).to_dict(orient="records")
        return _parse_text(path.read_text(encoding="utf-8"), path.name, path)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, StopIteration) as err:
        raise InputError(f"{path}: cannot read dataset file: {err}") from None


def _parse_text(text: str, name: str, where: Path) -> list[dict]:
    if name.endswith(".jsonl"):
        rows = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InputError(f"{where}:{lineno}: not valid JSON ({err.msg})") from None
        return rows
    if name.endswith(".json"):
        data = json.loads(text)
        return data if isinstance(data, list) else data.get("data", [])
    if name.endswith(".csv"):
        import pandas as pd

        return pd.read_csv(_io.StringIO(text)).to_dict(orient="records")
    return [{"text": line} for line in text.splitlines()]


def fetch_raw(dataset: Dataset, data_dir: str | Path | None, allow_hub: bool = False) -> tuple[list[dict], list[str]]:
    """Raw rows from the mirror if all its files are there, else (where allowed) from the hub; and
    where they came from."""
    if data_dir is not None and dataset.mirror:
        paths = [Path(data_dir) / rel for rel in dataset.mirror]
        if all(p.exists() for p in paths):
            rows = []
            for p in paths:
                rows.extend(dict(r, _file=p.name) for r in read_rows(p))
            return rows, [str(p) for p in paths]
    missing = ", ".join(dataset.mirror) or "no mirror files"
    if dataset.hub is None:
        raise InputError(f"dataset {dataset.name}: not in the local mirror {data_dir} ({missing}) and has no hub source")
    if not allow_hub:
        raise InputError(f"dataset {dataset.name}: not in the local mirror {data_dir} ({missing}), and the hub is not "
                         f"allowed (config allow_hub: true, or --allow-hub)")
    from huggingface_hub import hf_hub_download

    rows, origins = [], []
    for rel in dataset.hub.files:
        local = hf_hub_download(dataset.hub.repo, rel, repo_type="dataset", revision=dataset.hub.revision)
        rows.extend(dict(r, _file=Path(rel).name) for r in read_rows(Path(local)))
        origins.append(f"hf://datasets/{dataset.hub.repo}@{dataset.hub.revision}/{rel}")
    return rows, origins


def load(name: str, data_dir: str | Path | None, allow_hub: bool = False) -> tuple[list[dict], list[str]]:
    """Normalized records of a dataset and the files they came from."""
    dataset = get(name)
    if dataset.generated is not None:
        return dataset.generated(), [f"prunebench.wordproblems ({dataset.description})"]
    rows, origins = fetch_raw(dataset, data_dir, allow_hub)
    records = dataset.normalize(rows)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise InputError(f"dataset {name}: duplicate ids after normalization")
    return records, origins


def subset(records: list[dict], count: int, seed: int, name: str) -> list[dict]:
    """A seeded subset; a larger count keeps every record a smaller one chose (nested subsets)."""
    if count >= len(records):
        return list(records)
    order = list(range(len(records)))
    random.Random(f"{seed}:{name}").shuffle(order)
    return [records[i] for i in order[:count]]


# ---------------------------------------------------------------- answer helpers

def _strip_dollars(answer: str) -> str:
    answer = answer.strip().rstrip(".").strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) >= 2:
        answer = answer.strip("$").strip()
    return answer


_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_solution(text: str) -> tuple[str, str]:
    """GSM8K's answer field -> (readable worked solution ending in a boxed answer, the answer)."""
    body, _, final = text.rpartition("####")
    answer = final.strip().replace(",", "")
    solution = _CALC.sub("", body).strip()
    return f"{solution}\nThe final answer is $\\boxed{{{answer}}}$.", answer


# ---------------------------------------------------------------- normalizers

def _gsm8k(rows):
    out = []
    for index, row in enumerate(rows):
        solution, answer = gsm8k_solution(row["answer"])
        out.append({"id": f"gsm8k-{row.get('_file', '').split('-')[0].split('.')[0]}-{index}",
                    "question": row["question"], "answer": answer, "solution": solution, "meta": {}})
    return out


def _math(rows):
    out = []
    for index, row in enumerate(rows):
        answer = last_boxed(row["solution"])
        if answer is None:
            continue
        level = str(row.get("level", ""))
        uid = row.get("unique_id") or f"{row.get('type', 'math')}/{index}"
        out.append({"id": f"math-{uid}", "question": row["problem"], "answer": answer, "solution": row["solution"],
                    "meta": {"level": level, "subject": row.get("type", "")}})
    return out


def _math500(rows):
    return [{"id": f"math500-{row['unique_id']}", "question": row["problem"], "answer": row["answer"],
             "solution": row["solution"], "meta": {"level": row.get("level"), "subject": row.get("subject")}}
            for row in rows]


def _aime(rows):
    out = []
    for index, row in enumerate(rows):
        if "aime_number" in row or row.get("year") == 2024 or "2024" in str(row.get("url", "")):
            ident = f"aime-2024-{row.get('aime_number', '')}-{row.get('problem_number', index)}"
        else:
            ident = f"aime-{row.get('id', index)}"
        answer = str(row["answer"]).strip()
        answer = (answer.lstrip("0") or "0") if answer.isdigit() else answer
        out.append({"id": ident, "question": row["problem"], "answer": answer, "solution": row.get("solution"),
                    "meta": {}})
    return out


def _olympiad(rows):
    out = []
    for row in rows:
        answer = row["final_answer"] if "final_answer" in row else row["answer"]
        if isinstance(answer, (list, tuple)) or hasattr(answer, "tolist"):
            answer = list(answer)[0]
        question = row.get("question") or row["problem"]
        if row.get("context"):
            question = f"{row['context']}\n{question}"
        out.append({"id": f"olympiadbench-{row['id']}", "question": question, "answer": _strip_dollars(str(answer)),
                    "solution": None, "meta": {"subfield": row.get("subfield"), "unit": row.get("unit")}})
    return out


def _gpqa_options(row: dict, seed: str) -> tuple[list[str], str]:
    """The four options in a seeded order per question, and the correct letter."""
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    order = list(range(4))
    random.Random(f"gpqa:{seed}:{row['Record ID']}").shuffle(order)
    return [str(options[i]).strip() for i in order], LETTERS[order.index(0)]


def _gpqa(rows):
    out = []
    for row in rows:
        _, letter = _gpqa_options(row, "0")
        out.append({"id": f"gpqa-{row['Record ID']}", "question": None, "answer": letter, "solution": None,
                    "meta": {"domain": row.get("High-level domain"), "sealed": True}})
    return out


def gpqa_question(row: dict) -> str:
    options, _ = _gpqa_options(row, "0")
    lines = [str(row["Question"]).strip(), ""] + [f"({LETTERS[i]}) {opt}" for i, opt in enumerate(options)]
    return "\n".join(lines)


JEEBENCH_KINDS = {"MCQ": "choice", "MCQ(multiple)": "letters", "Integer": "math", "Numeric": "math"}
JEEBENCH_INSTRUCTIONS = {
    "MCQ": "Let's think step by step and output the final answer (the letter of the correct option) within "
           "\\boxed{}.",
    "MCQ(multiple)": "One or more options may be correct. Let's think step by step and output the letters of all "
                     "correct options within \\boxed{}, e.g. \\boxed{AC}.",
    "Integer": "Let's think step by step and output the final answer (a non-negative integer) within \\boxed{}.",
    "Numeric": "Let's think step by step and output the final answer (a number, correct to two decimal places) "
               "within \\boxed{}.",
}


def _jeebench(rows):
    """JEE Advanced 2016-2023: options are part of each question; each problem carries how it is
    graded (one letter, a set of letters, or a number by math-verify) and its instruction."""
    out = []
    for row in rows:
        if row.get("type") not in JEEBENCH_KINDS:
            raise InputError(f"jeebench: question {row.get('index')} of {row.get('description')!r} has type "
                             f"{row.get('type')!r} (known: {', '.join(JEEBENCH_KINDS)})")
        ident = f"jeebench-{str(row['description']).replace(' ', '-').lower()}-{row['index']}"
        out.append({"id": ident, "question": str(row["question"]).strip(), "answer": str(row["gold"]).strip(),
                    "solution": None, "meta": {"subject": row["subject"], "type": row["type"],
                                               "kind": JEEBENCH_KINDS[row["type"]],
                                               "instruction": JEEBENCH_INSTRUCTIONS[row["type"]]}})
    return out


def _corpus(rows):
    return [{"id": f"doc-{index}", "text": row["text"], "meta": {}} for index, row in enumerate(rows)
            if isinstance(row.get("text"), str) and row["text"].strip()]


def _joined_lines(rows):
    """A corpus of lines (WikiText-2, PTB) as one document: calibration windows cross line breaks."""
    return _corpus([{"text": "\n".join(r["text"] for r in rows)}])


def _alpaca(rows):
    """Alpaca as one document of its formatted examples (instruction, input, response), as the
    width-pruning references calibrate on it; windows then cross example boundaries."""
    texts = [r["text"] if isinstance(r.get("text"), str) and r["text"].strip() else
             "\n\n".join(str(r.get(k) or "") for k in ("instruction", "input", "output") if r.get(k)) for r in rows]
    return _corpus([{"text": "\n\n".join(t for t in texts if t.strip())}])


WORDPROBLEM_SPLITS = {"train": (2000, 2_000_003), "test": (500, 1_000_003)}


def _wordproblems(split: str) -> Callable[[], list[dict]]:
    """A split of the word-problem suite; the test split shares no question with the train split."""
    def build():
        count, seed = WORDPROBLEM_SPLITS[split]
        exclude = frozenset()
        if split == "test":
            exclude = frozenset(p.question for p in wordproblems.generate(*WORDPROBLEM_SPLITS["train"]))
        return [{"id": f"wordproblems-{split}-{i}", "question": p.question, "answer": str(p.answer),
                 "solution": p.solution, "meta": {"level": p.level, "template": p.template}}
                for i, p in enumerate(wordproblems.generate(count, seed, exclude=exclude))]
    return build


_MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                  "prealgebra", "precalculus")
GPQA_INSTRUCTION = "Let's think step by step and output the final answer (the letter of the correct option) within \\boxed{}."

DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("gsm8k_train", "math", _gsm8k, ("gsm8k/train.jsonl",),
            HubFile("openai/gsm8k", ("main/train-00000-of-00001.parquet",)), license="MIT"),
    Dataset("gsm8k", "math", _gsm8k, ("gsm8k/test.jsonl",),
            HubFile("openai/gsm8k", ("main/test-00000-of-00001.parquet",)), benchmark=True, license="MIT",
            description="GSM8K test", label="GSM8K"),
    Dataset("math_train", "math", _math, ("math/train.jsonl",),
            HubFile("EleutherAI/hendrycks_math", tuple(f"{s}/train-00000-of-00001.parquet" for s in _MATH_SUBJECTS)),
            license="MIT"),
    Dataset("math500", "math", _math500, ("math500/test.jsonl",), HubFile("HuggingFaceH4/MATH-500", ("test.jsonl",)),
            benchmark=True, license="MIT", description="MATH500", label="MATH500"),
    Dataset("aime", "math", _aime, ("aime/aime2024.json", "aime/aime2025.jsonl"),
            HubFile("HuggingFaceH4/aime_2024", ("data/train-00000-of-00001.parquet",)), benchmark=True,
            license="MIT / Apache-2.0", description="AIME 2024 + 2025 (the hub fallback has 2024 only)",
            label="AIME"),
    Dataset("olympiadbench", "math", _olympiad, ("olympiadbench/olympiadbench.json",),
            HubFile("Hothan/OlympiadBench", ("OE_TO_maths_en_COMP/train-00000-of-00001.parquet",)),
            benchmark=True, description="OlympiadBench (open-ended, text-only, English math)", label="Olympiad"),
    Dataset("gpqa_diamond", "choice", _gpqa, ("gpqa_diamond/gpqa_diamond.zip",),
            HubFile("Idavidrein/gpqa", ("gpqa_diamond.csv",)), benchmark=True, sealed=True, license="CC-BY-4.0",
            description="GPQA Diamond", instruction=GPQA_INSTRUCTION, label="GPQA"),
    Dataset("jeebench", "math", _jeebench, ("jeebench/dataset.json",), benchmark=True, license="MIT",
            group_by="type", description="JEEBench (JEE Advanced 2016-2023: physics, chemistry, mathematics)",
            label="JEEBench"),
    Dataset("c4", "corpus", _corpus, ("c4/c4_en_train00000_first1000.jsonl",),
            HubFile("allenai/c4", ("en/c4-train.00000-of-01024.json.gz",)), license="ODC-BY 1.0"),
    Dataset("wikitext2", "corpus", _joined_lines,
            ("wikitext2/wikitext2_raw_test.txt",),
            HubFile("Salesforce/wikitext", ("wikitext-2-raw-v1/test-00000-of-00001.parquet",)),
            license="CC BY-SA 3.0"),
    Dataset("ptb", "corpus", _joined_lines, ("ptb/ptb.valid.txt",), license="LDC99T42 user agreement",
            description="Penn Treebank validation split (Mikolov's preprocessing), one document"),
    Dataset("alpaca", "corpus", _alpaca, hub=HubFile("tatsu-lab/alpaca", ("data/train-00000-of-00001-a09b74b3ef9c3b56.parquet",)),
            license="CC BY-NC 4.0", description="Alpaca's 52k instructions with their responses, one document"),
    Dataset("wordproblems", "math", lambda rows: rows, benchmark=True,
            generated=_wordproblems("test"), group_by="level",
            description="prunebench word problems, levels 1-5 (test split, written by prunebench)",
            label="WordProblems"),
    Dataset("wordproblems_train", "math", lambda rows: rows,
            generated=_wordproblems("train"),
            description="prunebench word problems, levels 1-5 (train split, written by prunebench)"),
]}

def instruction_of(problem: dict) -> str:
    """The instruction after a problem's question: its own (JEEBench's differ by question type), else its dataset's."""
    return problem.get("meta", {}).get("instruction") or get(problem["dataset"]).instruction


def kind_of(problem: dict) -> str:
    """How a problem's answer is graded: its own kind where it has one, else its dataset's."""
    return problem.get("meta", {}).get("kind") or get(problem["dataset"]).kind


def get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})") from None


def hydrate(name: str, records: Iterable[dict], data_dir: str | Path | None, allow_hub: bool = False) -> list[dict]:
    """Records ready for prompting: sealed datasets get their question text from the archive, in memory."""
    dataset = get(name)
    records = list(records)
    if not dataset.sealed:
        return records
    rows, _ = fetch_raw(dataset, data_dir, allow_hub)
    by_id = {f"gpqa-{row['Record ID']}": row for row in rows}
    return [dict(r, question=gpqa_question(by_id[r["id"]])) for r in records]
