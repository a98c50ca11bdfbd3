"""The second paper's study as targets: what its tables and figures compare, computed from the task
table's rows (each model, method and recipe with its category averages) and the speed table.

- main: per model, the dense row and each method at each ratio (aligned recipe, no recovery):
  family, ratio and the three category averages with their standard errors;
- ratios (figure): category average against ratio, one line per family, one column per model;
- calibration: at study.calibration_sources' ratio, its methods on each of its recipes;
- samples (figure): a method's category averages against its calibration sequences;
- recovery: each recovered model beside the model it started from, with the change;
- tradeoff (figure): category averages against measured decode speed-up, every pruned model;
- findings: each of the paper's five claims as one comparison of our numbers, its difference
  with a standard error and a verdict ("holds", "reversed", "not separable at this scale").

A category average's standard error is sqrt(sum of its scores' squared standard errors) / n (the
scores of different tasks are independent samples); a mean over rows divides the same way. A
difference is called at |difference| >= 2 standard errors; below that the verdict says our numbers
cannot tell, and the report never asserts more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import paths
from .pruning.spec import DECLARED, FAMILIES, parse_method, split_recovery
from .suite import TABLE as TASK_TABLE
from .taskfiles import CATEGORIES

STATIC = ("depth", "width")
Z = 2.0   # |difference| / standard error at which a claim is called


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def describe(method: str) -> dict:
    """Family, ratio and recovery of a row's method name (dense: family dense, ratio 0)."""
    if method == paths.DENSE:
        return {"family": "dense", "base_method": paths.DENSE, "ratio": 0.0, "recovery": None}
    base, recovery = split_recovery(method)
    spec = parse_method(base)
    return {"family": FAMILIES[spec.method], "base_method": spec.method, "ratio": spec.target, "recovery": recovery}


def category_scores(record: dict, columns: list[dict]) -> dict:
    """A task-table row's category averages and their standard errors (NaN where a score is missing)."""
    out = {}
    for category in CATEGORIES:
        names = [c["name"] for c in columns if c["category"] == category]
        scores = [_nan(record.get(n)) for n in names]
        errors = [_nan(record.get(n + "_se")) for n in names]
        out[category] = sum(scores) / len(scores) if names else float("nan")
        errors = [0.0 if math.isnan(e) else e for e in errors]
        out[category + "_se"] = math.sqrt(sum(e * e for e in errors)) / len(names) if names else float("nan")
    return out


def study_records(task_table: dict) -> list[dict]:
    """Every row of the task table (lrm_tasks.json) with its method described and category scores."""
    return [{"model": r["model"], "method": r["method"], "recipe": r["recipe"], **describe(r["method"]),
             **category_scores(r, task_table["columns"])} for r in task_table["rows"]]


def main_rows(records: list[dict], config: dict) -> list[dict]:
    """Per model: the dense row, then each study method at each ratio on the aligned recipe, unrecovered."""
    study = config["study"]
    aligned = study["recipes"][0] if study["recipes"] else None
    wanted = [(m, r) for m in study["methods"] for r in study["ratios"]]
    out = []
    for model in dict.fromkeys(r["model"] for r in records):
        mine = [r for r in records if r["model"] == model]
        out += [r for r in mine if r["family"] == "dense"]
        for method, ratio in wanted:
            out += [r for r in mine if r["base_method"] == method and r["ratio"] == ratio and r["recipe"] == aligned
                    and r["recovery"] is None]
    return out


def calibration_rows(records: list[dict], config: dict) -> list[dict]:
    """study.calibration_sources: its methods at its ratio, on each of its recipes, unrecovered."""
    grid = config["study"]["calibration_sources"]
    return [r for m in grid["methods"] for recipe in grid["recipes"] for r in records
            if r["base_method"] == m and r["ratio"] == grid["ratio"] and r["recipe"] == recipe and r["recovery"] is None]


