"""Datasets: the mirror loaders, the sealed GPQA archive, subsets, the hub path, the word problems."""

import json
import re
import subprocess
import sys

import pytest

from prunebench import datasets, wordproblems


@pytest.mark.parametrize("name,count", [("gsm8k", 1319), ("gsm8k_train", 7473), ("math500", 500), ("aime", 60),
                                        ("olympiadbench", 675), ("gpqa_diamond", 198), ("c4", 1000),
                                        ("math_train", 7498)])
def test_mirror_counts(mirror, name, count):
    records, origins = datasets.load(name, mirror)
    assert len(records) == count and all(str(mirror) in o for o in origins)
    assert len({r["id"] for r in records}) == count


def test_gold_answers(mirror):
    gsm, _ = datasets.load("gsm8k", mirror)
    assert gsm[0]["answer"] == "18" and gsm[0]["solution"].endswith("$\\boxed{18}$.") and "<<" not in gsm[0]["solution"]
    aime, _ = datasets.load("aime", mirror)
    assert all(re.fullmatch(r"[1-9]\d{0,2}|0", a["answer"]) for a in aime)  # zero padding stripped
    olympiad, _ = datasets.load("olympiadbench", mirror)
    assert not any(o["answer"].startswith("$") for o in olympiad)


def test_gpqa_is_sealed_until_hydrated(mirror):
    records, _ = datasets.load("gpqa_diamond", mirror)
    assert all(r["question"] is None for r in records)
    assert {r["answer"] for r in records} == set("ABCD")
    hydrated = datasets.hydrate("gpqa_diamond", records[:3], mirror)
    assert all("(A)" in r["question"] and "(D)" in r["question"] for r in hydrated)
    assert [r["answer"] for r in hydrated] == [r["answer"] for r in records[:3]]


def test_subsets_are_seeded_and_nested():
    records = [{"id": str(i)} for i in range(100)]
    small, large = datasets.subset(records, 10, 0, "x"), datasets.subset(records, 30, 0, "x")
    assert small == large[:10] and small == datasets.subset(records, 10, 0, "x")
    assert small != datasets.subset(records, 10, 1, "x")
    assert datasets.subset(records, 500, 0, "x") == records


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(datasets.InputError, match="unknown dataset 'nope'"):
        datasets.get("nope")


def test_hub_path_reads_the_same_records(mirror, tmp_path):
    """With no mirror, a dataset comes from the hub: here an offline hub cache built from the mirror."""
    commit = "0" * 40
    snapshot = tmp_path / "hub" / "datasets--HuggingFaceH4--MATH-500" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "test.jsonl").write_bytes((mirror / "math500" / "test.jsonl").read_bytes())
    refs = tmp_path / "hub" / "datasets--HuggingFaceH4--MATH-500" / "refs"
    refs.mkdir()
    (refs / "main").write_text(commit)
    code = ("import json; from prunebench import datasets; r, o = datasets.load('math500', None, allow_hub=True); "
            "print(json.dumps([len(r), r[0]['id'], r[0]['answer'], o]))")
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    count, first_id, answer, origins = json.loads(out.stdout)
    mirror_records, _ = datasets.load("math500", mirror)
    assert (count, first_id, answer) == (500, mirror_records[0]["id"], mirror_records[0]["answer"])
    assert origins == ["hf://datasets/HuggingFaceH4/MATH-500@main/test.jsonl"]


def test_the_hub_is_used_only_where_allowed(tmp_path):
    with pytest.raises(datasets.InputError, match=r"math500: not in the local mirror .* the hub is not allowed"):
        datasets.load("math500", tmp_path)


def test_missing_everywhere_is_a_clear_error(tmp_path):
    code = "from prunebench import datasets; datasets.load('math500', None, allow_hub=True)"
    env = {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "MATH-500" in out.stderr


def test_bad_mirror_line_names_file_and_line(tmp_path):
    (tmp_path / "math500").mkdir()
    (tmp_path / "math500" / "test.jsonl").write_text('{"problem": "x"}\n{broken\n')
    with pytest.raises(datasets.InputError, match=r"test.jsonl:2: not valid JSON"):
        datasets.load("math500", tmp_path)


# ---------------------------------------------------------------- the project's word problems

def test_word_problems_are_seeded_and_balanced():
    a, b = wordproblems.generate(50, 3), wordproblems.generate(50, 3)
    assert a == b and a != wordproblems.generate(50, 4)
    assert [p.level for p in a[:10]] == [1, 2, 3, 4, 5] * 2


def test_word_problem_solutions_are_arithmetically_right():
    step = re.compile(r"(\d+) ([-+x/]) (\d+) = (\d+)\b")
    for p in wordproblems.generate(1500, 11):
        assert p.answer >= 0
        for line in p.steps:
            for m in step.finditer(line):
                a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
                assert {"+": a + b, "-": a - b, "x": a * b, "/": a / b}[op] == c, (line, p)
        assert f"\\boxed{{{p.answer}}}" in p.solution


def test_train_and_test_splits_differ(mirror):
    test, _ = datasets.load("wordproblems", mirror)
    train, _ = datasets.load("wordproblems_train", mirror)
    assert not {r["question"] for r in test} & {r["question"] for r in train}


def test_ptb_and_alpaca_are_calibration_corpora(mirror):
    """PTB's validation split reads from the mirror as one document; Alpaca (hub only) joins its
    formatted examples, building the text where a row has none."""
    from prunebench import datasets

    rows, sources = datasets.load("ptb", mirror)
    assert len(rows) == 1 and sources == [str(mirror / "ptb/ptb.valid.txt")]
    assert rows[0]["text"].count("\n") == 3369 and "<unk>" in rows[0]["text"]
    alpaca = datasets.DATASETS["alpaca"]
    assert alpaca.mirror == () and alpaca.hub.repo == "tatsu-lab/alpaca" and alpaca.kind == "corpus"
    docs = alpaca.normalize([{"instruction": "Add.", "input": "1 and 2", "output": "3", "text": ""},
                             {"instruction": "Say hi.", "input": "", "output": "Hi", "text": "### Say hi.\nHi"}])
    assert docs == [{"id": "doc-0", "text": "Add.\n\n1 and 2\n\n3\n\n### Say hi.\nHi", "meta": {}}]
