"""The first paper's claims as computed verdicts, in the form the second paper's findings take.

Each claim of "Think Before You Prune" that its tables support is a comparison of two calibration
recipes under the same pruning method, model and benchmarks: the per-problem accuracy of the one
cell minus the other's, paired over the problems both were evaluated on (the same seeded problems
for every cell), pooled over the table's methods, models and benchmarks. Its mean and standard
error give the verdict: holds at or beyond +Z standard errors, reversed at or beyond -Z, not
separable between, not in this run where no pair exists. A claim about the effect growing with
sparsity compares the SSGR-minus-C4 difference at the highest unstructured sparsity of Figure 4
with the same difference at the lowest, per problem.

Recipes are found by their definitions (a pretraining set of C4, gold solutions, SGR, SSGR, a
correctness, length or difficulty selection, another model's responses), so a config that names
its recipes otherwise gets the same claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import paths
from .evaluation import mean_and_se, per_problem_accuracy
from .grid import Row, required_rows, table_benchmarks
from .io import iter_jsonl
from .provenance import provenance
from .pruning.spec import parse_method

Z = 2.0
HOLDS, REVERSED, NOT_SEPARABLE, ABSENT = "holds", "reversed", "not separable at this scale", "not in this run"
BANDS = ("easy", "medium", "hard")


def _is(kind: str, **fields) -> Callable[[dict], bool]:
    return lambda spec: spec.get("type") == kind and all(spec.get(k) == v for k, v in fields.items())


def _c4(spec: dict) -> bool:
    return spec.get("type") == "pretraining" and spec.get("datasets") == ["c4"]


def _own_ssgr(spec: dict) -> bool:
    return spec.get("type") == "ssgr" and not spec.get("generator") and not spec.get("max_length")


@dataclass(frozen=True)
class Claim:
    number: int
    text: str
    where: tuple[str, int]                 # the table or figure that supports it
    better: Callable[[dict], bool]         # the recipe the claim says calibrates better
    worse: Callable[[dict], bool]


CLAIMS = (
    Claim(1, "Self-generated calibration (SSGR) beats pretraining text (C4).", ("table", 2), _own_ssgr, _c4),
    Claim(2, "Self-generated calibration (SSGR) beats external math solutions (MathR).", ("table", 2), _own_ssgr,
          _is("gold")),
    Claim(3, "Selecting the responses (SSGR) beats taking each problem's first correct one (SGR).", ("table", 2),
          _own_ssgr, _is("sgr")),
    Claim(4, "Correct responses calibrate better than incorrect ones.", ("table", 1), _is("sgr"),
          _is("correctness", correct=False)),
    Claim(5, "Longer responses calibrate better than shorter ones.", ("table", 1), _is("length", pick="long"),
          _is("length", pick="short")),
    Claim(6, "Harder problems calibrate better than easier ones.", ("table", 4),
          lambda s: s.get("type") == "difficulty" and s.get("band") in BANDS[1:], _is("difficulty", band="easy")),
    Claim(7, "The model's own responses calibrate better than another model's.", ("table", 8), _own_ssgr,
          lambda s: s.get("type") == "ssgr" and bool(s.get("generator"))),
)
SPARSITY_CLAIM = (8, "The advantage of SSGR over C4 grows with sparsity.", ("figure", 4))


def _recipe(config: dict, recipes: list[str], test: Callable[[dict], bool], hardest: bool = False) -> str | None:
    """The first of `recipes` whose definition passes `test` (the hardest band where asked)."""
    definitions = config["calibration"]["recipe_definitions"]
    found = [r for r in recipes if r in definitions and test(definitions[r])]
    if hardest and found:
        return max(found, key=lambda r: BANDS.index(definitions[r].get("band", "easy")))
    return found[0] if found else None


def _accuracy(root: Path, row: Row, bench: str) -> dict[str, float]:
    path = root / paths.eval_samples(row.model, row.method, row.recipe, bench)
    return per_problem_accuracy([s for s in iter_jsonl(path) if "id" in s]) if path.exists() else {}


def _differences(root: Path, pairs: list[tuple[Row, Row]], benches: list[str]) -> list[float]:
    """Per problem, the first cell's accuracy minus the second's (in %), over the problems both have."""
    out = []
    for a, b in pairs:
        for bench in benches:
            ours, theirs = _accuracy(root, a, bench), _accuracy(root, b, bench)
            out += [100.0 * (ours[p] - theirs[p]) for p in sorted(set(ours) & set(theirs))]
    return out


def summarize(differences: list[float]) -> dict:
    """Mean, standard error, n and the verdict of paired differences (positive: the claim's way)."""
    n = len(differences)
    mean, se = mean_and_se(differences)
    if n == 0:
        return {"difference": mean, "se": se, "n": 0, "verdict": ABSENT}
    if math.isnan(se) or se == 0:
        verdict = NOT_SEPARABLE if mean == 0 or math.isnan(se) else HOLDS if mean > 0 else REVERSED
    else:
        verdict = HOLDS if mean >= Z * se else REVERSED if mean <= -Z * se else NOT_SEPARABLE
    return {"difference": mean, "se": se, "n": n, "verdict": verdict}


def _pairs(config: dict, kind: str, number: int, better: str, worse: str) -> list[tuple[Row, Row]]:
    rows = set(required_rows(config, number, kind))
    return [(row, Row(row.model, row.method, worse)) for row in sorted(rows, key=str)
            if row.recipe == better and Row(row.model, row.method, worse) in rows]


def rows(config: dict, root: str | Path) -> list[dict]:
    """Every claim with its comparison, numbers and verdict."""
    root = Path(root)
    out = []
    for claim in CLAIMS:
        kind, number = claim.where
        recipes = list(dict.fromkeys(r.recipe for r in required_rows(config, number, kind)))
        better = _recipe(config, recipes, claim.better, hardest=claim.number == 6)
        worse = _recipe(config, recipes, claim.worse)
        pairs = _pairs(config, kind, number, better, worse) if better and worse and better != worse else []
        benches = table_benchmarks(config, number, kind)
        out.append({"claim": claim.number, "text": claim.text, "source": f"{kind.capitalize()} {number}",
                    "comparison": f"{better or '–'} minus {worse or '–'}, {len(pairs)} cell pair(s), paired per problem",
                    **summarize(_differences(root, pairs, benches))})
    out.append(_sparsity_row(config, root))
    return out


def _sparsity_row(config: dict, root: Path) -> dict:
    number, text, (kind, figure) = SPARSITY_CLAIM
    shown = required_rows(config, figure, kind)
    recipes = list(dict.fromkeys(r.recipe for r in shown))
    ssgr, c4 = _recipe(config, recipes, _own_ssgr), _recipe(config, recipes, _c4)
    unstructured = {r.method: parse_method(r.method).sparsity for r in shown
                    if r.method != paths.DENSE and parse_method(r.method).sparsity is not None}
    differences, comparison = [], "–"
    if ssgr and c4 and len(set(unstructured.values())) > 1:
        low, high = min(unstructured, key=unstructured.get), max(unstructured, key=unstructured.get)
        models = sorted({r.model for r in shown})
        for bench in table_benchmarks(config, figure, kind):
            for model in models:
                gaps = {}
                for method in (low, high):
                    a, b = _accuracy(root, Row(model, method, ssgr), bench), _accuracy(root, Row(model, method, c4), bench)
                    gaps[method] = {p: a[p] - b[p] for p in set(a) & set(b)}
                differences += [100.0 * (gaps[high][p] - gaps[low][p]) for p in sorted(set(gaps[high]) & set(gaps[low]))]
        comparison = f"({ssgr} minus {c4}) at {high} minus the same at {low}, paired per problem"
    return {"claim": number, "text": text, "source": f"{kind.capitalize()} {figure}", "comparison": comparison,
            **summarize(differences)}


def inputs(config: dict) -> list[str]:
    """Every evaluation the claims read: the cells of Tables 1, 2, 4 and 8 and Figure 4."""
    wanted = [*(c.where for c in CLAIMS), SPARSITY_CLAIM[2]]
    return list(dict.fromkeys(paths.eval_dir(r.model, r.method, r.recipe)
                              for kind, number in wanted for r in required_rows(config, number, kind)))


def write_table(config: dict, files: dict, root: Path) -> None:
    """The findings table (the output registry's writer)."""
    from .tables import write_rows

    prov = provenance([p for p in (root / path for path in inputs(config)) if p.exists()])
    write_rows(files, "first_findings", rows(config, root), {
        "status": "built", "z": Z,
        "caption": ("The claims of Think Before You Prune against this run: each a difference of per-problem pass@1 "
                    "(in points) between two calibration recipes under the same method, model and benchmark, paired "
                    f"over the same problems and pooled over the table's cells; holds or reversed only beyond {Z:g} "
                    "standard errors.")}, prov)