def recovery_rows(records: list[dict]) -> list[dict]:
    """Each recovered row beside the row it started from: before, after and the change per category."""
    index = {(r["model"], r["method"], r["recipe"]): r for r in records}
    out = []
    for row in records:
        if row["recovery"] is None:
            continue
        before = index.get((row["model"], split_recovery(row["method"])[0], row["recipe"]))
        if before is None:
            continue
        entry = {"model": row["model"], "method": before["method"], "recovery": row["recovery"], "recipe": row["recipe"]}
        for category in CATEGORIES:
            entry[f"{category}_before"], entry[f"{category}_after"] = before[category], row[category]
            entry[f"{category}_change"] = row[category] - before[category]
            entry[f"{category}_change_se"] = math.hypot(before[category + "_se"], row[category + "_se"])
        out.append(entry)
    return out


# ------------------------------------------------------------------------------------------ findings

@dataclass(frozen=True)
class Claim:
    number: int
    text: str
    comparison: str


CLAIMS = (
    Claim(1, "Depth pruning beats width pruning on classification tasks.",
          "classification: mean of depth-pruned rows minus mean of width-pruned rows"),
    Claim(2, "Width pruning is more robust than depth pruning on generation and reasoning tasks.",
          "mean of generation and reasoning: width-pruned rows minus depth-pruned rows"),
    Claim(3, "Static pruning preserves reasoning better than dynamic pruning.",
          "reasoning: static (depth and width) rows minus dynamic rows"),
    Claim(4, "Dynamic pruning does well on classification and generation but struggles with long-chain reasoning.",
          "dynamic rows' loss against dense: on reasoning minus on classification and generation"),
    Claim(5, "Aligned calibration and recovery data make pruning more stable than generic corpora.",
          "mean of the three categories: rows on aligned data minus the same cells on generic data"),
)


def _mean(values: list[tuple[float, float]]) -> tuple[float, float, int]:
    """(mean, its standard error, n) of (value, standard error) pairs, NaNs dropped."""
    kept = [(v, e) for v, e in values if not math.isnan(v)]
    if not kept:
        return float("nan"), float("nan"), 0
    return (sum(v for v, _ in kept) / len(kept), math.sqrt(sum(e * e for _, e in kept)) / len(kept), len(kept))


def _score(row: dict, categories: tuple[str, ...]) -> tuple[float, float]:
    """A row's mean over `categories` and its standard error."""
    value = sum(row[c] for c in categories) / len(categories)
    return value, math.sqrt(sum(row[c + "_se"] ** 2 for c in categories)) / len(categories)


def verdict(difference: float, error: float, sides: tuple[int, int]) -> str:
    """The claim's verdict from our difference (positive: the claim's direction)."""
    if min(sides) == 0 or math.isnan(difference):
        return "not in this run"
    if error == 0 or math.isnan(error):
        return "holds" if difference > 0 else "reversed" if difference < 0 else "not separable at this scale"
    if difference >= Z * error:
        return "holds"
    if difference <= -Z * error:
        return "reversed"
    return "not separable at this scale"


def _compare(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> dict:
    mean_a, se_a, n_a = _mean(a)
    mean_b, se_b, n_b = _mean(b)
    difference, error = mean_a - mean_b, math.hypot(se_a, se_b)
    return {"a": mean_a, "b": mean_b, "n_a": n_a, "n_b": n_b, "difference": difference, "se": error,
            "verdict": verdict(difference, error, (n_a, n_b))}


def _beyond(record: dict) -> bool:
    """A row of a method beyond the paper (RESP): shown in the tables, out of the paper's family lines and claims."""
    return record["base_method"] in DECLARED and DECLARED[record["base_method"]].beyond


def findings(records: list[dict], config: dict) -> list[dict]:
    """The five claims, each compared on the unrecovered study rows of the aligned recipe (claim 5: on
    matched aligned and generic cells, calibration and recovery)."""
    study = config["study"]
    aligned = study["recipes"][0] if study["recipes"] else None
    records = [r for r in records if r["family"] == "dense" or not _beyond(r)]  # the paper's methods
    pruned = [r for r in records if r["family"] != "dense" and r["recovery"] is None and r["recipe"] == aligned
              and r["family"] in ("depth", "width", "dynamic")]
    dense = {r["model"]: r for r in records if r["family"] == "dense"}

    def of(families, categories):
        return [_score(r, categories) for r in pruned if r["family"] in families]

    out = []
    out.append(_compare(of(("depth",), ("classification",)), of(("width",), ("classification",))))
    out.append(_compare(of(("width",), ("generation", "reasoning")), of(("depth",), ("generation", "reasoning"))))
    out.append(_compare(of(STATIC, ("reasoning",)), of(("dynamic",), ("reasoning",))))
    losses_reasoning, losses_other = [], []
    for row in pruned:
        if row["family"] == "dynamic" and row["model"] in dense:
            base = dense[row["model"]]
            for categories, losses in ((("reasoning",), losses_reasoning), (("classification", "generation"), losses_other)):
                (v, e), (dv, de) = _score(row, categories), _score(base, categories)
                losses.append((dv - v, math.hypot(e, de)))
    out.append(_compare(losses_reasoning, losses_other))
    index = {(r["model"], r["method"], r["recipe"]): r for r in records}
    generic = generic_recipes(config)
    pairs_a, pairs_b = [], []
    everything = CATEGORIES
    for row in records:   # calibration: the same cell on the aligned recipe and on each generic one
        if row["family"] in STATIC + ("dynamic",) and row["recovery"] is None and row["recipe"] in generic:
            twin = index.get((row["model"], row["method"], aligned))
            if twin is not None:
                pairs_a.append(_score(twin, everything))
                pairs_b.append(_score(row, everything))
    recovered = [r for r in records if r["recovery"] is not None]
    recoveries = config.get("recovery", {})
    for row in recovered:   # recovery: aligned recovery data against generic, same pruned model
        if recoveries.get(row["recovery"], {}).get("recipe") != aligned:
            continue
        base = split_recovery(row["method"])[0]
        for other in recovered:
            if (other["model"], split_recovery(other["method"])[0], other["recipe"]) == (row["model"], base, row["recipe"]) \
                    and recoveries.get(other["recovery"], {}).get("recipe") in generic:
                pairs_a.append(_score(row, everything))
                pairs_b.append(_score(other, everything))
    out.append(_compare(pairs_a, pairs_b))
    return [{"claim": c.number, "text": c.text, "comparison": c.comparison, **result} for c, result in zip(CLAIMS, out)]


def generic_recipes(config: dict) -> list[str]:
    """Recipes that count as generic data: every study or calibration-source recipe but the aligned
    (first) one, and any pretraining recipe (C4, WikiText-2, PTB, Alpaca)."""
    study = config["study"]
    aligned = study["recipes"][0] if study["recipes"] else None
    named = list(study["recipes"][1:]) + list(study["calibration_sources"]["recipes"])
    definitions = config["calibration"]["recipe_definitions"]
    named += [n for n, d in definitions.items() if d.get("type") == "pretraining"]
    return [n for n in dict.fromkeys(named) if n != aligned]


# ------------------------------------------------------------------------------------------ targets

def inputs(name: str) -> list[str]:
    """What a study target reads: the task table, and for the trade-off the speed table too."""
    tables = [paths.table(TASK_TABLE, "json")]
    return tables + [paths.table(paths.SPEED_TABLE, "json")] if paths.LRM + name == paths.TRADEOFF_FIGURE else tables


def _records(config: dict, root) -> list[dict]:
    from .io import read_json
    from .grid import study_rows

    table = read_json(root / paths.table(TASK_TABLE, "json"))
    wanted = {(r.model, r.method, r.recipe) for r in study_rows(config)}
    return [r for r in study_records(table) if r["family"] == "dense" and r["model"] in {m for m, _, _ in wanted}
            or (r["model"], r["method"], r["recipe"]) in wanted]


def built(config: dict) -> bool:
    from .grid import study_rows

    return bool(study_rows(config))


def rows_of(name: str, config: dict, root) -> list[dict]:
    records = _records(config, root)
    if name == "main":
        return main_rows(records, config)
    if name == "calibration":
        return calibration_rows(records, config)
    if name == "recovery":
        return recovery_rows(records)
    if name == "findings":
        return findings(records, config)
    raise ValueError(f"unknown study table {name!r}")


def caption_of(name: str, config: dict) -> str:
    from .tables import method_label, recipe_label

    if not built(config):
        return f"The study's {name} table: not part of this run."
    study = config["study"]
    aligned = study["recipes"][0]
    error = ("± standard error: the root of the summed squared errors of a category's tasks, over their number")
    if name == "main":
        return (f"Category averages of every study method at each ratio, calibrated on the aligned recipe "
                f"({recipe_label(config, aligned)}), per model, with the dense row; {error}.")
    if name == "calibration":
        grid = study["calibration_sources"]
        if not grid["methods"]:
            return "Calibration sources: not part of this run (config study.calibration_sources)."
        return (f"Calibration source at {grid['ratio']:.0%}: {', '.join(method_label(m) for m in grid['methods'])} "
                f"calibrated on {', '.join(recipe_label(config, r) for r in grid['recipes'])}; category averages, {error}.")
    if name == "recovery":
        return ("Recovery fine-tuning (LoRA): each recovered model's category averages before and after, and the "
                f"change with its standard error; the recovery's name says its data ({error}).")
    return ("The paper's five claims against this run's numbers: the comparison each makes, the difference (in "
            f"points, positive in the claim's direction) with its standard error, and the verdict: holds or reversed "
            f"where the difference is at least {Z:g} standard errors, otherwise not separable at this scale. Rows "
            f"are the unrecovered study cells on the aligned recipe ({recipe_label(config, aligned)}); claim 5 pairs cells "
            "on aligned and generic data.")


def write_table(name: str, config: dict, out_csv, out_json, root=".") -> None:
    import json
    from pathlib import Path

    import pandas as pd

    from .io import write_json, write_text
    from .provenance import provenance

    root = Path(root)
    rows = rows_of(name, config, root) if built(config) else []
    prov = provenance([root / p for p in inputs(name)])
    frame = pd.DataFrame.from_records(rows)
    header = "# " + json.dumps({"table": paths.LRM + name, "provenance": prov}, sort_keys=True) + "\n"
    write_text(out_csv, header + frame.to_csv(index=False, float_format="%.4f"))
    write_json(out_json, {"table": paths.LRM + name, "status": "built" if rows else "not in this run",
                          "caption": caption_of(name, config), "categories": list(CATEGORIES),
                          "rows": json.loads(frame.to_json(orient="records")) if rows else [], "provenance": prov})


def _empty(plt, text: str):
    fig, ax = plt.subplots(figsize=(7.0, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    return fig


def write_figure(name: str, config: dict, out_svg, out_pdf, out_json, root=".") -> None:
    """ratios: category average against ratio, a line per family, a column per model; samples: the
    calibration-size method's category averages against its sequences; tradeoff: category averages
    against decode speed-up over dense, every pruned model."""
    import json
    from pathlib import Path

    from .figures import COLORS, drawable, plt, save_figure
    from .io import read_json, write_json
    from .provenance import provenance
    from .tables import model_label

    root = Path(root)
    records = _records(config, root) if built(config) else []
    models = list(dict.fromkeys(r["model"] for r in records))
    caption, fig = "", None
    if name == "ratios" and records:
        rows = main_rows(records, config)
        fig, axes = plt.subplots(len(CATEGORIES), len(models), figsize=(3.4 * len(models) + 0.6, 6.6), squeeze=False)
        for col, model in enumerate(models):
            mine = [r for r in rows if r["model"] == model and (r["family"] == "dense" or not _beyond(r))]
            dense = next((r for r in mine if r["family"] == "dense"), None)
            for row_index, category in enumerate(CATEGORIES):
                ax = axes[row_index, col]
                for i, family in enumerate(f for f in ("depth", "width", "dynamic", "unstructured")
                                           if any(r["family"] == f for r in mine)):
                    ratios = sorted({r["ratio"] for r in mine if r["family"] == family})
                    means = [_mean([(r[category], r[category + "_se"]) for r in mine
                                    if r["family"] == family and r["ratio"] == x])[0] for x in ratios]
                    xs, ys = ([0.0] + ratios, [dense[category]] + means) if dense else (ratios, means)
                    ax.plot([x * 100 for x in xs], ys, marker="o", label=family, color=COLORS[i % len(COLORS)])
                ax.set_title(drawable(f"{model_label(config, model)}: {category}"), fontsize=8)
                ax.set_xlabel("pruning ratio (%)", fontsize=7)
                ax.set_ylabel("average (%)", fontsize=7)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncols=max(len(labels), 1), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        caption = ("Category average against pruning ratio, one line per family (the mean of the paper's methods at that "
                   "ratio; the dense model at 0%), one column per model.")
    if name == "samples" and records and config["study"]["calibration_samples"]["method"]:
        grid = config["study"]["calibration_samples"]
        definitions = config["calibration"]["recipe_definitions"]
        fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models) + 0.6, 3.0), squeeze=False)
        for ax, model in zip(axes[0], models):
            points = []
            for recipe in grid["recipes"]:
                for r in records:
                    if (r["model"], r["base_method"], r["ratio"], r["recipe"], r["recovery"]) == \
                            (model, grid["method"], grid["ratio"], recipe, None):
                        points.append((definitions[recipe].get("sequences") or config["calibration"]["sequences"], r))
            points.sort(key=lambda p: p[0])
            for i, category in enumerate(CATEGORIES):
                ax.errorbar([n for n, _ in points], [r[category] for _, r in points],
                            yerr=[r[category + "_se"] for _, r in points], marker="o", label=category,
                            color=COLORS[i], capsize=2)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("calibration sequences", fontsize=7)
            ax.set_ylabel("average (%)", fontsize=7)
            ax.set_title(drawable(model_label(config, model)), fontsize=8)
        axes[0, 0].legend(fontsize=7, frameon=False)
        fig.tight_layout()
        caption = (f"{grid['method']} at {grid['ratio']:.0%}: category averages against the number of calibration "
                   f"sequences (recipes {', '.join(grid['recipes'])}), ± standard error.")
    if paths.LRM + name == paths.TRADEOFF_FIGURE and records:
        speed = read_json(root / paths.table(paths.SPEED_TABLE, "json")).get("rows", [])
        pruned = [r for r in speed if r["method"] != paths.DENSE]
        fig, axes = plt.subplots(1, len(CATEGORIES), figsize=(9.6, 3.2), squeeze=False)
        families = list(dict.fromkeys(r["family"] for r in pruned))
        for ax, category in zip(axes[0], CATEGORIES):
            for i, family in enumerate(families):
                mine = [r for r in pruned if r["family"] == family and r.get(category) is not None]
                ax.scatter([r["decode_tokens_per_second_vs_dense"] for r in mine], [r[category] for r in mine],
                           label=family, color=COLORS[i % len(COLORS)], s=18)
            ax.axvline(1.0, color="#999999", lw=0.8)
            ax.set_xlabel("decode speed / dense", fontsize=7)
            ax.set_ylabel(f"{category} (%)", fontsize=7)
        if families:
            axes[0, 0].legend(fontsize=7, frameon=False)
        fig.tight_layout()
        caption = ("What users trade: each pruned model's category averages against its measured decode speed "
                   "relative to its dense model (the speed table's measurements of this machine).")
    drawn = fig is not None
    if not drawn:
        fig = _empty(plt, f"The study's {name} figure: not in this run")
        caption = f"The study's {name} figure: not part of this run."
    prov = provenance([root / p for p in inputs(name)])
    save_figure(fig, out_svg, out_pdf, json.dumps({"figure": paths.LRM + name, "provenance": prov}, sort_keys=True))
    write_json(out_json, {"figure": paths.LRM + name, "status": "built" if drawn else "not in this run",
                          "caption": caption, "provenance": prov})
